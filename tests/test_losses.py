"""Losses against slow, loop-by-loop references written here from PAPER.md's formulas."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.losses import (
    NonFiniteLossError,
    check_finite,
    clap_loss,
    gender_head_loss,
    gender_prompt_loss,
    multitask_loss,
    soft_targets,
)


def ref_targets(emotion, gender, alpha, norm):
    n = len(emotion)
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            m = 1.0 if emotion[i] == emotion[j] else 0.0
            if gender is not None:
                m = alpha * m + (1 - alpha) * (1.0 if gender[i] == gender[j] else 0.0)
            row.append(m)
        if norm == "sum":
            total = sum(row)
            row = [v / total for v in row]
        else:
            z = sum(math.exp(v) for v in row)
            row = [math.exp(v) / z for v in row]
        rows.append(row)
    return rows


def ref_kl_rows(p_rows, logit_rows):
    """Mean over rows of KL(p_i || softmax(logits_i)), with 0·log 0 = 0."""
    total = 0.0
    for p, z in zip(p_rows, logit_rows, strict=True):
        m = max(z)
        log_norm = m + math.log(sum(math.exp(v - m) for v in z))
        for pj, zj in zip(p, z, strict=True):
            if pj > 0:
                total += pj * (math.log(pj) - (zj - log_norm))
    return total / len(p_rows)


def ref_clap_loss(logits, targets):
    n = len(logits)
    lt = [[logits[j][i] for j in range(n)] for i in range(n)]
    tt = [[targets[j][i] for j in range(n)] for i in range(n)]
    return 0.5 * (ref_kl_rows(targets, logits) + ref_kl_rows(tt, lt))


labels = st.lists(st.integers(0, 3), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(emotion=labels, data=st.data(), alpha=st.floats(0, 1), norm=st.sampled_from(["sum", "softmax"]))
def test_soft_targets_match_reference(emotion, data, alpha, norm):
    gender = data.draw(st.lists(st.integers(0, 1), min_size=len(emotion), max_size=len(emotion)))
    got = soft_targets(torch.tensor(emotion), torch.tensor(gender), alpha, norm)
    want = torch.tensor(ref_targets(emotion, gender, alpha, norm))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.sum(1), torch.ones(len(emotion)))


def test_soft_targets_without_gender_are_emotion_only():
    e = torch.tensor([0, 1, 0, 2, 1])
    got = soft_targets(e)
    torch.testing.assert_close(got, torch.tensor(ref_targets(e.tolist(), None, 1.0, "sum")))
    # Each row spreads its mass evenly over the samples of its class.
    assert got[0].tolist() == pytest.approx([0.5, 0, 0.5, 0, 0])


def test_alpha_one_gives_emo_clap_and_alpha_zero_gender_only():
    e, g = torch.tensor([0, 1, 0, 2]), torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(soft_targets(e, g, 1.0), soft_targets(e))
    torch.testing.assert_close(soft_targets(e, g, 0.0), soft_targets(g))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_an_error(alpha):
    e = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="alpha must be in"):
        soft_targets(e, e, alpha)
    with pytest.raises(ValueError, match="alpha must be in"):
        multitask_loss(torch.tensor(1.0), torch.tensor(1.0), alpha)


def test_unknown_norm_is_an_error():
    with pytest.raises(ValueError, match="norm"):
        soft_targets(torch.tensor([0, 1]), norm="max")


@settings(max_examples=60, deadline=None)
@given(emotion=labels, data=st.data(), alpha=st.floats(0, 1), norm=st.sampled_from(["sum", "softmax"]))
def test_clap_loss_matches_reference(emotion, data, alpha, norm):
    n = len(emotion)
    gender = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    seed = data.draw(st.integers(0, 2**16))
    logits = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    targets = soft_targets(torch.tensor(emotion), torch.tensor(gender), alpha, norm).double()
    got = clap_loss(logits, targets)
    want = ref_clap_loss(logits.tolist(), targets.tolist())
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_clap_loss_is_zero_only_when_prediction_matches_targets():
    e = torch.tensor([0, 1, 2, 3])
    targets = soft_targets(e)  # identity here: every class appears once
    perfect = torch.eye(4) * 50.0
    assert float(clap_loss(perfect, targets)) < 1e-10
    assert float(clap_loss(torch.zeros(4, 4), targets)) == pytest.approx(math.log(4))


def test_clap_loss_shape_errors():
    with pytest.raises(ValueError, match="N x N"):
        clap_loss(torch.zeros(3, 4), torch.zeros(3, 4))


def test_gender_losses_match_references():
    torch.manual_seed(0)
    gender = torch.tensor([0, 1, 1, 0, 1])
    head_logits = torch.randn(5, 2, dtype=torch.float64)
    want_ce = (
        -sum(
            head_logits[i, gender[i]].item() - math.log(sum(math.exp(v) for v in head_logits[i].tolist()))
            for i in range(5)
        )
        / 5
    )
    assert float(gender_head_loss(head_logits, gender)) == pytest.approx(want_ce, rel=1e-12)
    pair = torch.randn(5, 5, dtype=torch.float64)
    want_kl = ref_clap_loss(pair.tolist(), ref_targets(gender.tolist(), None, 1.0, "sum"))
    # soft_targets builds float32 targets, so agreement is to float32 precision
    assert float(gender_prompt_loss(pair, gender)) == pytest.approx(want_kl, rel=1e-6)


def test_multitask_loss_weights():
    got = multitask_loss(torch.tensor(2.0), torch.tensor(10.0), 0.75)
    assert float(got) == pytest.approx(0.75 * 2 + 0.25 * 10)


def test_gradients_flow_through_clap_loss():
    logits = torch.randn(6, 6, requires_grad=True)
    clap_loss(logits, soft_targets(torch.tensor([0, 0, 1, 1, 2, 3]))).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_is_reported(value):
    with pytest.raises(NonFiniteLossError, match="epoch 3"):
        check_finite(torch.tensor(value), "epoch 3")
