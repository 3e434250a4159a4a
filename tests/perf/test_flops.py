"""Model FLOPs: the meta-device count equals a count on real tensors, and the length fit holds."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.models.attention import set_attention
from benchmark.models.encoders import load_audio_encoder
from benchmark.perf.flops import FlopModel, count_encoder_flops, measure_matmul_peak, table_peak


@pytest.mark.parametrize("name", ["tiny-wavlm", "tiny-wav2vec2"])
def test_meta_count_equals_a_real_forward_backward(name):
    model = load_audio_encoder(name).model.eval()
    # eager attention on the real tensors: torch's FLOP counter does not see CPU's fused SDPA kernel, while the
    # meta copy counts attention as matmuls whatever kernel the model is set to use
    reference = load_audio_encoder(name).model.eval()
    set_attention(reference, "eager")
    with FlopCounterMode(display=False) as counter:
        reference(torch.randn(1, 24000)).last_hidden_state.mean().backward()
    assert count_encoder_flops(model, 1.5) == counter.get_total_flops() > 0


def test_quadratic_fit_and_hand_count():
    model = load_audio_encoder("tiny-wavlm").model
    fit = FlopModel.fit(model, 4.0)
    assert abs(fit.check[2]) < 0.01  # a length it was not fitted on
    assert fit.coefficients[2] > 0  # attention grows with the square of the length
    for seconds, flops in fit.points:
        assert fit(seconds) == pytest.approx(flops, rel=1e-6)
    assert fit.total([1.0, 2.0]) == pytest.approx(fit(1.0) + fit(2.0))
    # hand count of the first conv layer alone (512 kernel... here 32 channels, kernel 10, stride 5, no bias):
    # forward 2*32*10 per output frame, backward the weight gradient only (the waveform needs no gradient)
    conv = model.feature_extractor.conv_layers[0].conv
    frames = (16000 - 10) // 5 + 1
    with FlopCounterMode(display=False) as counter:
        conv(torch.zeros(1, 1, 16000)).sum().backward()
    assert counter.get_total_flops() == 2 * (2 * 32 * 10 * frames)


def test_peak_table_and_measurement():
    assert table_peak("NVIDIA H100 80GB HBM3").flops == pytest.approx(989.4e12)
    assert table_peak("NVIDIA H100 PCIe").flops == pytest.approx(756e12)
    assert table_peak("NVIDIA H100 NVL").flops is None
    assert table_peak("NVIDIA GeForce RTX 2080").flops is None
    measured = measure_matmul_peak(torch.device("cpu"), size=128, seconds=0.05)
    assert measured.flops > 0 and "measured" in measured.source
