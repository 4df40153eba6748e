"""UTC timestamps as int64 seconds since the epoch, the representation used inside the engine."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd

HOUR = 3600


def to_epoch(dt: datetime | str) -> int:
    """Seconds since the epoch of a datetime or ISO 8601 text (naive ones are taken as UTC); ValueError
    for text that is not a time."""
    if isinstance(dt, str):
        parsed = pd.Timestamp(dt)  # raises ValueError on text that is not a time
        dt = parsed.to_pydatetime()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def iso(ts: int | float) -> str:
    """ISO 8601 UTC text of epoch seconds, as the dataset writes it."""
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_seconds(timestamps) -> np.ndarray:
    """Epoch seconds of tz-aware pandas timestamps, whatever their internal resolution."""
    naive = pd.DatetimeIndex(timestamps).tz_convert("UTC").tz_localize(None)
    return naive.to_numpy().astype("datetime64[s]").astype(np.int64)
