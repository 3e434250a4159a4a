"""``train.freeze_feature_encoder``: the waveform CNN stays fixed, everything else learns exactly as before.

Against the same model unfrozen, on the same batch: the loss is the same, every gradient outside the CNN is the
same (stopping backward at the CNN's output changes nothing above it), the CNN gets none, and an optimiser step
leaves the CNN's weights as they were.
"""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.studies import cell_id
from benchmark.train import make_optimizer, micro_step, optimizer_step, setup_model
from tests.test_fast_step import batch_for

CPU = torch.device("cpu")
CNN = "audio_encoder.feature_extractor."


def spec(audio="tiny-wavlm", **train):
    cfg = TrainConfig(lr=1e-3, device="cpu", precision="fp32", **train)
    return CellSpec(audio, "tiny-roberta", "sl-gemo-clap", fold=1, alpha=0.8, model=ClapConfig(proj_dim=32), train=cfg)


@pytest.mark.parametrize("audio", ["tiny-wavlm", "tiny-hubert", "tiny-wav2vec2", "tiny-data2vec"])
def test_only_the_cnn_stops_learning(audio):
    plain_spec = spec(audio)
    frozen_spec = replace(plain_spec, train=replace(plain_spec.train, freeze_feature_encoder=True))
    plain, collator = setup_model(plain_spec)
    frozen, _ = setup_model(frozen_spec)
    assert all(
        torch.equal(a, b) for a, b in zip(plain.state_dict().values(), frozen.state_dict().values(), strict=True)
    )
    cnn = {n for n, _ in frozen.named_parameters() if n.startswith(CNN)}
    assert cnn and all(not p.requires_grad for n, p in frozen.named_parameters() if n in cnn)

    batch = batch_for(collator)
    losses = []
    for model, s in ((plain, plain_spec), (frozen, frozen_spec)):
        model.train()
        np.random.seed(0), torch.manual_seed(0)  # the same SpecAugment masks
        losses.append(micro_step(model, batch, s, CPU))
    torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)

    plain_grads = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    frozen_grads = {n: p.grad for n, p in frozen.named_parameters() if p.grad is not None}
    assert cnn <= plain_grads.keys()  # unfrozen, the CNN learns
    assert frozen_grads.keys() == plain_grads.keys() - cnn
    assert any(n.startswith("audio_encoder.encoder.layers.") for n in frozen_grads)
    for name, grad in frozen_grads.items():
        atol = 1e-6 + 1e-6 * grad.abs().max().item()
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-5, atol=atol, msg=name)

    before = copy.deepcopy(frozen.state_dict())
    optimizer, scheduler = make_optimizer(frozen, frozen_spec.train, CPU, total_steps=10)
    optimizer_step(frozen, optimizer, scheduler, frozen_spec.train)
    after = frozen.state_dict()
    assert all(torch.equal(after[n], before[n]) for n in cnn)
    assert not torch.equal(
        after["audio_encoder.encoder.layers.0.feed_forward.output_dense.weight"],
        before["audio_encoder.encoder.layers.0.feed_forward.output_dense.weight"],
    )


def test_it_is_part_of_a_cells_identity_only_when_on():
    off, on = spec(), spec(freeze_feature_encoder=True)
    assert "freeze_feature_encoder" not in off.identity()["train"]  # earlier cells keep their identity
    assert on.identity()["train"]["freeze_feature_encoder"] is True
    assert cell_id(off, "data") != cell_id(on, "data")
