"""Every preset and speed option measured in one go: the throughput benchmark as a matrix of runs.

Each entry is one ``gemo-bench bench throughput`` run in a child process of its own, so GPU memory, compiled
kernels and a crash stay with it. Entries run in order (the most wanted figure first) within an optional time
budget: an entry that would start with less than ``min_start_seconds`` left is skipped, one still running when
the budget ends is stopped, and both are listed as such. Each entry's JSON is written by the child as it ends;
the matrix's own summary (``throughput_<tag>_matrix.md`` and ``.json``) is rewritten after every entry, so a
matrix stopped midway still says what it measured.

The summary puts the entries side by side and adds what no single run knows: the study's training hours
with each of its audio encoders at that encoder's own measured speed (default options), summed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.perf.cost import study_train_audio_seconds
from benchmark.studies import Study

LARGE_PRESETS = ("wavlm-large", "hubert-large", "wav2vec2-large", "data2vec-large")


@dataclass(frozen=True)
class Entry:
    """One throughput run of the matrix.

    Attributes:
        name: the run's name, unique in its matrix (file ``throughput_<tag>_<name>.json``).
        audio_encoder: the audio preset (the text preset is the benchmark's default for the device).
        options: further ``bench throughput`` flags: the speed options this entry measures.
        naive: also time the naive loop (the speed-up); option variants of a preset leave it to the plain entry.
        utterances: pool size (default: the benchmark's for the device).
        note: what the entry is for.
    """

    name: str
    audio_encoder: str
    options: tuple[str, ...] = ()
    naive: bool = False
    utterances: int | None = None
    note: str = ""

    def args(self) -> list[str]:
        out = ["--audio-encoder", self.audio_encoder, *self.options]
        if not self.naive:
            out.append("--suite-only")
        if self.utterances:
            out += ["--utterances", str(self.utterances)]
        return out


def _gpu_matrix() -> tuple[Entry, ...]:
    base = "wavlm-base-plus"
    entries = [
        Entry(base, base, naive=True, note="naive loop and suite step, default options"),
        Entry(f"{base}_nondet", base, ("--no-deterministic",), note="what deterministic kernels cost"),
        Entry(f"{base}_compile", base, ("--compile",), note="torch.compile of the encoder's layers"),
        *(Entry(p, p, note="paper_table's other encoders") for p in ("hubert-base", "wav2vec2-base", "data2vec-base")),
    ]
    for preset in LARGE_PRESETS:
        entries += [
            Entry(preset, preset, naive=True, utterances=256, note="large preset"),
            Entry(f"{preset}_gc", preset, ("--grad-checkpointing",), note="large preset, activation checkpointing"),
        ]
    return tuple(entries)


GPU_MATRIX = _gpu_matrix()
CPU_MATRIX = (
    Entry("tiny-wavlm", "tiny-wavlm", naive=True, note="naive loop and suite step, default options"),
    *(
        Entry(p, p, note="paper_table_embedded's other encoders")
        for p in ("tiny-hubert", "tiny-wav2vec2", "tiny-data2vec")
    ),
    Entry("tiny-wavlm_gc", "tiny-wavlm", ("--grad-checkpointing",), note="activation checkpointing"),
)


def default_matrix(cuda: bool) -> tuple[Entry, ...]:
    """The base and large presets with their speed options on CUDA; the tiny presets on CPU."""
    return GPU_MATRIX if cuda else CPU_MATRIX


def select(entries: Sequence[Entry], names: Sequence[str] | None) -> list[Entry]:
    """The entries named (in the matrix's order), or all of them.

    Raises:
        ValueError: a name no entry has (the known names listed).
    """
    if not names:
        return list(entries)
    known = [e.name for e in entries]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--only: no matrix entry {', '.join(map(repr, unknown))} (entries: {', '.join(known)})")
    return [e for e in entries if e.name in names]


def device_tag(device_name: str) -> str:
    """A short file-name tag for a device: ``NVIDIA H100 80GB HBM3`` -> ``h100-80gb``, any CPU -> ``cpu``."""
    if device_name.startswith("cpu"):
        return "cpu"
    words = [w for w in re.findall(r"[a-z0-9]+", device_name.lower()) if w not in {"nvidia", "tesla", "geforce"}]
    return "-".join(words[:2]) or "gpu"


@dataclass
class Outcome:
    """How one entry went: ``ok``, ``failed``, ``timed out``, ``skipped`` or ``interrupted``."""

    entry: Entry
    status: str = "pending"
    seconds: float = 0.0
    json: str = ""
    log: str = ""
    error: str = ""
    result: dict | None = field(default=None, repr=False)


def run_matrix(
    entries: Sequence[Entry],
    out: Path,
    tag: str,
    common: Sequence[str] = (),
    *,
    budget_seconds: float | None = None,
    min_start_seconds: float = 15.0,
    study: Study | None = None,
    device: str = "",
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run each entry as ``python -m benchmark.cli bench throughput`` and summarise them.

    Args:
        entries: what to run, in order.
        out: folder of the JSON files and the summary; logs go to ``out/logs``.
        tag: the device's file-name tag (:func:`device_tag`).
        common: flags given to every entry after its own (``--device``, ``--study``, ``--utterances`` ...).
        budget_seconds: wall-clock budget of the whole matrix (None: no limit).
        min_start_seconds: an entry does not start with less than this left of the budget.
        study: the study whose hours the summary estimates (the one ``common`` names, parsed).
        device: the device's name, for the summary's header.
        on_done: called after each entry with its outcome (progress).

    Returns:
        One :class:`Outcome` per entry, in order. The summary files are written after each entry.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    outcomes = [Outcome(e) for e in entries]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for o in outcomes:
            o.json = str(out / f"throughput_{tag}_{o.entry.name}.json")
            o.log = str(out / "logs" / f"throughput_{tag}_{o.entry.name}.log")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left < min_start_seconds:
                o.status, o.error = "skipped", f"{max(left, 0):.0f} s of the budget left"
            else:
                _run_one(o, common, left, env)
            write_summary(out, tag, outcomes, started, budget_seconds, study, device)
            if on_done:
                on_done(o)
    except KeyboardInterrupt:
        for o in outcomes:
            if o.status in ("pending", "running"):
                o.status = "interrupted"
        write_summary(out, tag, outcomes, started, budget_seconds, study, device)
        raise
    return outcomes


def _run_one(o: Outcome, common: Sequence[str], timeout: float | None, env: dict) -> None:
    cmd = [sys.executable, "-m", "benchmark.cli", "bench", "throughput", *o.entry.args(), *common, "--json", o.json]
    o.status = "running"
    start = time.monotonic()
    with open(o.log, "w") as log:
        log.write("$ " + " ".join(cmd[1:]) + "\n")
        log.flush()
        # a session of its own: a timeout or Ctrl-C stops the run's loader workers and compile workers with it
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            _kill(proc)
            o.seconds = time.monotonic() - start
            if isinstance(exc, KeyboardInterrupt):
                o.status = "interrupted"
                raise
            o.status, o.error = "timed out", f"stopped after {o.seconds:.0f} s, at the end of the budget"
            return
    o.seconds = time.monotonic() - start
    if code != 0:
        o.status, o.error = "failed", f"exit {code}: {_last_line(Path(o.log))}"
        return
    o.result = json.loads(Path(o.json).read_text())
    o.status = "ok"


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


# ---- summary ------------------------------------------------------------------------------------------------------


def study_hours(study: Study, outcomes: Sequence[Outcome]) -> dict | None:
    """The study's training hours with each audio encoder at its own measured speed (default-option entries).

    Returns:
        ``{"study", "by_encoder": {encoder: {"train_audio_seconds", "audio_s_per_s", "hours"}}, "missing",
        "hours"}`` (``hours`` the sum, None while an encoder is unmeasured), or None when the matrix measured
        none of the study's encoders.
    """
    speeds = {
        o.entry.audio_encoder: o.result["suite"]["audio_s_per_s"]
        for o in outcomes
        if o.status == "ok" and not o.entry.options
    }
    cells = study.cells()
    encoders = list(dict.fromkeys(c.audio_encoder for c in cells))
    if not any(e in speeds for e in encoders):
        return None
    by_encoder = {}
    for enc in encoders:
        seconds = study_train_audio_seconds(study, cells=[c for c in cells if c.audio_encoder == enc])
        speed = speeds.get(enc)
        by_encoder[enc] = {
            "train_audio_seconds": seconds["train_audio_seconds"],
            "audio_s_per_s": speed,
            "hours": seconds["train_audio_seconds"] / speed / 3600 if speed else None,
        }
    missing = [e for e, v in by_encoder.items() if v["hours"] is None]
    return {
        "study": study.name,
        "cells": len(cells),
        "by_encoder": by_encoder,
        "missing": missing,
        "hours": None if missing else sum(v["hours"] for v in by_encoder.values()),
    }


def write_summary(
    out: Path,
    tag: str,
    outcomes: Sequence[Outcome],
    started: dt.datetime,
    budget_seconds: float | None,
    study: Study | None,
    device: str,
) -> tuple[Path, Path]:
    """``throughput_<tag>_matrix.json`` (every outcome) and ``.md`` (the table), each replaced whole."""
    hours = study_hours(study, outcomes) if study is not None else None
    record = {
        "created": started.strftime("%Y-%m-%d %H:%M UTC"),
        "device": device,
        "tag": tag,
        "budget_seconds": budget_seconds,
        "entries": [
            {**asdict(o.entry), **{k: getattr(o, k) for k in ("status", "seconds", "json", "log", "error")}}
            for o in outcomes
        ],
        "study_hours": hours,
    }
    paths = out / f"throughput_{tag}_matrix.json", out / f"throughput_{tag}_matrix.md"
    for path, text in zip(paths, (json.dumps(record, indent=2) + "\n", render(outcomes, record)), strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def render(outcomes: Sequence[Outcome], record: dict) -> str:
    """The Markdown summary: one row per measured entry, what did not run, the study's hours."""
    done = [o for o in outcomes if o.status == "ok"]
    first = done[0].result if done else None
    unit = "GPU-h" if first and first["device_type"] == "cuda" else "h on this device"
    lines = [f"# Training throughput: {record['device'] or record['tag']}", ""]
    if first:
        v = first["versions"]
        lines += [
            f"{record['created']}, commit {first['git_sha'][:12]}{' (dirty)' if first['git_dirty'] else ''}, "
            f"torch {v['torch']}, transformers {v['transformers']}. Random-init weights of each preset's "
            f"architecture, text encoder {first['text_encoder']}, {first['variant']}; utterances drawn from "
            f"IEMOCAP's 4-class durations, cropped at {first['durations']['crop_seconds']:g} s. Each row is one "
            "process (`gemo-bench bench throughput` with the entry's flags); audio-s/s is audio seconds trained "
            "per second of wall time.",
            "",
            "| entry | audio encoder | options | utterances | GFLOP per audio-s | naive audio-s/s "
            "| suite audio-s/s | speed-up | suite MFU | suite peak memory |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
    for o in done:
        r, suite, naive = o.result, o.result["suite"], o.result["naive"]
        lines.append(
            "| "
            + " | ".join(
                [
                    o.entry.name,
                    r["audio_encoder"],
                    " ".join(o.entry.options) or "defaults",
                    str(r["durations"]["pool_utterances"]),
                    f"{r['flops']['per_audio_second'] / 1e9:.3g}",
                    f"{naive['audio_s_per_s']:,.1f}" if naive else "–",
                    f"{suite['audio_s_per_s']:,.1f}",
                    f"{r['speedup']:.2f}x" if r["speedup"] else "–",
                    "–" if suite["mfu"] is None else f"{100 * suite['mfu']:.2f} %",
                    "–" if suite["peak_memory_bytes"] is None else f"{suite['peak_memory_bytes'] / 2**30:.1f} GiB",
                ]
            )
            + " |"
        )
    if not done:
        lines.append("No entry has finished.")
    rest = [o for o in outcomes if o.status != "ok"]
    if rest:
        lines += ["", "Not measured:", ""]
        lines += [f"- {o.entry.name}: {o.status}{' (' + o.error + ')' if o.error else ''}" for o in rest]
    hours = record["study_hours"]
    if hours:
        per = "; ".join(
            f"{enc} {v['hours']:.1f} {unit}" if v["hours"] is not None else f"{enc} not measured"
            for enc, v in hours["by_encoder"].items()
        )
        total = f"{hours['hours']:.1f} {unit} in all" if hours["hours"] is not None else "no total yet"
        lines += [
            "",
            f"{hours['study']} ({hours['cells']} cells) at these speeds, each audio encoder at its own "
            f"(default options): {per}; {total} (training steps only, every epoch run, no early stopping).",
        ]
    return "\n".join(lines) + "\n"
