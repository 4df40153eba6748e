"""The throw-away PostgreSQL server of the tests (tests/postgres.py) is real: SQLAlchemy connects over its socket,
a TIMESTAMPTZ comes back as the instant written, and each test's database is its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa


def test_a_timestamptz_row_round_trips(postgres_url):
    at = datetime(2024, 3, 31, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT current_database(), current_user")).one() == ("basiskit", "basiskit")
            conn.execute(sa.text("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL, venue text)"))
            conn.execute(sa.text("INSERT INTO marks VALUES (1, :at, 'aave')"), {"at": at})
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT id, at, venue FROM marks")).one()
            server_version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
    finally:
        engine.dispose()
    assert row.id == 1 and row.venue == "aave"
    assert row.at == at and row.at.tzinfo is not None  # the same instant, to the microsecond, still aware
    assert row.at.astimezone(UTC) == datetime(2024, 3, 30, 20, 0, 15, 123456, tzinfo=UTC)
    assert int(server_version) >= 130000


def test_each_pg_database_is_its_own(postgres_url, pg_database):
    from postgres import fresh_database

    with fresh_database(postgres_url) as other:
        assert other != pg_database
        first, second = sa.create_engine(pg_database), sa.create_engine(other)
        try:
            with first.begin() as conn:
                conn.execute(sa.text("CREATE TABLE t (v int)"))
                conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            with second.begin() as conn:
                assert conn.execute(sa.text("SELECT to_regclass('t')")).scalar_one() is None
                conn.execute(sa.text("CREATE TABLE t (v int)"))
                conn.execute(sa.text("INSERT INTO t VALUES (2), (3)"))
            with first.connect() as conn:
                assert conn.execute(sa.text("SELECT array_agg(v) FROM t")).scalar_one() == [1]
            with second.connect() as conn:
                assert conn.execute(sa.text("SELECT array_agg(v ORDER BY v) FROM t")).scalar_one() == [2, 3]
        finally:
            first.dispose()
            second.dispose()  # connections left open here would not stop the drop: it is WITH (FORCE)
        name = sa.make_url(other).database
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")).scalars().all()
    engine.dispose()
    assert name not in left and sa.make_url(pg_database).database in left
