"""The IEMOCAP duration model against the published statistics, analytically and by sampling."""

import math

import numpy as np
import pytest
from scipy.integrate import trapezoid

from benchmark.perf.durations import IEMOCAP_4CLASS, DurationModel


def test_fit_matches_the_published_statistics():
    m = DurationModel.iemocap()
    assert m.mean() == pytest.approx(IEMOCAP_4CLASS["mean"], rel=1e-4)
    assert m.quantile(0.5) == pytest.approx(IEMOCAP_4CLASS["median"], rel=1e-4)
    assert m.quantile(0.95) == pytest.approx(IEMOCAP_4CLASS["p95"], rel=0.01)  # not fitted, and close
    assert m.quantile(1.0) == pytest.approx(IEMOCAP_4CLASS["max"])
    # the untruncated closed form would be sigma = sqrt(2 ln(mean / median)); truncation needs a slightly wider one
    assert math.sqrt(2 * math.log(4.53 / 3.58)) < m.sigma < 0.7


def test_samples_follow_the_model():
    m = DurationModel.iemocap()
    x = m.sample(40_000, np.random.default_rng(0))
    assert x.max() <= IEMOCAP_4CLASS["max"] and x.min() > 0
    assert np.mean(x) == pytest.approx(4.53, rel=0.02)
    assert np.median(x) == pytest.approx(3.58, rel=0.02)
    assert np.quantile(x, 0.95) == pytest.approx(11.1, rel=0.03)


def test_cropped_mean_against_numerical_integration():
    m = DurationModel.iemocap()
    grid = np.linspace(1e-4, m.max_seconds, 400_001)
    density = np.exp(-((np.log(grid) - m.mu) ** 2) / (2 * m.sigma**2)) / (grid * m.sigma * math.sqrt(2 * math.pi))
    density /= trapezoid(density, grid)
    for crop in (3.0, 10.0, 20.0):
        expected = trapezoid(np.minimum(grid, crop) * density, grid)
        assert m.cropped_mean(crop) == pytest.approx(expected, rel=1e-4)
    assert m.cropped_mean(100.0) == pytest.approx(m.mean())
