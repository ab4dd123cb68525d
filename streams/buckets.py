"""Event time → market-local day and hour bucket indices (pure, vectorised, DST-correct).

A *day index* is the number of days from 1970-01-01 to the event's market-local calendar date;
an *hour index* is ``day * 24 + local wall-clock hour``. So ``hour // 24 == day`` always, the
hour that a spring-forward skips is a bucket that never fills, and the hour that a fall-back
repeats collects both passes (the local clock reads the same hour twice).

>>> import numpy as np
>>> day, hour = local_day_hour(np.array([1711846800.0, 1711850400.0]), "Europe/London")
>>> [str(day_to_date(int(d))) for d in day], [int(h % 24) for h in hour]
(['2024-03-31', '2024-03-31'], [0, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

EPOCH_DATE = date(1970, 1, 1)
SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
# UTC offsets are looked up once per 15-minute block of UTC time: every real zone transition
# falls on a quarter hour, and a block whose two ends disagree is resolved event by event.
_BLOCK_S = 900
_MIXED = np.iinfo(np.int64).min


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _offset_at(tz: str, second: int) -> int:
    """UTC offset (seconds) of ``tz`` at the whole UTC second ``second``."""
    offset = datetime.fromtimestamp(second, _zone(tz)).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return int(offset.total_seconds())


@lru_cache(maxsize=65_536)
def _block_offset(tz: str, block: int) -> int:
    start = block * _BLOCK_S
    first, last = _offset_at(tz, start), _offset_at(tz, start + _BLOCK_S - 1)
    return first if first == last else int(_MIXED)


def _as_epoch_seconds(event_ts_utc: np.ndarray | Sequence[datetime] | Sequence[float]) -> np.ndarray:
    if isinstance(event_ts_utc, np.ndarray):
        return event_ts_utc.astype(np.float64, copy=False)
    values = list(event_ts_utc)
    if values and isinstance(values[0], datetime):
        out = np.empty(len(values), dtype=np.float64)
        for i, moment in enumerate(values):
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise ValueError("event times must be timezone-aware datetimes (or epoch seconds)")
            out[i] = moment.timestamp()
        return out
    return np.asarray(values, dtype=np.float64)


def utc_offsets(event_ts_utc: np.ndarray, tz: str) -> np.ndarray:
    """UTC offset in seconds (int64) of ``tz`` at each epoch-second timestamp."""
    ts = np.asarray(event_ts_utc, dtype=np.float64)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(ts)):
        raise ValueError("event times must be finite")
    seconds = np.floor(ts).astype(np.int64)
    first, last = int(seconds.min()) // _BLOCK_S, int(seconds.max()) // _BLOCK_S
    if first == last and (offset := _block_offset(tz, first)) != _MIXED:
        return np.full(seconds.size, offset, dtype=np.int64)  # a small batch: one block, one offset
    blocks, inverse = np.unique(seconds // _BLOCK_S, return_inverse=True)
    per_block = np.array([_block_offset(tz, int(b)) for b in blocks], dtype=np.int64)
    offsets = per_block[inverse.reshape(-1)]
    mixed = np.flatnonzero(offsets == _MIXED)
    for i in mixed:  # only events inside the 15 minutes around a transition
        offsets[i] = _offset_at(tz, int(seconds[i]))
    return offsets


def local_day_hour(
    event_ts_utc: np.ndarray | Sequence[datetime] | Sequence[float], tz: str
) -> tuple[np.ndarray, np.ndarray]:
    """Market-local (day index, hour index) arrays, int64, for UTC event times.

    ``event_ts_utc`` is an array of epoch seconds or a sequence of aware datetimes.
    """
    ts = _as_epoch_seconds(event_ts_utc)
    local = np.floor(ts).astype(np.int64) + utc_offsets(ts, tz)
    return local // SECONDS_PER_DAY, local // SECONDS_PER_HOUR


def day_to_date(day: int) -> date:
    """The calendar date of a day index (``0`` → 1970-01-01)."""
    return EPOCH_DATE + timedelta(days=int(day))


def date_to_day(d: date) -> int:
    """The day index of a calendar date (inverse of :func:`day_to_date`)."""
    return (d - EPOCH_DATE).days


def hour_to_local(hour: int) -> datetime:
    """The naive market-local wall-clock start of an hour index."""
    return datetime(1970, 1, 1) + timedelta(hours=int(hour))


def local_to_hour(moment: datetime) -> int:
    """Hour index of a naive market-local wall-clock time (floor to the hour)."""
    if moment.tzinfo is not None:
        raise ValueError("local_to_hour takes a naive local wall-clock time")
    return date_to_day(moment.date()) * 24 + moment.hour


def day_start_utc(day: int, tz: str) -> datetime:
    """UTC instant of local midnight starting ``day`` (the first instant of that local date)."""
    local_midnight = datetime.combine(day_to_date(day), datetime.min.time(), _zone(tz))
    return local_midnight.astimezone(UTC)
