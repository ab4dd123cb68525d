"""The harness's M5 scoring reproduces the published benchmarks before any model number counts."""

from __future__ import annotations

import numpy as np
import pytest

from model.datasets import M5_DIR, M5_SERIES, M5_TRAIN_DAYS, m5
from model.m5 import PUBLISHED, wrmsse_l1_l3

pytestmark = pytest.mark.skipif(not M5_DIR.is_dir(), reason="needs ../shared/data/m5")


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray]:
    data = m5()
    assert data.series == list(M5_SERIES) and data.values.shape == (14, 1969)
    assert data.origins == [M5_TRAIN_DAYS - 1] and data.horizon == 28
    return data.values[:, :M5_TRAIN_DAYS], data.values[:, M5_TRAIN_DAYS:]


def test_seasonal_naive_wrmsse_matches_the_published_table(split: tuple[np.ndarray, np.ndarray]) -> None:
    history, actual = split
    snaive = np.tile(history[:, -7:], 4)
    scores = wrmsse_l1_l3(history, actual, snaive)
    for level, published in PUBLISHED["sNaive"].items():
        assert round(scores[level], 6) == published


def test_naive_wrmsse_matches_the_published_table(split: tuple[np.ndarray, np.ndarray]) -> None:
    history, actual = split
    naive = np.repeat(history[:, -1:], 28, axis=1)
    scores = wrmsse_l1_l3(history, actual, naive)
    assert {k: round(v, 6) for k, v in scores.items()} == PUBLISHED["Naive"]


def test_a_perfect_forecast_scores_zero_and_a_worse_one_more(split: tuple[np.ndarray, np.ndarray]) -> None:
    history, actual = split
    assert wrmsse_l1_l3(history, actual, actual.astype(np.float64)) == {"L1": 0.0, "L2": 0.0, "L3": 0.0}
    snaive = wrmsse_l1_l3(history, actual, np.tile(history[:, -7:], 4))
    worse = wrmsse_l1_l3(history, actual, np.tile(history[:, -7:], 4) * 1.2)
    assert all(worse[k] > snaive[k] for k in snaive)


def test_m5_covariates_carry_each_series_snap_days() -> None:
    data = m5()
    snap = data.covariate_names.index("snap_own_state")
    # 2016-06-03 (d_1953) is a SNAP day in all three states; 2016-06-16 (d_1966) in none.
    assert data.covariates[:, 1952, snap].tolist() == [1.0] * 14
    assert data.covariates[:, 1965, snap].tolist() == [0.0] * 14
    # 2016-06-02 (d_1952) is SNAP in CA and WI only -> the total gets 2/3, Texas stores 0.
    row = data.covariates[:, 1951, snap]
    assert row[M5_SERIES.index("CA_1")] == 1.0 and row[M5_SERIES.index("TX_2")] == 0.0
    assert row[0] == pytest.approx(2 / 3)
