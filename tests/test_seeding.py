"""The one seeding function: same seed, same draws; deterministic kernels on request."""

import random

import numpy as np
import pytest
import torch

from benchmark.cli import build_parser
from benchmark.seeding import seed_everything


@pytest.fixture
def restore_torch_mode():
    mode, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    torch.use_deterministic_algorithms(mode, warn_only=warn_only)


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_same_seed_same_draws_other_seed_other_draws(restore_torch_mode):
    assert seed_everything(7) == 7
    first = draws()
    seed_everything(7)
    assert draws() == first
    seed_everything(8)
    assert all(a != b for a, b in zip(draws(), first, strict=True))


def test_deterministic_kernels_on_by_default_and_off_on_request(restore_torch_mode):
    seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark


def test_the_throughput_benchmark_takes_the_flag():
    parser = build_parser()
    assert parser.parse_args(["bench", "throughput"]).deterministic
    assert not parser.parse_args(["bench", "throughput", "--no-deterministic"]).deterministic
