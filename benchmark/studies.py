"""Study specs: parse a ``studies/*.toml`` file once into frozen objects, validate it, expand it into cells.

A study file has these tables (every key optional unless marked; unknown keys are errors):

```toml
name = "paper_table"                 # required; also the MLflow experiment name
description = "..."

[data]                               # benchmark.data.sources.DataSpec
corpus = "iemocap"                   # or embedded, ravdess, cremad, emodb, manifest
root = "/data/IEMOCAP_full_release"  # default: $IEMOCAP_ROOT ($RAVDESS_ROOT, $CREMAD_ROOT, $EMODB_ROOT, ...)
seed = 0                             # embedded corpus: seed, size, control
size = 600
control = false
folds = 5                            # speaker-independent k-fold (corpora without sessions or manifest folds)
fold_seed = 0
unreadable = "error"                 # or "drop": leave unreadable audio files out (listed)
eval_corpora = ["ravdess", "emodb=/data/emodb"]  # also score every trained cell on these, whole

[encoders]
audio = ["wavlm-base-plus", "hubert-base"]   # required: presets, hub ids or local dirs
text = "roberta-base"

[method]
variants = ["emo-clap", "sl-gemo-clap", "ml-gemo-clap"]
alphas = [0.9]                       # alpha_e for the gender-aware variants; Emo-CLAP always runs once at 1
ml_mode = "head"                     # or "prompt"
target_norm = "sum"                  # or "softmax"

[model]                              # benchmark.config.ClapConfig
[train]                              # benchmark.config.TrainConfig; lr defaults by encoder (2e-5 / 3e-3);
                                     # speed: batch_seconds, attention, compile, grad_checkpointing, deterministic
                                     # resumable = true: save each epoch's state, a killed cell resumes there

[protocol]
folds = [1, 2, 3, 4, 5]
seeds = [0]

[tracking]
uri = ""                             # default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here
experiment = ""                      # default: the study name
log_models = false                   # also log each cell's trained model (run artifact model/)
log_embeddings = true                # log the test session's embeddings (embeddings.npz; report embeddings, calibration)

[search]                             # SearchSpec: `gemo-bench search` (benchmark/search.py)
trials = 20
alpha = [0.0, 1.0]                   # a range (uniform) or a number (fixed)
temperature = [0.02, 0.5]            # a range (log-uniform) or a number; default model.temperature
lr = [1e-4, 1e-2]                    # a range (log-uniform) or a number; default train.lr
objectives = ["uar"]                 # or ["uar", "gender_gap"]: the Pareto front of UAR and |UAR_F - UAR_M|

[executor]                           # benchmark.executors.ExecutorSpec: local, slurm or submitit-local

[paper]                              # what the reproduced paper reports, for the table and claims reports
source = "Table 2 of the paper"
[paper.results]                      # "<encoder or family>/<variant>" = [WAR, UAR] in %
"wavlm/sl-gemo-clap" = [83.16, 81.43]
```

``key=value`` overrides (``train.epochs=3``, ``method.alphas=[0.8, 0.9]``) are applied to the parsed table
before validation, so a bad override is reported like a bad file entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.config import ML_MODES, VARIANTS, CellSpec, ClapConfig, TrainConfig, check_alpha
from benchmark.data.sources import DataSpec
from benchmark.executors import ExecutorSpec
from benchmark.models.presets import default_lr, resolve_encoder


class StudyError(ValueError):
    """A study file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Encoders:
    audio: tuple[str, ...]
    text: str = "roberta-base"


@dataclass(frozen=True)
class Method:
    variants: tuple[str, ...] = VARIANTS
    alphas: tuple[float, ...] = (0.9,)
    ml_mode: str = "head"
    target_norm: str = "sum"


@dataclass(frozen=True)
class Protocol:
    folds: tuple[int, ...] = (1, 2, 3, 4, 5)
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Tracking:
    """Where runs go. ``log_models``: also log each cell's trained model as its run's ``model/`` artifact
    (``benchmark.models.saved``: an MLflow model that ``gemo-bench predict`` and ``evaluate`` read).
    ``log_embeddings``: log where the selected model put each test utterance, ``embeddings.npz`` (float16
    audio embeddings and the class-prompt embeddings; ``gemo-bench report embeddings`` reads them)."""

    uri: str = ""
    experiment: str = ""
    log_models: bool = False
    log_embeddings: bool = True


FAMILIES: tuple[str, ...] = ("wavlm", "hubert", "wav2vec2", "data2vec")

# The one cell of the paper's table that could be read (PAPER.md): WavLM SL-GEmo-CLAP, from the abstract.
PAPER_RESULTS: Mapping[str, tuple[float, float]] = {"wavlm/sl-gemo-clap": (83.16, 81.43)}


def encoder_family(encoder: str) -> str:
    """``wavlm`` for any WavLM encoder (preset, hub id or local directory), likewise the other families."""
    name = encoder.lower().rsplit("/", 1)[-1]
    for family in FAMILIES:
        if family in name:
            return family
    return name


@dataclass(frozen=True)
class Paper:
    """What the reproduced paper reports: the table report shows it beside ours, the claims report judges it.

    Attributes:
        results: ``"<encoder>/<variant>" = [WAR, UAR]`` in %. ``<encoder>`` is a family (``wavlm``,
            ``hubert``, ``wav2vec2``, ``data2vec``: every encoder of it) or one audio encoder exactly as the
            study names it (which wins over its family). The default is the one figure PAPER.md could read;
            a user with the paper's full table enters the rest here.
        source: where the figures come from, quoted in the reports.
    """

    results: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: dict(PAPER_RESULTS))
    source: str = "the abstract; no other cell of the paper's table could be read"

    def __post_init__(self) -> None:
        for key, figures in self.results.items():
            encoder, sep, variant = key.rpartition("/")
            if not sep or not encoder:
                raise ValueError(f"results key {key!r} must be '<encoder or family>/<variant>'")
            if variant not in VARIANTS:
                raise ValueError(
                    f"results key {key!r}: unknown variant {variant!r} (choose from {', '.join(VARIANTS)})"
                )
            if len(figures) != 2 or not all(0.0 <= v <= 100.0 for v in figures):
                raise ValueError(
                    f"results {key!r} must be [WAR, UAR] in % (two numbers in 0..100), got {list(figures)}"
                )

    def figure(self, encoder: str, variant: str) -> dict[str, float] | None:
        """``{"war": ..., "uar": ...}`` in % for ``encoder`` (exactly, else its family), or None."""
        figures = self.results.get(f"{encoder}/{variant}") or self.results.get(f"{encoder_family(encoder)}/{variant}")
        return None if figures is None else {"war": float(figures[0]), "uar": float(figures[1])}

    @property
    def is_default(self) -> bool:
        return {k: tuple(v) for k, v in self.results.items()} == dict(PAPER_RESULTS)


SAMPLERS: tuple[str, ...] = ("tpe", "random")
PRUNERS: tuple[str, ...] = ("median", "hyperband", "none")
# What a search optimises: the validation UAR alone, or with it the validation gender gap (Pareto front)
OBJECTIVES: tuple[tuple[str, ...], ...] = (("uar",), ("uar", "gender_gap"))


@dataclass(frozen=True)
class SearchSpec:
    """An Optuna search over alpha_e, the temperature and the learning rate (``gemo-bench search``).

    Attributes:
        trials: finished trials wanted per search (one search per audio encoder x variant).
        alpha: a ``[low, high]`` range searched uniformly, or a number (fixed); unused by Emo-CLAP.
        temperature: a ``[low, high]`` range searched log-uniformly, or a number; None keeps
            ``model.temperature``. It is the initial value when ``model.learnable_temperature``.
        lr: a ``[low, high]`` range searched log-uniformly, or a number; None keeps ``train.lr``.
        folds: folds whose validation UAR is averaged (default: ``protocol.folds``); their test sessions
            are never used by the search.
        sampler: ``tpe`` or ``random``.
        seed: sampler seed; trial ``n`` samples with a seed drawn from ``(seed, n)``, so one worker
            replays the same trials and several workers or a resumed search never repeat a point.
            None: unseeded.
        objectives: ``["uar"]``: maximise the mean best validation UAR; ``["uar", "gender_gap"]``: also
            minimise the validation gender gap |UAR_F - UAR_M| at each fold's chosen epoch (mean over the
            search folds), a multi-objective search whose result is the Pareto front of the two.
        pruner: ``median``, ``hyperband`` or ``none``; intermediate values are reported per fold x epoch.
            Default: ``median``, and ``none`` for a multi-objective search (Optuna cannot prune one).
        startup_trials: trials before TPE models the space and before the median pruner prunes.
        warmup_epochs: epochs of the first fold before the median pruner may prune a trial.
        storage: an SQLAlchemy URL (``postgresql://...``) or a journal file path; default:
            ``.gemo/optuna/<study>.journal`` beside the MLflow store.
        heartbeat_s: how often a running trial records that its worker is alive.
        grace_s: a running trial without a heartbeat for this long is failed and retried.
        max_retry: retries of a trial whose worker died or was interrupted.
    """

    trials: int = 20
    alpha: tuple[float, ...] | float = (0.0, 1.0)
    temperature: tuple[float, ...] | float | None = None
    lr: tuple[float, ...] | float | None = None
    folds: tuple[int, ...] = ()
    sampler: str = "tpe"
    seed: int | None = None
    objectives: tuple[str, ...] = ("uar",)
    pruner: str = ""
    startup_trials: int = 5
    warmup_epochs: int = 1
    storage: str = ""
    heartbeat_s: int = 10
    grace_s: int = 60
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")
        _check_range("alpha", self.alpha, low=0.0, high=1.0, closed=True)
        _check_range("temperature", self.temperature, low=0.0, high=float("inf"), closed=False)
        _check_range("lr", self.lr, low=0.0, high=float("inf"), closed=False)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if tuple(self.objectives) not in OBJECTIVES:
            choices = " or ".join(json.dumps(list(o)) for o in OBJECTIVES)
            raise ValueError(f"objectives must be {choices}, got {json.dumps(list(self.objectives))}")
        object.__setattr__(self, "objectives", tuple(self.objectives))
        if not self.pruner:
            object.__setattr__(self, "pruner", "none" if self.multi_objective else "median")
        elif self.multi_objective and self.pruner != "none":
            raise ValueError(
                f'pruner must be "none" when the gender gap is an objective, got {self.pruner!r}: '
                "Optuna does not prune multi-objective searches"
            )
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.startup_trials < 0 or self.warmup_epochs < 0 or self.max_retry < 0:
            raise ValueError("startup_trials, warmup_epochs and max_retry must be >= 0")
        if self.heartbeat_s < 1:
            raise ValueError(f"heartbeat_s must be >= 1, got {self.heartbeat_s}")
        if self.grace_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"grace_s must be at least twice the heartbeat interval ({self.heartbeat_s} s), got {self.grace_s}"
            )

    @property
    def multi_objective(self) -> bool:
        """Whether the search also minimises the validation gender gap (a Pareto front, no pruning)."""
        return len(self.objectives) > 1

    def space(self) -> dict[str, tuple[float, float] | float | None]:
        """Each searched value as ``(low, high)`` or a fixed number (None: the study's own value)."""
        return {name: _as_range(getattr(self, name)) for name in ("alpha", "temperature", "lr")}


def _as_range(value: tuple[float, ...] | float | None) -> tuple[float, float] | float | None:
    if isinstance(value, tuple):
        return value[0] if value[0] == value[1] else (value[0], value[1])
    return value


def _check_range(name: str, value, *, low: float, high: float, closed: bool) -> None:
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
        raise ValueError(f"{name} must be a number or a range [low, high] with low <= high, got {list(value)}")
    for v in values:
        inside = (low <= v <= high) if closed else (low < v < high)
        if not inside:
            where = f"[{low:g}, {high:g}]" if closed else "positive"
            raise ValueError(f"{name} must be {where}, got {v}")


@dataclass(frozen=True)
class Study:
    """A parsed, validated study. ``train`` holds only the keys the file set (lr defaults per encoder)."""

    name: str
    path: Path | None
    data: DataSpec
    encoders: Encoders
    method: Method = field(default_factory=Method)
    model: ClapConfig = field(default_factory=ClapConfig)
    train: Mapping[str, Any] = field(default_factory=dict)
    protocol: Protocol = field(default_factory=Protocol)
    tracking: Tracking = field(default_factory=Tracking)
    search: SearchSpec = field(default_factory=SearchSpec)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    paper: Paper = field(default_factory=Paper)
    description: str = ""

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def cells(self) -> list[CellSpec]:
        """Encoders x variants x alphas x seeds x folds; alpha only for the gender-aware variants."""
        out = []
        for audio in self.encoders.audio:
            train = TrainConfig(**{"lr": default_lr(audio), **self.train})
            for variant in self.method.variants:
                alphas = (1.0,) if variant == "emo-clap" else self.method.alphas
                for alpha in alphas:
                    for seed in self.protocol.seeds:
                        for fold in self.protocol.folds:
                            out.append(
                                CellSpec(
                                    audio_encoder=audio,
                                    text_encoder=self.encoders.text,
                                    variant=variant,
                                    fold=fold,
                                    alpha=alpha,
                                    ml_mode=self.method.ml_mode,
                                    target_norm=self.method.target_norm,
                                    seed=seed,
                                    model=self.model,
                                    train=train,
                                )
                            )
        return out

    def to_dict(self) -> dict:
        """The resolved study as plain data (logged with every run)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path) if self.path else None
        out["train"] = dict(self.train)
        return out


def cell_id(spec: CellSpec, data_fingerprint: str) -> str:
    """Stable identity of a cell: its resolved config (less speed-only options) plus the data it runs on."""
    return _digest({"cell": spec.identity(), "data": data_fingerprint})


def config_id(spec: CellSpec, data_fingerprint: str) -> str:
    """Identity of a configuration: the cell without its fold (the folds of one config share it)."""
    d = spec.identity()
    d.pop("fold")
    return _digest({"config": d, "data": data_fingerprint})


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- parsing -------------------------------------------------------------------------------------------

_TABLES = {
    "data": DataSpec,
    "encoders": Encoders,
    "method": Method,
    "model": ClapConfig,
    "train": TrainConfig,
    "protocol": Protocol,
    "tracking": Tracking,
    "search": SearchSpec,
    "executor": ExecutorSpec,
    "paper": Paper,
}
_TOP_LEVEL = {"name", "description", *_TABLES}


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read, override and validate a study file.

    Raises:
        StudyError: naming the file and the key (``studies/x.toml: train.epochs: must be >= 1, got 0``).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StudyError(f"{path}: study file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from exc
    for item in overrides:
        _apply_override(raw, item, path)
    return parse_study(raw, source=path)


def parse_study(raw: Mapping[str, Any], source: Path | None = None) -> Study:
    where = str(source) if source else "<study>"
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise StudyError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_LEVEL))})")
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise StudyError(f"{where}: name: required, a non-empty string")
    if "encoders" not in raw or "audio" not in raw.get("encoders", {}):
        raise StudyError(f"{where}: encoders.audio: required, a list of audio encoders")
    parts: dict[str, Any] = {}
    for table, cls in _TABLES.items():
        value = raw.get(table, {})
        if not isinstance(value, Mapping):
            raise StudyError(f"{where}: {table}: must be a table")
        kwargs = {key: _convert(cls, key, val, f"{where}: {table}.{key}") for key, val in value.items()}
        if table == "train":
            # lr may be left to the per-encoder default; a placeholder lets the other keys be validated now
            _construct(TrainConfig, {"lr": 1.0, **kwargs}, where, table)
            parts[table] = kwargs
        else:
            parts[table] = _construct(cls, kwargs, where, table)
    study = Study(name=raw["name"], path=source, description=str(raw.get("description", "")), **parts)
    _validate(study, where)
    return study


def _construct(cls, kwargs: dict, where: str, table: str):
    try:
        return cls(**kwargs)
    except ValueError as exc:
        msg = str(exc)
        key = next((k for k in kwargs if re.search(rf"\b{k}\b", msg)), None)
        raise StudyError(f"{where}: {table}.{key}: {msg}" if key else f"{where}: {table}: {msg}") from exc


def _validate(study: Study, where: str) -> None:
    for i, audio in enumerate(study.encoders.audio):
        try:
            resolve_encoder(audio, "audio")
        except ValueError as exc:
            raise StudyError(f"{where}: encoders.audio[{i}]: {exc}") from exc
    try:
        resolve_encoder(study.encoders.text, "text")
    except ValueError as exc:
        raise StudyError(f"{where}: encoders.text: {exc}") from exc
    if not study.encoders.audio:
        raise StudyError(f"{where}: encoders.audio: needs at least one encoder")
    for v in study.method.variants:
        if v not in VARIANTS:
            raise StudyError(f"{where}: method.variants: unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    if not study.method.variants:
        raise StudyError(f"{where}: method.variants: needs at least one variant")
    for a in study.method.alphas:
        try:
            check_alpha(a)
        except ValueError as exc:
            raise StudyError(f"{where}: method.alphas: {exc}") from exc
    if not study.method.alphas:
        raise StudyError(f"{where}: method.alphas: needs at least one value")
    if study.method.ml_mode not in ML_MODES:
        raise StudyError(f"{where}: method.ml_mode: must be one of {', '.join(ML_MODES)}, got {study.method.ml_mode!r}")
    if study.method.target_norm not in ("sum", "softmax"):
        raise StudyError(f"{where}: method.target_norm: must be 'sum' or 'softmax', got {study.method.target_norm!r}")
    folds = list(study.protocol.folds)
    if study.data.session_folds:
        top, what = 5, "sessions in 1..5"
    elif study.data.corpus == "manifest":
        top, what = None, "folds >= 1 (the manifest's fold numbers)"
    else:
        top, what = study.data.folds, f"folds in 1..{study.data.folds} (data.folds)"
    bad = [f for f in folds if f < 1 or (top is not None and f > top)]
    if bad or not folds or len(set(folds)) != len(folds):
        raise StudyError(f"{where}: protocol.folds: distinct {what}, got {folds}")
    if not study.protocol.seeds:
        raise StudyError(f"{where}: protocol.seeds: needs at least one seed")
    folds = study.search.folds
    if any(not 1 <= f <= 5 for f in folds) or len(set(folds)) != len(folds):
        raise StudyError(f"{where}: search.folds: distinct sessions in 1..5, got {list(folds)}")
    temperature = study.search.space()["temperature"]
    if temperature is not None:
        lowest = temperature[0] if isinstance(temperature, tuple) else temperature
        if 1.0 / lowest > study.model.max_logit_scale:
            raise StudyError(
                f"{where}: search.temperature: {lowest:g} gives a logit scale above model.max_logit_scale "
                f"({study.model.max_logit_scale:g})"
            )


def _convert(cls, key: str, value: Any, where: str) -> Any:
    """Check ``value`` against the type of ``cls.key`` and convert lists to tuples."""
    hints = typing.get_type_hints(cls)
    if key not in hints or key not in {f.name for f in dataclasses.fields(cls)}:
        allowed = ", ".join(f.name for f in dataclasses.fields(cls))
        raise StudyError(f"{where}: unknown key (allowed: {allowed})")
    return _check_type(hints[key], value, where)


def _check_type(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(option, value, where)
            except StudyError:
                continue
        raise StudyError(f"{where}: expected {_name(hint)}, got {_describe(value)}")
    if origin in (Mapping, dict):
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise StudyError(f"{where}: expected a table, got {_describe(value)}")
        return {_check_type(key_hint, k, where): _check_type(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            raise StudyError(f"{where}: expected a list of {_name(item)}, got {_describe(value)}")
        return tuple(_check_type(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StudyError(f"{where}: expected a number, got {_describe(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StudyError(f"{where}: expected an integer, got {_describe(value)}")
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise StudyError(f"{where}: expected {_name(hint)}, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported field type {hint!r}")  # a schema bug, not a user error


def _name(hint: Any) -> str:
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _apply_override(raw: dict, item: str, path: Path) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise StudyError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word is a string: data.corpus=embedded
    *tables, leaf = key.strip().split(".")
    node = raw
    for t in tables:
        node = node.setdefault(t, {})
        if not isinstance(node, dict):
            raise StudyError(f"{path}: override {key}: {t} is not a table")
    node[leaf] = value
