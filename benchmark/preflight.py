"""Check, before a study runs, everything its cells will need: ``gemo-bench check STUDY``.

A cluster job that fails on its first minute (a store it cannot write, a checkpoint a node without network
cannot download, a missing partition, a corpus with a truncated WAV) costs a place in the queue per try. The
check looks at each of those at once, from the submitting machine, and reports every problem together:

- **store**: the tracking store can be written (a probe file, deleted at once) or reached, and how many of
  the grid's cells it already holds as finished;
- **data**: the corpus (and each evaluation corpus) is read through its reader, every file's header
  included; each protocol fold has test utterances of both genders and every class;
- **encoders**: every checkpoint is in the Hugging Face cache or a local directory and loads, offline, with
  the study's ``transformers``; ``--download`` fetches missing ones first (on a login node with network);
- **device**: CUDA where the study asks for it, bf16 where autocast will use it;
- **disk**: free space where the store keeps resume states and models against what the study will write;
- **cache**: ``$GEMO_CACHE/features`` can be written where frozen audio encoders cache their features;
- **executor**: ``sbatch`` and the partition for Slurm (``sinfo``), a folder the tasks can write;
- **search** (studies with a ``[search]`` table, or ``--search``): the Optuna storage can be written.

Nothing is trained; nothing is written but the probe files (a new SQL store's schema is made by MLflow on its
first connection, as ``run`` would). Each finding is ``ok``, ``warn`` (the study runs, but look) or ``fail``
(a cell would stop on it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.config import CellSpec
from benchmark.data.folds import split_fold
from benchmark.data.records import CLASSES, GENDERS, Utterance
from benchmark.models.presets import HUB_PRESETS, EncoderRef, hub_config, resolve_encoder
from benchmark.perf.cost import train_audio_seconds
from benchmark.provenance import redact_uri
from benchmark.runner import data_fingerprint
from benchmark.studies import SearchSpec, Study, cell_id
from benchmark.tracking import Tracker, local_store_dir, probe_writable, resolve_uri, state_dir

LEVELS = ("ok", "warn", "fail")
GB = 1e9
# weights of a training state: the model, AdamW's two moments and the best epoch's weights (benchmark.resume)
STATE_COPIES = 4


@dataclass(frozen=True)
class Finding:
    """One checked thing: ``area`` (store, data, encoder, ...), what it is, ``ok``/``warn``/``fail``, and why."""

    area: str
    subject: str
    level: str
    detail: str


@dataclass
class Preflight:
    """Everything ``gemo-bench check`` found about a study."""

    study: str
    cells: int
    finished: int | None  # cells the store already holds as finished; None when it could not be read
    findings: list[Finding] = field(default_factory=list)
    train_audio_seconds: float | None = None  # the training steps of the cells still to train
    params: dict[str, int | None] = field(default_factory=dict)  # per encoder; None: unknown (not loaded)
    disk: dict = field(default_factory=dict)  # bytes the cells still to train write (:func:`disk_needs`)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    @property
    def warned(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warn"]

    def to_dict(self) -> dict:
        return asdict(self)


def check_study(study: Study, *, workers: int = 1, search: bool | None = None, download: bool = False) -> Preflight:
    """Check what ``study``'s cells need (see the module's docstring).

    Args:
        study: the parsed study, with the overrides and executor flags it will run with.
        workers: local worker processes it will run with (how many training states are on disk at once).
        search: check the Optuna storage; None: when the study's ``[search]`` table is not all defaults.
        download: fetch hub checkpoints missing from the cache before checking them.
    """
    cells = study.cells()
    out = Preflight(study=study.name, cells=len(cells), finished=None)
    records, cross, data_findings = _check_data(study, cells)
    fp = data_fingerprint(records, cross) if records is not None and cross is not None else None
    store_finding, finished_ids = _check_store(study, cells, fp)
    out.findings.append(store_finding)
    out.findings.extend(data_findings)
    if finished_ids is not None:
        out.finished = len(finished_ids)
    todo = _to_train(cells, fp, finished_ids)
    for ref in _encoders(study):
        finding, n = _check_encoder(ref, download=download, study_arg=str(study.path or "STUDY"))
        out.findings.append(finding)
        out.params[ref.spec] = n
    out.findings.append(_check_device(study, cells))
    out.disk = disk_needs(study, todo, out.params, workers)
    out.findings.append(_check_disk(study, todo, out.disk))
    cache = _check_cache(study, cells)
    if cache is not None:
        out.findings.append(cache)
    out.findings.extend(_check_executor(study))
    if study.search != SearchSpec() if search is None else search:
        out.findings.append(_check_search(study))
    if records is not None:
        out.train_audio_seconds = train_audio_seconds(todo, records)
    return out


def _to_train(cells: list[CellSpec], fp: str | None, finished: set[str] | None) -> list[CellSpec]:
    if fp is None or not finished:
        return cells
    return [c for c in cells if cell_id(c, fp) not in finished]


# -- data ------------------------------------------------------------------------------------------------


def _check_data(study: Study, cells: list[CellSpec]):
    """(records, evaluation corpora, findings); records None when the corpus cannot be read."""
    findings = []
    records = _read("data", study.data, findings)
    cross: dict[str, list[Utterance]] | None = {}
    for name, spec in study.data.eval_specs():
        recs = _read(f"data {name}", spec, findings)
        if recs is None:
            cross = None
        elif cross is not None:
            cross[name] = recs
    if records is not None:
        findings.extend(_check_folds(records, cells))
    return records, cross, findings


def _read(area: str, spec, findings: list[Finding]) -> list[Utterance] | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reading = spec.read()
        except (ValueError, OSError, RuntimeError) as exc:
            findings.append(Finding(area, spec.corpus, "fail", str(exc)))
            return None
    records = list(reading.records)
    hours = sum(r.duration for r in records) / 3600
    genders = ", ".join(f"{g} {sum(r.gender == g for r in records)}" for g in GENDERS)
    dropped = sum(reading.dropped.values())
    detail = (
        f"{spec.reader.title}{'' if spec.subset == 'all' else f' ({spec.subset} dialogs)'} at {reading.root}: "
        f"{len(records)} utterances, {hours:.2f} h of audio ({genders}); "
        f"{dropped} left out (`gemo-bench data summary` says why)"
    )
    findings.append(Finding(area, spec.corpus, "ok", detail))
    for w in caught:
        findings.append(Finding(area, spec.corpus, "warn", str(w.message)))
    return records


def _check_folds(records: list[Utterance], cells: list[CellSpec]) -> list[Finding]:
    """Each protocol fold splits, and its test set has both genders and every class (else figures go missing)."""
    out = []
    seen = set()
    for cell in cells:
        key = (cell.fold, cell.seed, cell.train.val_fraction, cell.train.val_strategy)
        if key in seen:
            continue
        seen.add(key)
        cfg = cell.train
        try:
            fold = split_fold(
                records, cell.fold, val_fraction=cfg.val_fraction, val_strategy=cfg.val_strategy, seed=cell.seed
            )
        except ValueError as exc:
            out.append(Finding("data", f"fold {cell.fold}", "fail", str(exc)))
            continue
        missing = [g for g in GENDERS if not any(r.gender == g for r in fold.test)]
        missing += [c for c in CLASSES if not any(r.emotion == c for r in fold.test)]
        if not fold.train or not fold.val:
            out.append(Finding("data", f"fold {cell.fold}", "fail", "no training or no validation utterances"))
        elif missing:
            out.append(
                Finding(
                    "data",
                    f"fold {cell.fold}",
                    "warn",
                    f"its test set has no {', '.join(missing)} utterance: those per-gender or per-class "
                    "figures will be missing for this fold",
                )
            )
    return out


# -- store -------------------------------------------------------------------------------------------------


@contextmanager
def _quick_http() -> Iterator[None]:
    """No retries and a short timeout for MLflow's HTTP calls: an unreachable server is a finding, not a wait."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "10"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_store(study: Study, cells: list[CellSpec], fp: str | None) -> tuple[Finding, set[str] | None]:
    uri = resolve_uri(study.tracking.uri)
    shown = redact_uri(uri)
    local = local_store_dir(uri)
    if local is not None:
        problem = probe_writable(local)
        if problem:
            return Finding("store", shown, "fail", f"{local}: the MLflow store is not writable: {problem}"), None
    elif (problem := probe_writable(state_dir(uri).parent)) is not None:
        return Finding("store", shown, "fail", f"{state_dir(uri)}: the cell locks cannot be written: {problem}"), None
    try:
        with _quick_http():
            tracker = Tracker.existing(uri, study.experiment_name)
            runs = tracker.read_runs("cell") if tracker is not None else []
    except Exception as exc:  # MLflow raises its own exceptions, requests' and SQLAlchemy's
        return Finding("store", shown, "fail", f"cannot read the MLflow store: {_first_line(exc)}"), None
    if tracker is None:
        where = f" ({local})" if local is not None else ""
        return Finding(
            "store", shown, "ok", f"writable{where}; experiment {study.experiment_name!r} not created yet"
        ), set()
    finished = {r.tags.get("gemo.cell_id", "") for r in runs if r.status == "FINISHED"}
    if fp is None:
        return Finding("store", shown, "ok", f"experiment {study.experiment_name!r} exists"), None
    mine = {cell_id(c, fp) for c in cells} & finished
    detail = f"experiment {study.experiment_name!r}: {len(mine)} of the {len(cells)} cells finished"
    return Finding("store", shown, "ok", detail), mine


# -- encoders ----------------------------------------------------------------------------------------------


def _encoders(study: Study) -> list[EncoderRef]:
    refs = [resolve_encoder(a, "audio") for a in study.encoders.audio]
    return [*refs, resolve_encoder(study.encoders.text, "text")]


def _check_encoder(ref: EncoderRef, *, download: bool, study_arg: str) -> tuple[Finding, int | None]:
    """(finding, parameter count or None): tiny presets are built, checkpoints loaded offline."""
    subject = f"{ref.modality} {ref.spec}"
    if ref.tiny is not None:
        n = _count(_build_tiny(ref))
        return Finding("encoder", subject, "ok", f"random-init, built in code ({n / 1e6:.2f} M parameters)"), n
    local = Path(ref.source).is_dir()
    if not local and not _in_hub_cache(ref.source):
        if download:
            try:
                download_checkpoint(ref.source)
            except Exception as exc:  # the hub client raises its own HTTP and OS errors
                return Finding("encoder", subject, "fail", f"download of {ref.source} failed: {_first_line(exc)}"), (
                    _preset_params(ref)
                )
        else:
            return _not_cached(ref, study_arg), _preset_params(ref)
    try:
        n, where = _load_offline(ref)
    except Exception as exc:  # transformers raises OSError, ValueError, and others for a broken checkpoint
        return Finding("encoder", subject, "fail", f"{ref.source} does not load: {_first_line(exc)}"), (
            _preset_params(ref)
        )
    return Finding("encoder", subject, "ok", f"pretrained ({ref.source}): {n / 1e6:.1f} M parameters, from {where}"), n


def _build_tiny(ref: EncoderRef):
    from benchmark.models.encoders import load_audio_encoder, load_text_encoder

    load = load_audio_encoder if ref.modality == "audio" else load_text_encoder
    return load(ref).model


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _not_cached(ref: EncoderRef, study_arg: str) -> Finding:
    from huggingface_hub import constants

    subject = f"{ref.modality} {ref.spec}"
    where = f"{ref.source} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if _hub_offline():
        return Finding(
            "encoder",
            subject,
            "fail",
            f"{where} and HF_HUB_OFFLINE is set: where there is network, run `gemo-bench check {study_arg} --download` "
            f"(or `hf download {ref.source}`) with the same HF_HOME",
        )
    return Finding(
        "encoder",
        subject,
        "warn",
        f"{where}: each task downloads it on first load; compute nodes without network fail there, so run "
        f"`gemo-bench check {study_arg} --download` on a machine with network first",
    )


def download_checkpoint(repo_id: str) -> Path:
    """Fetch what ``from_pretrained`` reads of a hub checkpoint into the Hugging Face cache.

    Only the weights ``transformers`` would load (safetensors when the repository has them, else the PyTorch
    ``.bin`` files) and the config, feature-extractor and tokenizer files; TensorFlow and Flax weights are
    left on the hub.
    """
    import huggingface_hub

    files = huggingface_hub.HfApi().list_repo_files(repo_id)
    safetensors = [f for f in files if f.endswith(".safetensors") or f.endswith(".safetensors.index.json")]
    torch_bins = [f for f in files if f.startswith("pytorch_model") and (f.endswith(".bin") or f.endswith(".json"))]
    weights = safetensors or torch_bins
    small = [
        f
        for f in files
        if f.endswith((".json", ".txt", ".model")) and "/" not in f and not f.startswith(("tf_", "flax_"))
    ]
    wanted = sorted(set(weights) | {f for f in small if not f.endswith(".index.json") or f in weights})
    return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=wanted))


def _load_offline(ref: EncoderRef) -> tuple[int, str]:
    """Load the checkpoint as a cell does, but never from the network; (parameters, where it was read)."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoTokenizer

    from benchmark.data.records import SAMPLE_RATE

    AutoConfig.from_pretrained(ref.source, local_files_only=True)  # a broken config.json, named first
    if ref.modality == "audio":
        extractor = AutoFeatureExtractor.from_pretrained(ref.source, local_files_only=True)
        rate = getattr(extractor, "sampling_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise ValueError(f"it expects {rate} Hz input; the suite feeds 16 kHz")
    else:
        AutoTokenizer.from_pretrained(ref.source, local_files_only=True)
    model = AutoModel.from_pretrained(ref.source, local_files_only=True)
    where = ref.source if Path(ref.source).is_dir() else "the Hugging Face cache"
    return _count(model), where


def _preset_params(ref: EncoderRef) -> int | None:
    """A hub preset's parameter count from its shipped architecture (no weights, no download)."""
    if ref.spec not in HUB_PRESETS:
        return None
    import torch
    from transformers import AutoModel, RobertaModel

    cfg = hub_config(ref.spec)
    with torch.device("meta"):
        model = AutoModel.from_config(cfg) if ref.modality == "audio" else RobertaModel(cfg, add_pooling_layer=False)
    return _count(model)


# -- device, disk, executor, search -----------------------------------------------------------------------


def _check_device(study: Study, cells: list[CellSpec]) -> Finding:
    import torch

    device = cells[0].train.device if cells else "auto"
    precision = cells[0].train.precision if cells else "auto"
    pretrained = any(resolve_encoder(a, "audio").tiny is None for a in study.encoders.audio)
    remote = study.executor.kind == "slurm"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        count = torch.cuda.device_count()
        detail = f"{count} x {name} ({memory:.0f} GiB), torch {torch.__version__}"
        index = torch.device(device).index if device.startswith("cuda") else None
        if index is not None and index >= count:
            return Finding("device", device, "fail", f"train.device = {device!r}, but this machine has {detail}")
        if precision in ("auto", "bf16") and not torch.cuda.is_bf16_supported():
            return Finding("device", device, "warn", f"{detail}: no bf16 on this GPU; set train.precision = 'fp32'")
        return Finding("device", device, "ok", detail)
    here = f"no CUDA on this machine (torch {torch.__version__})"
    if remote:
        gpus = study.executor.gpus_per_task
        if gpus == 0 and device.startswith("cuda"):
            return Finding("device", device, "fail", f"train.device = {device!r} but executor.gpus_per_task = 0")
        if gpus == 0 and pretrained:
            return Finding(
                "device", device, "warn", "executor.gpus_per_task = 0: the pre-trained encoders would fine-tune on CPU"
            )
        return Finding("device", device, "ok", f"{here}; each Slurm task asks for {gpus} GPU(s)")
    if device.startswith("cuda"):
        return Finding("device", device, "fail", f"train.device = {device!r}, but {here}")
    if pretrained:
        return Finding(
            "device",
            device,
            "warn",
            f"{here}: the pre-trained encoders would fine-tune on CPU, far slower than on a GPU",
        )
    return Finding("device", device, "ok", f"{here}: CPU, {'bf16 autocast' if precision == 'bf16' else 'fp32'}")


def disk_needs(study: Study, todo: list[CellSpec], params: dict[str, int | None], workers: int) -> dict:
    """Bytes the cells still to train write beside the store, by kind.

    Returns:
        ``{"states", "models", "running", "unknown"}``: training states of the cells running at once (the
        largest cell's, ``resumable`` cells only), saved models (``tracking.log_models``: the fp32 audio
        encoder of every cell; the head is a rounding error), the cells assumed to run at once (``workers``
        locally, ``array_parallelism`` for a job array), and encoders whose size is unknown (not loaded).
    """
    text = params.get(study.encoders.text)
    running = study.executor.array_parallelism if study.executor.kind != "local" else workers
    running = max(1, min(running, len(todo))) if todo else 0
    unknown: set[str] = set()
    state_sizes = []
    for audio in sorted({c.audio_encoder for c in todo if c.train.resumable}):
        a = params.get(audio)
        if a is None or text is None:
            unknown.add(audio)
        else:
            state_sizes.append(STATE_COPIES * 4 * (a + text))
    models = 0
    if study.tracking.log_models:
        for c in todo:
            a = params.get(c.audio_encoder)
            if a is None:
                unknown.add(c.audio_encoder)
            else:
                models += 4 * a
    states = max(state_sizes, default=0) * running
    return {"states": states, "models": models, "running": running, "unknown": sorted(unknown)}


def _check_disk(study: Study, todo: list[CellSpec], needs: dict) -> Finding:
    """Free space beside the store against the resume states and saved models the study will write."""
    folder = state_dir(resolve_uri(study.tracking.uri))
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    need = needs["states"] + needs["models"]
    parts = []
    if needs["states"]:
        parts.append(f"{needs['states'] / GB:.1f} GB of training states ({needs['running']} cells at once)")
    if study.tracking.log_models:
        parts.append(f"{needs['models'] / GB:.1f} GB of saved models ({len(todo)} cells)")
    detail = f"{free / GB:.1f} GB free at {folder}"
    if parts:
        detail += f"; the cells still to train write about {need / GB:.1f} GB: " + ", ".join(parts)
    if needs["unknown"]:
        detail += f" (sizes unknown for {', '.join(needs['unknown'])}: not loaded)"
    level = "fail" if need > free else "warn" if need > 0.8 * free else "ok"
    if level != "ok":
        detail += (
            "; run fewer cells at once (--workers, executor.array_parallelism), set train.resumable = false or "
            "tracking.log_models = false, or free space"
        )
    return Finding("disk", str(folder), level, detail)


def _check_cache(study: Study, cells: list[CellSpec]) -> Finding | None:
    """The feature cache under ``$GEMO_CACHE`` must be writable when frozen audio encoders use it."""
    from benchmark.data.synthetic import default_cache_dir

    if not any(c.train.freeze_encoders in ("audio", "all") and c.train.feature_cache for c in cells):
        return None
    folder = default_cache_dir() / "features"
    problem = probe_writable(folder)
    if problem:
        return Finding(
            "cache",
            str(folder),
            "fail",
            f"the frozen encoders' feature cache is not writable: {problem}; set GEMO_CACHE to a writable "
            "folder, or train.feature_cache = false",
        )
    return Finding("cache", str(folder), "ok", "writable: frozen audio encoders pool each utterance once")


def _check_executor(study: Study) -> list[Finding]:
    spec = study.executor
    if spec.kind == "local":
        return [Finding("executor", "local", "ok", "worker processes on this machine")]
    out = []
    uri = resolve_uri(study.tracking.uri)
    folder = Path(spec.folder) if spec.folder else state_dir(uri) / "submitit"
    problem = probe_writable(folder)
    if problem:
        out.append(Finding("executor", spec.kind, "fail", f"{folder}: submitit's folder is not writable: {problem}"))
    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        out.append(Finding("executor", spec.kind, "fail", f"submitit is not installed: {exc}"))
    if spec.kind == "submitit-local":
        return out or [Finding("executor", spec.kind, "ok", f"submitit's local executor, folder {folder}")]
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        out.append(Finding("executor", "slurm", "fail", "sbatch is not on PATH: submit from a Slurm login node"))
        return out
    if spec.partition:
        out.append(_check_partition(spec.partition))
    shared = [str(p) for p in (folder, local_store_dir(uri)) if p is not None and _node_local(p)]
    if shared:
        out.append(
            Finding(
                "executor",
                "slurm",
                "warn",
                f"{', '.join(shared)}: under /tmp or /dev/shm, which compute nodes do not share; the tasks "
                "coordinate through the store, the locks and submitit's folder",
            )
        )
    if not any(f.level == "fail" for f in out):
        out.append(Finding("executor", "slurm", "ok", f"{sbatch}; submitit folder {folder}"))
    return out


def _check_partition(partition: str) -> Finding:
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return Finding("executor", "slurm", "warn", f"sinfo is not on PATH: partition {partition!r} not checked")
    try:
        proc = subprocess.run(
            [sinfo, "--noheader", "--format=%P"], capture_output=True, text=True, timeout=20, check=True
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return Finding("executor", "slurm", "warn", f"sinfo failed ({_first_line(exc)}): partition not checked")
    names = [p.strip().rstrip("*") for p in proc.stdout.split() if p.strip()]
    if partition not in names:
        return Finding(
            "executor",
            "slurm",
            "fail",
            f"partition {partition!r} not found (sinfo lists: {', '.join(names) or 'none'})",
        )
    return Finding("executor", "slurm", "ok", f"partition {partition!r} exists")


def _node_local(path: Path) -> bool:
    resolved = str(Path(path).resolve())
    return any(resolved == p or resolved.startswith(p + "/") for p in ("/tmp", "/dev/shm", "/var/tmp"))


def _check_search(study: Study) -> Finding:
    from benchmark.search_store import is_journal, search_progress, storage_url, targets, trial_budget

    url = storage_url(study)
    shown = redact_uri(url)
    if is_journal(url):
        problem = probe_writable(Path(url).parent)
        if problem:
            return Finding(
                "search", shown, "fail", f"{Path(url).parent}: the Optuna journal cannot be written: {problem}"
            )
    try:
        progress = search_progress(study)
    except Exception as exc:  # SQLAlchemy, a missing driver, a refused search of another configuration
        return Finding("search", shown, "fail", f"cannot open the Optuna storage: {_first_line(exc)}")
    if progress is None:
        return Finding("search", shown, "ok", "no search begun yet")
    searches = progress[1]
    done = sum(s.counts.done for s in searches if s.counts is not None)
    wanted = sum(trial_budget(study, t) for t in targets(study))
    return Finding("search", shown, "ok", f"{len(searches)} searches, {done} of {wanted} trials finished")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


# -- output -------------------------------------------------------------------------------------------------


def render(result: Preflight, where: str, command: str = "run") -> str:
    """The findings as aligned lines, then the training work left and the verdict (next: ``command``)."""
    done = "" if result.finished is None else f", {result.finished} finished"
    lines = [f"{result.study}: {result.cells} cells{done}", ""]
    width = max((len(f.area) + len(f.subject) for f in result.findings), default=0) + 1
    for f in result.findings:
        label = f"{f.area} {f.subject}"
        lines.append(f"{f.level.upper():<4}  {label:<{width}}  {f.detail}")
    if result.train_audio_seconds is not None:
        todo = result.cells - (result.finished or 0)
        hours = result.train_audio_seconds / 3600
        lines += ["", f"training work left: {todo} cells, {hours:,.1f} h of audio through training steps"]
    fails, warns = len(result.failed), len(result.warned)
    lines.append("")
    if fails:
        lines.append(f"{fails} problem(s) would stop cells of this study; {warns} warning(s)")
    else:
        lines.append(f"ready: {warns} warning(s); next: gemo-bench {command} {where}")
    return "\n".join(lines)
