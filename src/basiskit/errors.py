"""Errors a user can act on: each message names what is wrong and how to fix it."""


class BasiskitError(Exception):
    """Base of every error basiskit reports to a user."""


class DataError(BasiskitError):
    """A dataset file is missing, corrupt or does not cover what a run needs."""


class ConfigError(BasiskitError):
    """A run configuration is invalid; `problems` lists every (field, value, reason)."""

    def __init__(self, problems: list[tuple[str, object, str]]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in the run configuration:"]
        lines += [f"  - {field}: {value!r} -> {reason}" for field, value, reason in problems]
        super().__init__("\n".join(lines))


class SettingError(ConfigError):
    """One setting of the server or a session (a tokens file, a webhook URL) is invalid: the message says
    which and how to fix it."""

    def __init__(self, message: str):
        self.problems = [("setting", None, message)]
        BasiskitError.__init__(self, message)


class RunError(BasiskitError):
    """A run cannot go on (e.g. a withdrawal larger than what the portfolio holds)."""


def require_live_extra(module: str):
    """Import `module` (ccxt, web3) of the `live` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BasiskitError(f"the live feed and `data fetch` need {module}: pip install 'basiskit[live]' "
                            "(make setup installs it).") from exc
