"""Significance statistics against hand-computed cases and simulated data with a known truth."""

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import confusion_matrix

from benchmark.reports import stats


def test_paired_t_matches_a_hand_computed_statistic():
    base = np.array([0.50, 0.55, 0.60, 0.52, 0.58])
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03])
    # by hand: mean 0.026; deviations -0.006 0.024 -0.036 0.014 0.004; squares sum 0.00212;
    # sd = sqrt(0.00212 / 4) = 0.0230217; t = 0.026 / (0.0230217 / sqrt 5) = 2.52535
    mean = d.sum() / 5
    sd = math.sqrt(((d - mean) ** 2).sum() / 4)
    t_hand = mean / (sd / math.sqrt(5))
    assert t_hand == pytest.approx(2.52535, abs=1e-4)
    res = stats.paired_tests(base + d, base)
    assert res.n == 5
    assert res.mean_diff == pytest.approx(0.026)
    assert res.t == pytest.approx(t_hand, rel=1e-9)
    assert res.p_t == pytest.approx(2 * sps.t.sf(t_hand, df=4), rel=1e-9)
    assert 0.05 < res.p_t < 0.1  # t(4) critical value at 5 % is 2.776
    assert res.note == ""


def test_wilcoxon_exact_p_for_all_positive_differences():
    # 5 positive distinct differences: W = 0; exact two-sided p = 2 * (1/2^5) = 0.0625
    res = stats.paired_tests([0.61, 0.62, 0.63, 0.64, 0.65], [0.60, 0.60, 0.60, 0.60, 0.60])
    assert res.w == 0.0
    assert res.p_w == pytest.approx(2 / 32)


def test_wilcoxon_drops_a_zero_difference_and_stays_exact():
    # folds 1-4 differ by +0.1, +0.2, +0.3, +0.05; fold 5 ties. The tie is dropped ("wilcox" zero method), leaving
    # 4 positive distinct differences: W = 0, exact two-sided p = 2 / 2^4 = 0.125 (not the normal approximation)
    res = stats.paired_tests([0.6, 0.7, 0.8, 0.55, 0.5], [0.5, 0.5, 0.5, 0.5, 0.5])
    assert res.n == 5 and res.w == 0.0
    assert res.p_w == pytest.approx(2 / 16)


def test_no_p_value_with_fewer_than_two_folds_says_why():
    res = stats.paired_tests([0.7], [0.6])
    assert res.n == 1 and res.mean_diff == pytest.approx(0.1)
    assert res.t is None and res.p_t is None and res.w is None and res.p_w is None
    assert "1 paired fold" in res.note and "needs 2" in res.note


def test_no_p_value_when_every_difference_is_zero():
    res = stats.paired_tests([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert res.p_t is None and res.p_w is None
    assert res.mean_diff == 0.0
    assert "all differences 0" in res.note


def test_constant_differences_have_no_t_but_a_wilcoxon_p():
    res = stats.paired_tests([0.55, 0.65, 0.75], [0.5, 0.6, 0.7])
    assert res.t is None and res.p_t is None
    assert "zero variance" in res.note
    assert res.p_w == pytest.approx(2 / 8)  # 3 positive differences, exact


def test_unmatched_folds_are_an_error():
    with pytest.raises(ValueError, match="matched folds"):
        stats.paired_tests([0.1, 0.2], [0.1])


def test_metrics_from_confusion_counts_by_hand():
    cm = np.array([[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 5, 0], [1, 0, 0, 0]], dtype=float)
    # WAR = (3 + 2 + 5 + 0) / 14; recalls 3/4, 2/4, 5/5, 0/1 -> UAR = 2.25 / 4
    assert stats.war_of(cm) == pytest.approx(10 / 14)
    assert stats.uar_of(cm) == pytest.approx(2.25 / 4)
    cm[3] = 0  # an absent class is left out of UAR
    assert stats.uar_of(cm) == pytest.approx(2.25 / 3)
    assert np.isnan(stats.recalls_of(cm)[3])


def test_speaker_confusions_sum_to_sklearns_matrix():
    rng = np.random.default_rng(3)
    spk, yt, yp = rng.integers(0, 5, 300), rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    counts = stats.speaker_confusions(spk, yt, yp, 5, 4)
    assert counts.shape == (5, 4, 4)
    np.testing.assert_array_equal(counts.sum(axis=0), confusion_matrix(yt, yp, labels=range(4)))
    np.testing.assert_array_equal(counts[2], confusion_matrix(yt[spk == 2], yp[spk == 2], labels=range(4)))


def test_resampling_keeps_each_strata_size_and_is_seeded():
    strata = np.array(["F", "F", "F", "M", "M"])
    w = stats.resample_speakers(strata, 200, np.random.default_rng(0))
    assert w.shape == (200, 5)
    # n - 1 draws per stratum of n (Rao-Wu): 2 of the 3 female, 1 of the 2 male speakers
    np.testing.assert_array_equal(w[:, :3].sum(axis=1), 2)
    np.testing.assert_array_equal(w[:, 3:].sum(axis=1), 1)
    assert stats.resample_speakers(np.array(["F", "M"]), 5, np.random.default_rng(0)).tolist() == [[1, 1]] * 5
    again = stats.resample_speakers(strata, 200, np.random.default_rng(0))
    np.testing.assert_array_equal(w, again)
    assert len({tuple(r) for r in w}) > 10  # really resampled


def _simulated_pair(rng, n_speakers=20, per_speaker=40, delta=0.10):
    """Two systems on the same utterances; speaker s is right with p_s (A) and p_s - delta (B)."""
    strata = np.array(["F", "M"] * (n_speakers // 2))
    p = np.clip(0.65 + rng.normal(0, 0.1, n_speakers), 0.2, 0.95)
    spk = np.repeat(np.arange(n_speakers), per_speaker)
    y = rng.integers(0, 4, len(spk))
    right_a = rng.random(len(spk)) < p[spk]
    right_b = rng.random(len(spk)) < p[spk] - delta
    wrong = (y + rng.integers(1, 4, len(spk))) % 4
    ca = stats.speaker_confusions(spk, y, np.where(right_a, y, wrong), n_speakers, 4)
    cb = stats.speaker_confusions(spk, y, np.where(right_b, y, wrong), n_speakers, 4)
    return ca, cb, strata


def test_cluster_bootstrap_covers_the_true_difference_on_simulated_data():
    # Truth: system A is right 10 points more often than B for every speaker, so the expected pooled WAR
    # difference is 0.10. Over 400 simulated studies of 20 speakers the 95 % interval must cover it about
    # 93 % of the time (measured; percentile intervals from few clusters run a little narrow).
    rng = np.random.default_rng(2024)
    covered, widths = 0, []
    for i in range(400):
        ca, cb, strata = _simulated_pair(rng)
        iv = stats.cluster_bootstrap(
            lambda w, ca=ca, cb=cb: stats.war_of(stats.pooled(ca, w)) - stats.war_of(stats.pooled(cb, w)),
            strata,
            n_boot=400,
            seed=i,
        )
        assert iv.low <= iv.estimate <= iv.high
        covered += iv.low <= 0.10 <= iv.high
        widths.append(iv.high - iv.low)
    assert 0.90 <= covered / 400 <= 0.98
    assert 0.03 < np.median(widths) < 0.12  # informative, not vacuous


def test_bootstrap_estimate_is_the_statistic_on_all_data_and_seeded():
    rng = np.random.default_rng(0)
    ca, cb, strata = _simulated_pair(rng)

    def stat(w):
        return stats.uar_of(stats.pooled(ca, w)) - stats.uar_of(stats.pooled(cb, w))

    iv = stats.cluster_bootstrap(stat, strata, n_boot=300, seed=7)
    assert iv.estimate == pytest.approx(stats.uar_of(ca.sum(0)) - stats.uar_of(cb.sum(0)))
    again = stats.cluster_bootstrap(stat, strata, n_boot=300, seed=7)
    assert (iv.low, iv.high) == (again.low, again.high)
    other = stats.cluster_bootstrap(stat, strata, n_boot=300, seed=8)
    assert (iv.low, iv.high) != (other.low, other.high)


def test_difference_of_independent_bootstraps():
    a = stats.Interval(0.3, 0.2, 0.4, 0.95, np.array([0.2, 0.3, 0.4] * 100))
    b = stats.Interval(0.1, 0.0, 0.2, 0.95, np.array([0.0, 0.1, 0.2] * 100))
    d = a.minus(b)
    assert d.estimate == pytest.approx(0.2)
    assert d.low == pytest.approx(0.2) and d.high == pytest.approx(0.2)  # replicate-wise difference
    assert d.excludes_zero()


def test_t_interval_by_hand():
    low, high = stats.t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # t(0.975, df 2) = 4.302653, sd 1
    assert low == pytest.approx(2 - half, rel=1e-6) and high == pytest.approx(2 + half, rel=1e-6)
    assert all(math.isnan(v) for v in stats.t_interval([1.0]))


@pytest.mark.parametrize(("n", "sd"), [(5, 0.03), (10, 0.01)])
def test_detectable_difference_has_the_stated_power_by_simulation(n, sd):
    """Paired t-tests on simulated fold differences reject at the detectable difference 80 % of the time."""
    mde = stats.paired_mde(sd, n)
    rng = np.random.default_rng(7)
    trials = 40_000

    def rejected(delta: float) -> float:
        d = rng.normal(delta, sd, size=(trials, n))
        return float((sps.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05).mean())

    assert rejected(mde) == pytest.approx(0.80, abs=0.01)
    assert rejected(0.7 * mde) < 0.7 and rejected(1.3 * mde) > 0.9
    # a larger power needs a larger difference; more folds, a smaller one
    assert stats.paired_mde(sd, n, power=0.9) > mde > stats.paired_mde(sd, 2 * n)


def test_detectable_difference_is_undefined_without_spread_or_folds():
    assert math.isnan(stats.paired_mde(0.0, 5))
    assert math.isnan(stats.paired_mde(0.02, 1))
    assert math.isnan(stats.paired_mde(math.nan, 5))


def test_paired_tests_carry_the_spread_of_the_differences():
    a, b = [0.61, 0.55, 0.70, 0.52, 0.66], [0.58, 0.56, 0.64, 0.50, 0.60]
    d = np.subtract(a, b)
    assert stats.paired_tests(a, b).sd == pytest.approx(np.std(d, ddof=1))
    assert stats.paired_tests(a, a).sd == 0.0
    assert math.isnan(stats.paired_tests([0.5], [0.4]).sd)
