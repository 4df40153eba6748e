"""A throw-away PostgreSQL server for the tests: Debian's initdb and pg_ctl, a Unix socket only (no TCP port), no
fsync. PostgreSQL refuses to run as root, so as root (as on CI) the server runs as `nobody`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "basiskit"  # the cluster's superuser, and its first database
RUN_AS = "nobody"  # the server's OS user when the tests run as root


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first (symlinks resolved, to find the rest of the suite
    beside them), then the highest /usr/lib/postgresql/<N>/bin."""
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    versions = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if d.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda d: int(d.parent.name), reverse=True)
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def missing() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    if find_pg_bin() is None:
        return ("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin: install Debian's postgresql "
                "package (make setup does as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        return f"psycopg is not importable ({exc}): pip install -e '.[postgres]' (make setup does)"
    return None


def _run(cmd: list[str], what: str, **kwargs) -> None:
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")


@contextmanager
def throwaway_postgres(base: Path) -> Iterator[str]:
    """Initialise, start and finally stop (`-m immediate`) a cluster; yield the SQLAlchemy URL of its database
    `basiskit`. The socket goes in a short directory under /tmp (a socket's path must be under 107 bytes).

    Not root: the data directory and the log are `base`/data and `base`/log. Root: the server runs as `nobody`,
    which cannot enter pytest's temporary folders (mode 0700, root's), so data and log go in the /tmp directory
    (made nobody's) and the log is copied to `base`/log at the end."""
    import psycopg

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError(missing())
    run = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # the socket's directory
    as_user: dict = {}
    home = base
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam(RUN_AS)
        os.chown(run, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                   "env": os.environ | {"HOME": str(run), "USER": RUN_AS, "LOGNAME": RUN_AS}}
        home = run
    data, log = home / "data", home / "log"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8",
              "--locale=C"], "initdb", **as_user)
        options = (f"-k {run} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=100")
        try:
            _run([*pg_ctl, "-o", options, "-l", str(log), "-w", "start"], "pg_ctl start", **as_user)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
            raise RuntimeError(f"{exc}\nserver log {log}:\n{tail}") from None
        started = True
        with psycopg.connect(host=str(run), user=USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{USER}"')
        yield f"postgresql+psycopg://{USER}@/{USER}?host={run}"
    finally:
        try:
            if started:
                _run([*pg_ctl, "-m", "immediate", "stop"], "pg_ctl stop", **as_user)
        finally:
            if home != base and log.exists():
                shutil.copyfile(log, base / "log")
            shutil.rmtree(run, ignore_errors=True)


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database t_<12 hex> on the server of `url` (a SQLAlchemy URL); yield its URL, drop it after
    (WITH (FORCE): connections a test left open do not keep it)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    server = sa.make_url(url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://{server.username}@/{name}?host={server.query['host']}"
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
