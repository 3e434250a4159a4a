"""Shared fixtures. Tests never reach a model hub: offline mode is forced before transformers loads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "GEMO_CACHE" not in os.environ:  # keep generated corpora out of the user's cache
    import tempfile

    os.environ["GEMO_CACHE"] = tempfile.mkdtemp(prefix="gemo-cache-")
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """A small embedded corpus on disk, written once per test run; returns its root."""
    from benchmark.data.synthetic import SynthConfig, write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "IEMOCAP_full_release", SynthConfig(seed=0, size=200))


@pytest.fixture(scope="session")
def small_records(small_corpus):
    from benchmark.data.iemocap import read_iemocap

    return read_iemocap(small_corpus)
