"""Festival calendar: built-in festivals per market with date rules for any year, user campaigns,
and known-ahead festival features for every day.

A :class:`Festival` is a peak (``peak_days`` long, starting on the rule's date) with a lead-in
(``lead_in`` days before, when demand ramps up) and a tail (``tail`` days after). Festivals of the
same ``klass`` share features, so a market's feature list is fixed by its classes, not by years.

Date rules (all pure functions of the year):

* CN: Singles' Day 11 Nov; Double 12 12 Dec; 618 18 Jun (JD's sale, pre-sales from 1 Jun);
  Spring Festival = lunar 1/1 (``lunardate``), peak the 7-day Golden Week, tail to the Lantern
  Festival; Qixi = lunar 7/7.
* US: Super Bowl = first Sunday of February until 2021, second Sunday from 2022 (the 17-week
  NFL season); Valentine's 14 Feb; Mother's Day = 2nd Sunday of May; **Prime Day = the
  second Tuesday of July, 2 days** (Amazon announces the real dates each year, e.g. 2020 was
  moved to October: put the announced dates in a campaign file to override); Thanksgiving = 4th
  Thursday of November; Black Friday = the day after; Cyber Monday = 4 days after; Christmas 25 Dec.
* UK: Black Friday (US rule), Christmas, Boxing Day 26 Dec, and England bank holidays from the
  ``holidays`` package (substitute days and one-offs included).
* M5: the US rules plus the dated events of M5's ``calendar.csv`` (pass them with
  :func:`events_from_dates`), grouped by their event type.

Features per class (all float32, see :func:`festival_features`): ``<class>_days_to`` and
``<class>_days_since`` (days to the next peak start / since the last peak end, 0 inside the peak,
clipped at :data:`FEATURE_CLIP_DAYS` and divided by it) and ``<class>_lead``/``_peak``/``_tail``
in-window flags. They depend on the day alone, so every horizon step gets its own values.

Example::

    >>> from datetime import date
    >>> [o.start.isoformat() for o in occurrences(BUILTIN["US"], 2024) if o.klass == "black_friday"]
    ['2024-11-29']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import yaml
from lunardate import LunarDate

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
FEATURE_CLIP_DAYS = 60.0
FEATURE_KINDS: tuple[str, ...] = ("days_to", "days_since", "lead", "peak", "tail")

DateRule = Callable[[int], Sequence[date]]
"""Year -> the peak start dates of that year (usually one; bank holidays give several)."""


@dataclass(frozen=True)
class Festival:
    name: str
    klass: str
    rule: DateRule
    lead_in: int = 7
    peak_days: int = 1
    tail: int = 2


@dataclass(frozen=True)
class Occurrence:
    klass: str
    start: date
    end: date  # last peak day, inclusive
    lead_in: int
    tail: int


# ---- date rules --------------------------------------------------------------------------


def fixed(month: int, day: int) -> DateRule:
    return lambda year: [date(year, month, day)]


def nth_weekday(month: int, weekday: int, n: int, offset_days: int = 0) -> DateRule:
    """The ``n``-th ``weekday`` (Mon=0) of ``month`` (+ ``offset_days``)."""

    def rule(year: int) -> list[date]:
        first = date(year, month, 1)
        day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
        return [day + timedelta(days=offset_days)]

    return rule


def lunar(month: int, day: int) -> DateRule:
    return lambda year: [LunarDate(year, month, day).to_solar_date()]


def super_bowl(year: int) -> list[date]:
    # 17-week NFL seasons put it on the 1st Sunday of February; 18-week seasons (from the 2021
    # season, game in 2022) on the 2nd.
    return list(nth_weekday(2, 6, 2 if year >= 2022 else 1)(year))


def uk_bank_holidays(year: int) -> list[date]:
    return sorted(holidays.country_holidays("GB", subdiv="ENG", years=year))


THANKSGIVING = nth_weekday(11, 3, 4)

BUILTIN: dict[str, tuple[Festival, ...]] = {
    "CN": (
        Festival("singles_day", "singles_day", fixed(11, 11), lead_in=10, peak_days=1, tail=3),
        Festival("double_12", "double_12", fixed(12, 12), lead_in=5, peak_days=1, tail=2),
        Festival("618", "jd_618", fixed(6, 18), lead_in=17, peak_days=1, tail=2),
        Festival("spring_festival", "spring_festival", lunar(1, 1), lead_in=21, peak_days=7, tail=8),
        Festival("qixi", "qixi", lunar(7, 7), lead_in=7, peak_days=1, tail=1),
    ),
    "US": (
        Festival("super_bowl", "super_bowl", super_bowl, lead_in=7, peak_days=1, tail=1),
        Festival("valentines", "valentines", fixed(2, 14), lead_in=7, peak_days=1, tail=1),
        Festival("mothers_day", "mothers_day", nth_weekday(5, 6, 2), lead_in=7, peak_days=1, tail=1),
        Festival("prime_day", "prime_day", nth_weekday(7, 1, 2), lead_in=7, peak_days=2, tail=2),
        Festival("thanksgiving", "thanksgiving", THANKSGIVING, lead_in=7, peak_days=1, tail=0),
        Festival("black_friday", "black_friday", nth_weekday(11, 3, 4, 1), lead_in=7, peak_days=1, tail=2),
        Festival("cyber_monday", "cyber_monday", nth_weekday(11, 3, 4, 4), lead_in=2, peak_days=1, tail=2),
        Festival("christmas", "christmas", fixed(12, 25), lead_in=30, peak_days=1, tail=7),
    ),
    "UK": (
        Festival("black_friday", "black_friday", nth_weekday(11, 3, 4, 1), lead_in=7, peak_days=1, tail=3),
        Festival("christmas", "christmas", fixed(12, 25), lead_in=42, peak_days=1, tail=7),
        Festival("boxing_day", "boxing_day", fixed(12, 26), lead_in=1, peak_days=1, tail=5),
        Festival("bank_holiday", "bank_holiday", uk_bank_holidays, lead_in=3, peak_days=1, tail=1),
    ),
}
BUILTIN["M5"] = BUILTIN["US"]


def markets() -> list[str]:
    return sorted(BUILTIN)


# ---- user campaigns and dated events -----------------------------------------------------


def events_from_dates(
    klass: str, dates: Iterable[date], lead_in: int = 3, peak_days: int = 1, tail: int = 1
) -> Festival:
    """A festival class from explicit dates (M5 events, announced sales): no rule, just days."""
    by_year: dict[int, list[date]] = {}
    for d in sorted(set(dates)):
        by_year.setdefault(d.year, []).append(d)
    frozen = {y: tuple(v) for y, v in by_year.items()}
    return Festival(klass, klass, lambda year: list(frozen.get(year, ())), lead_in, peak_days, tail)


def _campaign(entry: dict[str, Any]) -> list[Festival]:
    try:
        start = date.fromisoformat(str(entry["start"]))
        end = date.fromisoformat(str(entry.get("end", entry["start"])))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"campaign {entry!r} needs ISO dates 'start' (and optional 'end'): {exc}") from exc
    if end < start:
        raise ValueError(f"campaign {entry.get('name', '?')!r} ends ({end}) before it starts ({start})")
    klass = str(entry.get("class", "campaign"))
    if not klass.replace("_", "").isalnum():
        raise ValueError(f"campaign class {klass!r} must be letters, digits and underscores")
    peak = (end - start).days + 1
    return [events_from_dates(klass, [start], int(entry.get("lead_in", 7)), peak, int(entry.get("tail", 2)))]


def load_campaigns(path: str | Path) -> tuple[Festival, ...]:
    """User campaigns from YAML or JSON: a list (or ``{"campaigns": [...]}``) of entries
    ``{name, start, end?, lead_in?, tail?, class?}`` (class defaults to ``campaign``)."""
    text = Path(path).read_text()
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    entries = data.get("campaigns", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of campaigns")
    return tuple(f for entry in entries for f in _campaign(dict(entry)))


def campaigns_to_json(festivals: Sequence[Festival], years: Iterable[int]) -> list[dict[str, Any]]:
    """Dated festivals as plain entries (what model metadata stores so a forecaster can rebuild them)."""
    out = []
    for o in sorted(_occurrences_of(tuple(festivals), tuple(sorted(set(years)))), key=lambda o: (o.klass, o.start)):
        out.append({"class": o.klass, "start": o.start.isoformat(), "end": o.end.isoformat(),
                    "lead_in": o.lead_in, "tail": o.tail, "name": o.klass})
    return out


def campaigns_from_json(entries: Sequence[dict[str, Any]]) -> tuple[Festival, ...]:
    return tuple(f for entry in entries for f in _campaign(dict(entry)))


# ---- occurrences and features ------------------------------------------------------------


def _occurrences_of(festivals: tuple[Festival, ...], years: tuple[int, ...]) -> list[Occurrence]:
    out = []
    for f in festivals:
        for year in years:
            for start in f.rule(year):
                end = start + timedelta(days=f.peak_days - 1)
                out.append(Occurrence(f.klass, start, end, f.lead_in, f.tail))
    return out


def occurrences(festivals: Sequence[Festival], year: int) -> list[Occurrence]:
    return sorted(_occurrences_of(tuple(festivals), (year,)), key=lambda o: (o.start, o.klass))


def classes(festivals: Sequence[Festival]) -> tuple[str, ...]:
    """Festival classes in first-seen order (the feature order)."""
    return tuple(dict.fromkeys(f.klass for f in festivals))


def feature_names(festivals: Sequence[Festival]) -> tuple[str, ...]:
    return tuple(f"{k}_{kind}" for k in classes(festivals) for kind in FEATURE_KINDS)


@lru_cache(maxsize=256)
def _class_arrays(
    festivals: tuple[Festival, ...], klass: str, first_year: int, last_year: int
) -> tuple[np.ndarray, ...]:
    occ = [o for o in _occurrences_of(festivals, tuple(range(first_year, last_year + 1))) if o.klass == klass]
    occ.sort(key=lambda o: o.start)
    as_idx = np.asarray
    return (
        as_idx([o.start.toordinal() - EPOCH_ORDINAL for o in occ], dtype=np.int64),
        as_idx([o.end.toordinal() - EPOCH_ORDINAL for o in occ], dtype=np.int64),
        as_idx([o.lead_in for o in occ], dtype=np.int64),
        as_idx([o.tail for o in occ], dtype=np.int64),
    )


def _class_features(days: np.ndarray, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    starts, ends, lead, tail = arrays
    out = np.zeros((days.size, len(FEATURE_KINDS)), dtype=np.float32)
    out[:, 0] = out[:, 1] = 1.0  # "far away" where no occurrence is known
    if starts.size == 0:
        return out
    big = np.int64(10**6)
    # Next peak start at or after the day (0 while inside a peak), last peak end at or before it.
    nxt = np.searchsorted(starts, days, side="left")
    to_next = np.where(nxt < starts.size, starts[np.minimum(nxt, starts.size - 1)] - days, big)
    prv = np.searchsorted(ends, days, side="right") - 1
    since = np.where(prv >= 0, days - ends[np.maximum(prv, 0)], big)
    # Inside a peak: the latest start <= day whose end >= day.
    cur = np.searchsorted(starts, days, side="right") - 1
    cur_ok = cur >= 0
    in_peak = cur_ok & (ends[np.maximum(cur, 0)] >= days)
    to_next = np.where(in_peak, 0, to_next)
    since = np.where(in_peak, 0, since)
    lead_of_next = np.where(nxt < starts.size, lead[np.minimum(nxt, starts.size - 1)], -1)
    tail_of_prev = np.where(prv >= 0, tail[np.maximum(prv, 0)], -1)
    out[:, 0] = np.minimum(to_next, FEATURE_CLIP_DAYS) / FEATURE_CLIP_DAYS
    out[:, 1] = np.minimum(since, FEATURE_CLIP_DAYS) / FEATURE_CLIP_DAYS
    out[:, 2] = (~in_peak & (to_next >= 1) & (to_next <= lead_of_next)).astype(np.float32)
    out[:, 3] = in_peak.astype(np.float32)
    out[:, 4] = (~in_peak & (since >= 1) & (since <= tail_of_prev)).astype(np.float32)
    return out


def festival_features(days: np.ndarray, festivals: Sequence[Festival]) -> np.ndarray:
    """Known-ahead festival features of integer day indices: ``days.shape + (len(feature_names),)``."""
    days = np.asarray(days, dtype=np.int64)
    flat = days.reshape(-1)
    names = feature_names(festivals)
    if flat.size == 0 or not names:
        return np.zeros((*days.shape, len(names)), dtype=np.float32)
    years = flat.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    # One year either side so the days to/since wrap across New Year.
    first, last = int(years.min()) - 1, int(years.max()) + 1
    key = tuple(festivals)
    blocks = [_class_features(flat, _class_arrays(key, k, first, last)) for k in classes(festivals)]
    return np.concatenate(blocks, axis=1).reshape(*days.shape, len(names))
