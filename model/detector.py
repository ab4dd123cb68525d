"""Surge and drop scores of today's partial demand against the forecast, and their calibration.

Pure numpy, batch-first: the worker scores a micro-batch of SKUs with :func:`score`, the offline
evaluation (:mod:`model.alert_eval`) scores every SKU-hour of a year with the same function.

What is compared (per SKU, at a moment of "today" at which ``share`` of the day's demand is
normally seen, see :mod:`model.nowcast`):

* **Expected**: the forecast's mean demand (from its quantiles, :func:`quantile_mean`) times
  ``share`` for today, plus the whole forecast of earlier days of the window. Festival-aware by
  construction: the forecast already carries the festival uplift, so an expected peak is not a
  surge. The shop-wide level of the day (all other SKUs' order lines vs their expectation) scales
  the expectation too: a day when the whole shop sells 2x is not a surge of any one SKU.
  Order lines are what is counted: ``expected orders = expected units × orders per unit`` (the
  SKU's own ratio over its history), because one bulk order of 500 units is one buyer, not a
  surge of demand, while a real surge brings many buyers.
* **Score**: a variance-stabilised (Anscombe) z of observed vs expected order lines,
  ``2 (√(O + 3/8) − √(E + 1/8))``, positive for surges, negated for drops. It is computed over
  today so far, over the last ``recent_hours`` hours alone (a burst late in the day is not diluted
  by a normal morning), and, with ``window_days`` > 1, over the last days (forecast from *before*
  the window, so a slow surge does not hide by raising its own forecast; days already reported by
  an alert of the same kind are left out). The largest counts. Drops look back further, over the
  last ``drop_window_days`` (no trailing hours): at a few order lines a day a silent day or two is
  normal, a silent week is not, and a slow drop does not hide by lowering its own forecast either.
* **Gates**: a surge must also exceed the forecast's median in units (scaled to the share of the
  day seen) and reach ``min_units``; a drop needs an expected count worth the name — at a few
  order lines a day, a quiet day is normal.
* **The SKU's own past** (with ``past_days``): over the last days the expectation is also held to
  what the SKU actually sold a day in the weeks before the drop window. A drop is judged against
  the lesser of the two: a product that had already stopped selling, or whose forecast overshoots
  (a Christmas ramp it does not share), is not a new drop. A multi-day surge is judged against
  the greater: a SKU that was already selling above its forecast is not a new surge over it.

The thresholds (:class:`model.thresholds.Thresholds`) are calibrated on a backtest of normal
days (:mod:`model.alert_eval`) so that at most ``false_alarm_rate`` alerts per SKU-day fire, and
stored beside the model.

Example::

    >>> import numpy as np
    >>> q = np.array([[[2.0, 10.0, 20.0]]])          # today's forecast: p10, p50, p90 units
    >>> inp = DetectorInputs(quantiles=(0.1, 0.5, 0.9), today=q[:, 0], window=q,
    ...     units=np.array([[90.0]]), orders=np.array([[30.0]]), include_surge=np.ones((1, 1), bool),
    ...     include_drop=np.ones((1, 1), bool), orders_per_unit=np.array([0.5]), share=np.array([0.5]))
    >>> s = score(inp, Thresholds())
    >>> bool(s.surge[0] > Thresholds().surge), round(float(s.expected_units[0]), 1)
    (True, 5.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.thresholds import Thresholds

SEVERITIES = ("info", "warning", "critical")
ANSCOMBE = 3.0 / 8.0
ANSCOMBE_CENTRE = 1.0 / 8.0
"""E[2√(X + 3/8)] ≈ 2√(λ + 1/8) for X ~ Poisson(λ): the unbiased centre (mean z ≈ 0 from λ ≈ 2)."""


def quantile_mean(values: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Mean demand implied by forecast quantiles ``values`` (..., Q) at ``quantiles``.

    The quantile function is taken piecewise linear between the given quantiles, flat below the
    lowest, and exponential above the highest with the scale its last gap implies (demand is
    right-skewed; ignoring the upper tail under-states the mean of a lumpy SKU by a third).

    >>> round(float(quantile_mean(np.array([1.0, 2.0, 6.0]), (0.1, 0.5, 0.9))), 3)
    3.149
    """
    q = np.asarray(quantiles, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    weights = np.zeros(q.size)
    weights[0] += q[0]
    weights[-1] += 1.0 - q[-1]
    gaps = np.diff(q) / 2.0
    weights[:-1] += gaps
    weights[1:] += gaps
    mean = v @ weights
    if q.size >= 2 and q[-1] < 1.0:
        # Exponential tail through the top two quantiles: scale = gap / ln(survival ratio).
        scale = (v[..., -1] - v[..., -2]) / np.log((1.0 - q[-2]) / (1.0 - q[-1]))
        mean = mean + (1.0 - q[-1]) * np.maximum(scale, 0.0)
    return mean


def anscombe_z(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Variance-stabilised difference of counts: about N(0, 1) for a Poisson count."""
    observed, expected = np.maximum(observed, 0.0), np.maximum(expected, 0.0)
    return 2.0 * (np.sqrt(observed + ANSCOMBE) - np.sqrt(expected + ANSCOMBE_CENTRE))


def margin_z(observed: np.ndarray, expected: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(surge z, drop z) of counts against an expectation known only to within a factor ``margin``.

    The expectation is a forecast, itself off by some percent for days on end, so over a long
    window (large ``E``) plain Poisson z grows with forecast error alone and a multi-day window of
    a best-seller breaches on it. Judging a surge against ``E × margin`` and a drop against
    ``E / margin`` forgives that error, yet still lets real evidence (a silent week) grow with
    ``√E`` — where a variance inflation would cap it.

    >>> s, d = margin_z(np.array([60.0, 0.0]), np.array([30.0, 30.0]), 1.25)
    >>> np.round(s, 2).tolist(), np.round(d, 2).tolist()
    ([3.27, -11.04], [-5.72, 8.6])
    """
    m = max(float(margin), 1.0)
    return anscombe_z(observed, expected * m), -anscombe_z(observed, expected / m)


SCAN_HOURS = (1, 2, 3, 6, 12)


def scan_hours(recent_hours: int) -> tuple[int, ...]:
    """The trailing-hour windows of today scored on their own: the ladder up to ``recent_hours``.

    A burst of one hour and a surge of an afternoon are each judged against their own hours.

    >>> scan_hours(6), scan_hours(2), scan_hours(0)
    ((1, 2, 3, 6), (1, 2), ())
    """
    if recent_hours <= 0:
        return ()
    return tuple(sorted({h for h in SCAN_HOURS if h < recent_hours} | {recent_hours}))


@dataclass
class DetectorInputs:
    """One batch of SKUs at one moment each; ``W`` = days read (at least
    :attr:`~model.thresholds.Thresholds.span_days`; fewer cap both windows), ``Q`` = quantiles."""

    quantiles: Sequence[float]
    today: np.ndarray
    """(n, Q) forecast of today, made from history up to yesterday (the published forecast)."""
    window: np.ndarray
    """(n, W, Q) forecast of the window's days (the last is today), made before the window."""
    units: np.ndarray
    """(n, W) units observed on the window's days; the last column is today so far."""
    orders: np.ndarray
    """(n, W) order lines observed, same layout."""
    include_surge: np.ndarray
    """(n, W) bool: the window days a surge score may use (not yet reported by a surge alert)."""
    include_drop: np.ndarray
    orders_per_unit: np.ndarray
    """(n,) the SKU's order lines per unit over its history."""
    share: np.ndarray
    """(n,) share of today's demand normally seen by now (0..1)."""
    recent_units: np.ndarray | None = None
    """(n, K) units of today's trailing hours, one column per window of :func:`scan_hours` (or (n,)
    for one window; see ``recent_share``); ``None``: not scored."""
    recent_orders: np.ndarray | None = None
    recent_share: np.ndarray | None = None
    """(n, K) share of the day's demand those hours normally hold: a burst that starts late in the
    day is judged against its own hours, not diluted by a normal morning."""
    history_days: np.ndarray | None = None
    """(n,) days since the SKU's first sale; rows under ``min_history_days`` never alert."""
    windows: np.ndarray | None = None
    """(n, W, W, Q): row ``k - 1`` is the forecast made the day before the last ``k`` window days
    (only those ``k`` days of it are read). Each trailing window is then judged against the
    freshest forecast that cannot have seen it; ``None``: ``window`` serves every window."""
    since_surge: np.ndarray | None = None
    """(n,) days since a surge alert of the SKU last breached (0 = today; large = never). The
    forecast has learned from the surge, so for ``settle_days`` after it a normal day looks like a
    drop: no drop is scored then. ``None``: no such history."""
    since_drop: np.ndarray | None = None
    """(n,) the same after a drop alert (recovery against a forecast pulled down is no surge)."""
    past_orders: np.ndarray | None = None
    """(n,) order lines a day the SKU actually sold over the weeks before the drop window. Over the
    last days a drop is judged against the lesser of the forecast and this (scaled like it), a surge
    against the greater: a SKU the forecast still expects to sell but that had stopped (a product at
    its end, a forecast that overshoots) is not a new drop, one already selling above its forecast
    not a new surge. ``None``: the forecast alone."""
    level: np.ndarray | None = None
    """(n, W) market-wide demand level per window day (observed / expected over all SKUs; 1 = as
    forecast). A day when the whole shop sells 3x is not a surge of any one SKU."""


@dataclass
class Scores:
    surge: np.ndarray
    """(n,) surge z (−inf where a gate fails)."""
    drop: np.ndarray
    """(n,) drop z, positive = fewer orders than expected (−inf where a gate fails)."""
    z_today: np.ndarray
    """(n,) signed z of today alone."""
    surge_ratio: np.ndarray
    """(n,) observed / expected order lines in the surge score's window."""
    drop_ratio: np.ndarray
    """(n,) expected / observed order lines in the drop score's window."""
    observed_units: np.ndarray
    expected_units: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    observed_orders: np.ndarray
    expected_orders: np.ndarray
    share: np.ndarray


def _as_columns(values: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) or (n, K) as (n, K) float (one column per trailing-hour window)."""
    v = np.asarray(values, dtype=np.float64)
    return v.reshape(n, -1)


def _suffix_sums(values: np.ndarray, include: np.ndarray) -> np.ndarray:
    """(n, W): column ``k - 1`` sums the last ``k`` window days that ``include`` keeps."""
    return np.cumsum((values * include)[:, ::-1], axis=1)


def _best(z: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row the largest ``z`` over the columns where ``ok`` holds (−inf: none), and its column."""
    gated = np.where(ok, z, -np.inf)
    col = np.argmax(gated, axis=1)
    return gated[np.arange(len(col)), col], col  # (plain indexing: take_along_axis costs ~0.5 ms a call)


def score(inp: DetectorInputs, th: Thresholds) -> Scores:
    """Surge and drop scores of a batch (see the module docstring)."""
    n, w = inp.units.shape
    w_s, w_d = min(th.window_days, w), min(th.drop_days, w)  # last k = 1..w_s days for surges, 1..w_d for drops
    q = list(inp.quantiles)
    lo, hi = 0, len(q) - 1
    mid = int(np.argmin(np.abs(np.asarray(q) - 0.5)))
    share = np.clip(np.asarray(inp.share, dtype=np.float64), 0.0, 1.0)
    # Share of each window day expected by now: whole earlier days, today's share so far.
    day_share = np.ones((n, w))
    day_share[:, -1] = share
    opu = np.asarray(inp.orders_per_unit, dtype=np.float64)
    level = np.ones((n, w)) if inp.level is None else np.asarray(inp.level, dtype=np.float64)
    mature = np.ones(n, dtype=bool) if inp.history_days is None else inp.history_days >= th.min_history_days

    def settled(since_other: np.ndarray | None) -> np.ndarray:
        """Mature rows not still digesting a recent anomaly of the other kind (within settle_days)."""
        if since_other is None or th.settle_days <= 0:
            return mature
        return mature & (np.asarray(since_other) > th.settle_days)

    settled_s, settled_d = settled(inp.since_drop), settled(inp.since_surge)

    def z_up(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        return margin_z(observed, expected, th.margin)[0]

    def z_down(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        return margin_z(observed, expected, th.margin)[1]

    today_mean = quantile_mean(inp.today, q)
    exp_orders_today = share * today_mean * opu * level[:, -1]
    obs_units_today = inp.units[:, -1].astype(np.float64)
    obs_orders_today = inp.orders[:, -1].astype(np.float64)
    upper_today = share * inp.today[:, hi]
    median_today = share * inp.today[:, mid]
    z_today = anscombe_z(obs_orders_today, exp_orders_today)

    # Candidate windows, one column each: today (fresh forecast), the last k = 1..W window days
    # (forecast from before the window: a slow surge or a silent SKU does not pull its own
    # expectation along), and the trailing hours of today. The largest z counts; calibration takes
    # the daily max of exactly this score, so scanning more windows raises the threshold with it.
    per_k = np.repeat(inp.window[:, None], w, axis=1) if inp.windows is None else np.asarray(inp.windows)
    last_k = np.arange(w)[None, :] >= w - 1 - np.arange(w)[:, None]  # (k, day): day among the last k + 1
    exp_day = quantile_mean(per_k, q) * (day_share * opu[:, None] * level)[:, None, :]  # (n, k, day)
    med_day = per_k[..., mid] * day_share[:, None, :]
    units = inp.units.astype(np.float64)
    orders = inp.orders.astype(np.float64)
    inc_s, inc_d = inp.include_surge.astype(np.float64), inp.include_drop.astype(np.float64)
    u_s, o_s = _suffix_sums(units, inc_s)[:, :w_s], _suffix_sums(orders, inc_s)[:, :w_s]
    e_s = (exp_day[:, :w_s] * (inc_s[:, None, :] * last_k[:w_s])).sum(axis=2)
    past = None if inp.past_orders is None else np.asarray(inp.past_orders, dtype=np.float64)[:, None]
    if past is not None:  # the window's days as counted (share of today, market level), at the past rate
        e_s = np.maximum(e_s, past * _suffix_sums(day_share * level, inc_s)[:, :w_s])
    m_s = (med_day[:, :w_s] * (inc_s[:, None, :] * last_k[:w_s])).sum(axis=2)
    obs_s = [obs_orders_today[:, None], o_s]
    exp_s = [exp_orders_today[:, None], e_s]
    gate_s = [((obs_units_today > median_today) & (obs_units_today >= th.min_units))[:, None],
              (u_s > m_s) & (u_s >= th.min_units)]
    if inp.recent_orders is not None and inp.recent_units is not None and inp.recent_share is not None:
        r_share = np.clip(_as_columns(inp.recent_share, n), 0.0, 1.0)
        r_units, r_orders = _as_columns(inp.recent_units, n), _as_columns(inp.recent_orders, n)
        obs_s.append(r_orders)
        exp_s.append(r_share * (today_mean * opu * level[:, -1])[:, None])
        gate_s.append((r_units > r_share * inp.today[:, mid : mid + 1]) & (r_units >= th.min_units))
    obs_all, exp_all = np.concatenate(obs_s, axis=1), np.concatenate(exp_s, axis=1)
    surge, col = _best(z_up(obs_all, exp_all), np.concatenate(gate_s, axis=1) & settled_s[:, None])
    rows = np.arange(len(col))
    surge_ratio = obs_all[rows, col] / np.maximum(exp_all[rows, col], 1e-9)

    # Drop: today and the last k = 1..w_d window days, fewer orders than expected (no trailing
    # hours: at a few order lines a day, a quiet hour is normal).
    o_d = _suffix_sums(orders, inc_d)[:, :w_d]
    e_d = (exp_day[:, :w_d] * (inc_d[:, None, :] * last_k[:w_d])).sum(axis=2)
    if past is not None:
        e_d = np.minimum(e_d, past * _suffix_sums(day_share * level, inc_d)[:, :w_d])
    obs_d = np.concatenate([obs_orders_today[:, None], o_d], axis=1)
    exp_d = np.concatenate([exp_orders_today[:, None], e_d], axis=1)
    drop, col_d = _best(z_down(obs_d, exp_d), (exp_d >= th.min_expected_orders) & settled_d[:, None])
    drop_ratio = exp_d[rows, col_d] / np.maximum(obs_d[rows, col_d], 0.5)

    return Scores(
        surge=surge,
        drop=drop,
        z_today=z_today,
        surge_ratio=surge_ratio,
        drop_ratio=drop_ratio,
        observed_units=obs_units_today,
        expected_units=median_today,
        lower=share * inp.today[:, lo],
        upper=upper_today,
        observed_orders=obs_orders_today,
        expected_orders=exp_orders_today,
        share=share,
    )


def severity(ratio: float, th: Thresholds) -> str:
    """info / warning / critical from the size of the deviation (observed vs expected)."""
    if ratio >= th.critical_ratio:
        return "critical"
    if ratio >= th.warning_ratio:
        return "warning"
    return "info"


def orders_per_unit(orders: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(n,) order lines per unit over each row's history, shrunk towards one line per 10 units."""
    return (orders.sum(axis=1, dtype=np.float64) + 0.1) / (units.sum(axis=1, dtype=np.float64) + 1.0)


def past_daily_orders(orders: np.ndarray, th: Thresholds) -> np.ndarray | None:
    """(n,) order lines a day over the ``past_days`` before the drop window, from ``orders`` (n, D)
    daily order lines whose last column is today; ``None`` when ``past_days`` is 0.

    >>> past_daily_orders(np.array([[4.0, 2.0, 0.0, 0.0, 0.0]]), Thresholds(drop_window_days=3, past_days=2))
    array([3.])
    """
    if not th.past_days:
        return None
    end = orders.shape[1] - th.drop_days
    return orders[:, max(end - th.past_days, 0) : max(end, 0)].sum(axis=1) / th.past_days


def breaches(s: Scores, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(surge, drop) bool per row: the score lies beyond its calibrated threshold."""
    return s.surge > th.surge, s.drop > th.drop


def calm(s: Scores, th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(surge, drop) bool per row: normal enough for an open alert of that kind to resolve.

    Enough of the day must be seen; a drop also needs the SKU to be selling again. A surge needs
    evidence too: some order lines today, or an expectation of at least one by now. A day the shop
    does not trade (no orders, none expected) says nothing, so a surge alert stays open over it
    rather than resolving on Saturday and opening anew on Sunday.
    """
    seen = s.share >= th.resolve_share
    evidence = (s.observed_orders >= 1) | (s.expected_orders >= 1)
    return seen & evidence & (s.z_today < th.resolve), seen & (-s.z_today < th.resolve) & (s.observed_orders >= 1)


def active_festivals(days: np.ndarray, festivals: Sequence[Any]) -> list[str | None]:
    """The festival each local day index lies in, if any: ``christmas``, ``christmas (lead-in)``, ...

    ``festivals`` are :class:`model.festivals.Festival` (the model's feature spec knows its own).
    A peak beats a lead-in, a lead-in beats a tail.
    """
    from model.features import index_to_date
    from model.festivals import occurrences

    out: list[str | None] = []
    cache: dict[int, list[Any]] = {}
    for d in np.asarray(days, dtype=np.int64).reshape(-1):
        when = index_to_date(int(d))
        found: tuple[int, int, str] | None = None
        for year in (when.year - 1, when.year, when.year + 1):
            for o in cache.setdefault(year, occurrences(list(festivals), year) if festivals else []):
                lead = (o.start - when).days
                since = (when - o.end).days
                if o.start <= when <= o.end:
                    rank, name = 0, o.klass
                elif 0 < lead <= o.lead_in:
                    rank, name = 1, f"{o.klass} (lead-in)"
                elif 0 < since <= o.tail:
                    rank, name = 2, f"{o.klass} (tail)"
                else:
                    continue
                # A peak beats a lead-in beats a tail; then the bigger festival (longer lead-in)
                # beats a generic one (Christmas Day is also a bank holiday).
                if found is None or (rank, -o.lead_in) < found[:2]:
                    found = (rank, -o.lead_in, name)
        out.append(found[2] if found else None)
    return out
