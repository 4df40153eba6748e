"""Times as the session stores show them: epoch seconds to TIMESTAMPTZ, and back to ISO 8601 UTC text."""

from __future__ import annotations

from datetime import UTC, datetime


def ts_of(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 UTC (the database hands TIMESTAMPTZ back in the machine's time zone)."""
    if value is None:
        return None
    return f"{value.astimezone(UTC) if value.tzinfo else value:%Y-%m-%dT%H:%M:%SZ}"
