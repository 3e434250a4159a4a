"""The fast training step computes what the plain step computes: same loss, same gradients (CPU, fp32).

Plain: eager attention, every sample's prompt through the text encoder (N rows), no checkpointing. Fast: the
suite's ``micro_step`` with fused attention (WavLM's position bias through SDPA), the K distinct prompts,
activation checkpointing and, in one case, ``torch.compile``. Same weights, same batch (with padding), same
SpecAugment masks (both passes draw them from the same seeded RNG).
"""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.perf.throughput import naive_loss
from benchmark.train import micro_step, prepare_model, setup_model

CPU = torch.device("cpu")
LENGTHS = [16000, 12000, 9000, 16000, 5000, 14000, 11000, 7000]


def batch_for(collator, lengths=LENGTHS, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    items = [
        {
            "wave": (0.1 * rng.standard_normal(n)).astype(np.float32),
            "emotion": i % 4,
            "gender": (i // 2) % 2,
            "index": i,
        }
        for i, n in enumerate(lengths)
    ]
    return collator(items)


def compare(audio, variant, ml_mode="head", **fast_options):
    alpha = 1.0 if variant == "emo-clap" else 0.8
    plain_cfg = TrainConfig(lr=1e-3, device="cpu", precision="fp32", attention="eager")
    spec = CellSpec(
        audio,
        "tiny-roberta",
        variant,
        fold=1,
        alpha=alpha,
        ml_mode=ml_mode,
        model=ClapConfig(proj_dim=32),
        train=plain_cfg,
    )
    fast_spec = replace(spec, train=replace(plain_cfg, attention="sdpa", grad_checkpointing=True, **fast_options))
    plain, collator = setup_model(spec)
    fast = copy.deepcopy(plain)
    prepare_model(plain, spec.train, CPU)
    prepare_model(fast, fast_spec.train, CPU, compile_backend="aot_eager")
    batch = batch_for(collator)
    assert batch.sample_mask.sum() < batch.sample_mask.numel()  # the batch is padded

    plain.train(), fast.train()
    np.random.seed(0), torch.manual_seed(0)
    plain_loss = naive_loss(plain, batch, spec)
    plain_loss.backward()
    np.random.seed(0), torch.manual_seed(0)
    fast_loss = micro_step(fast, batch, fast_spec, CPU)

    torch.testing.assert_close(fast_loss, plain_loss.detach(), rtol=1e-5, atol=1e-6)
    plain_grads = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    fast_grads = {n: p.grad for n, p in fast.named_parameters() if p.grad is not None}
    assert plain_grads.keys() == fast_grads.keys()
    assert any(n.startswith("audio_encoder.encoder.layers.1.attention") for n in fast_grads)
    for name, grad in plain_grads.items():
        # float32 summation order differs between the two paths; errors scale with the tensor's largest entry
        # (data2vec's positional convolution has gradients of ~1e4 next to entries of ~10)
        atol = 1e-6 + 1e-6 * grad.abs().max().item()
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=atol, msg=name)


@pytest.mark.parametrize(
    ("audio", "variant", "ml_mode"),
    [
        ("tiny-wavlm", "emo-clap", "head"),
        ("tiny-wavlm", "sl-gemo-clap", "head"),
        ("tiny-wavlm", "ml-gemo-clap", "head"),
        ("tiny-wavlm", "ml-gemo-clap", "prompt"),
        ("tiny-wav2vec2", "emo-clap", "head"),
        ("tiny-data2vec", "sl-gemo-clap", "head"),
    ],
)
def test_fast_step_matches_plain_step(audio, variant, ml_mode):
    compare(audio, variant, ml_mode)


# dynamo inspects the .grad of non-leaf tensors while tracing, which warns (harmlessly) inside torch
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_compiled_fast_step_matches_plain_step():
    compare("tiny-wavlm", "sl-gemo-clap", compile=True)


def test_cpu_keeps_the_library_attention_unless_asked():
    # "auto" leaves CPU runs (and so the committed CPU baselines) exactly as before
    spec = CellSpec("tiny-wavlm", "tiny-roberta", "emo-clap", fold=1, model=ClapConfig(proj_dim=32))
    model, _ = setup_model(spec)
    prepare_model(model, replace(spec.train, attention="auto"), CPU)
    assert all("forward" not in vars(m) for m in model.audio_encoder.modules())
    prepare_model(model, replace(spec.train, attention="sdpa"), CPU)
    assert any("forward" in vars(m) for m in model.audio_encoder.modules())


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_compiled_layers_do_not_recompile_for_every_batch_shape():
    # Bucketed batches have a new padded length (and often a new size) at nearly every step. Dynamo compiles the
    # layer for the first shape, recompiles with symbolic sizes once shapes change (twice here: 2 -> 4 -> 6 graphs
    # over the first 3 batches, 2 graphs per compilation), then reuses those graphs for every later shape.
    from torch._dynamo.utils import counters

    cfg = TrainConfig(lr=1e-3, device="cpu", precision="fp32", attention="sdpa", compile=True)
    spec = CellSpec("tiny-wavlm", "tiny-roberta", "emo-clap", fold=1, model=ClapConfig(proj_dim=32), train=cfg)
    model, collator = setup_model(spec)
    torch._dynamo.reset()
    counters.clear()
    prepare_model(model, cfg, CPU, compile_backend="aot_eager")
    model.train()
    rng = np.random.default_rng(0)
    graphs, shapes = [], set()
    for _ in range(8):
        longest = int(rng.integers(6000, 30000))
        sizes = rng.uniform(0.5, 1.0, size=int(rng.integers(3, 9)))
        batch = batch_for(collator, [int(longest * f) for f in sizes], rng)
        shapes.add(tuple(batch.input_values.shape))
        micro_step(model, batch, spec, CPU)
        graphs.append(counters["stats"]["unique_graphs"])
    assert len(shapes) == 8
    # at most 3 compilations in all, and none over the last 4 batches
    assert graphs[0] > 0 and graphs[-1] <= 3 * graphs[0], (graphs, shapes)
    assert graphs[-1] == graphs[-4], (graphs, shapes)
    assert not counters["graph_break"], dict(counters["graph_break"])
