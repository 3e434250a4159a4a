"""Where a result came from: code version, package versions, device. Logged as tags with every run."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

_PACKAGES = ("gemo-bench", "torch", "transformers", "mlflow", "numpy", "scikit-learn", "soundfile")


@functools.cache
def git_state() -> tuple[str, bool]:
    """(commit SHA, dirty?) of the checkout holding this package.

    Outside git (a source tree copied into a container or staged for a cluster job) the commit is taken from
    ``GEMO_GIT_SHA`` when set, else ``"unknown"``; dirty is then False, as nothing can be compared.
    """
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("GEMO_GIT_SHA", "").strip() or "unknown", False
    return sha.stdout.strip(), bool(dirty.stdout.strip())


@functools.cache
def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_name(device: str) -> str:
    import torch  # deferred: report commands tag their runs without loading torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    model = cpu_model()
    return f"cpu ({model + ', ' if model else ''}{platform.machine()}, {torch.get_num_threads()} threads)"


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC 7763 64-Core Processor``) where the system tells it, else ``""``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def tags() -> dict[str, str]:
    sha, dirty = git_state()
    return {
        "gemo.git_sha": sha,
        "gemo.git_dirty": str(dirty).lower(),
        **{f"gemo.version.{k}": v for k, v in versions().items()},
    }


def redact_uri(uri: str) -> str:
    """A URI fit to log or print: ``https://user:secret@host/x`` -> ``https://***@host/x``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
