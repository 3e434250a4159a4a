"""A trained cell's model on disk: score audio files or another corpus later, without the training run.

A saved model is a directory that is also an MLflow model (``mlflow.pyfunc.load_model`` reads it):

    MLmodel             MLflow's description; its python_function flavour loads through this module
    gemo_model.json     format version, classes, prompts, what inference needs, the cell's spec, data source,
                        weights (pre-trained or random-init), test metrics and the commit that trained it
    head.safetensors    the audio projection, the K class-prompt embeddings, the logit scale (and the gender
                        head of ML-GEmo-CLAP in head mode)
    audio_encoder/      the fine-tuned speech encoder and its feature extractor, written by transformers'
                        ``save_pretrained`` (so ``AutoModel.from_pretrained`` loads it on its own too)
    training_ids.txt    the utterances that trained the model or chose its epoch (train and validation
                        splits), so that scoring it on them can be flagged as not held out

The text encoder is not saved: inference is argmax cosine similarity to the K class prompts, whose embeddings
are fixed once training ends, so they are stored instead (a RoBERTa-base is 125 M parameters; the prompts are
K x d numbers). Scores are the same as the trained model's to the last bit on CPU (tested).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor

from benchmark.data.batching import Collator, UtteranceDataset, crop
from benchmark.data.records import CLASSES, GENDERS, SAMPLE_RATE, Utterance
from benchmark.models.clap import AudioSide, ClapModel, projection
from benchmark.tracking import write_pyfunc_description

if TYPE_CHECKING:
    from benchmark.train import CellResult, Fit

FORMAT = 1
INFO_FILE = "gemo_model.json"
HEAD_FILE = "head.safetensors"
IDS_FILE = "training_ids.txt"
ENCODER_DIR = "audio_encoder"


class SavedModelError(ValueError):
    """A directory or URI that is not a readable saved model; the message names it."""


def check_target(folder: str | Path) -> Path:
    """``folder`` as a Path, if a model can be saved there (a new or empty directory); else FileExistsError."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder}: a saved model needs a new or empty directory")
    return folder


def save_model(
    model: ClapModel,
    feature_extractor: Wav2Vec2FeatureExtractor,
    folder: str | Path,
    *,
    classes: Sequence[str],
    inference: Mapping[str, Any],
    info: Mapping[str, Any],
    training_ids: Sequence[str] = (),
) -> Path:
    """Write ``model`` (trained, its best epoch loaded) to ``folder``, which must not exist or be empty.

    Written beside the target and renamed into place at the end, so a failure leaves nothing half-written.

    Args:
        classes: class codes in the order of the model's prompts.
        inference: ``max_seconds`` (centred crop), ``batch_size`` and ``batch_seconds`` of evaluation batches.
        info: anything else worth keeping with the weights (spec, data source, weights, metrics, commit).
        training_ids: ids of the utterances that trained the model or selected its epoch.
    """
    folder = check_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a process of the same pid that died mid-write
    tmp.mkdir()
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            tensors = {
                "class_embeddings": model.class_embeddings().float().cpu(),
                "logit_scale": model.logit_scale().detach().float().cpu().reshape(1),
                **{f"audio_proj.{k}": v.float().cpu() for k, v in model.audio_proj.state_dict().items()},
            }
            if model.gender_head is not None:
                tensors.update({f"gender_head.{k}": v.float().cpu() for k, v in model.gender_head.state_dict().items()})
        model.train(was_training)
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / HEAD_FILE)
        with _quiet_transformers():
            model.audio_encoder.save_pretrained(tmp / ENCODER_DIR)
        feature_extractor.save_pretrained(tmp / ENCODER_DIR)
        config = model.config
        meta = {
            "format": FORMAT,
            "classes": list(classes),
            "class_prompts": config.class_prompts(),
            "proj_dim": config.proj_dim,
            "proj_layers": config.proj_layers,
            "uses_attention_mask": model.uses_attention_mask,
            "gender_head": model.gender_head is not None,
            "genders": list(GENDERS),
            "inference": dict(inference),
            **info,
        }
        (tmp / IDS_FILE).write_text("".join(f"{i}\n" for i in sorted(training_ids)), encoding="utf-8")
        (tmp / INFO_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        write_pyfunc_description(tmp, __name__)
        if folder.exists():
            folder.rmdir()
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def save_cell(fit: Fit, result: CellResult | None, folder: str | Path, *, data: Mapping[str, Any]) -> Path:
    """Save a fitted cell's model with what produced it: spec, data source, weights, test metrics, commit."""
    from benchmark import metrics, provenance
    from benchmark.models.presets import describe_weights

    spec = fit.spec
    sha, dirty = provenance.git_state()
    info: dict[str, Any] = {
        "spec": spec.to_dict(),
        "data": dict(data),
        "weights": {
            "audio": describe_weights(spec.audio_encoder, "audio"),
            "text": describe_weights(spec.text_encoder, "text"),
        },
        "best_epoch": fit.best_epoch,
        "commit": sha + ("-dirty" if dirty else ""),
        "versions": provenance.versions(),
    }
    if result is not None:
        info["test"] = {**metrics.headline(result.test), "n": len(result.predictions)}
    inference = {
        "max_seconds": spec.train.max_seconds,
        "batch_size": spec.train.batch_size,
        "batch_seconds": spec.train.batch_seconds,
    }
    return save_model(
        fit.model,
        fit.collator.feature_extractor,
        folder,
        classes=CLASSES,
        inference=inference,
        info=info,
        training_ids=[r.id for r in (*fit.fold.train, *fit.fold.val)],
    )


@contextlib.contextmanager
def _quiet_transformers():
    """No per-shard progress bars from transformers while one small directory is written or read."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


class SavedModel(AudioSide, nn.Module):
    """A saved cell model: the fine-tuned audio encoder, its projection and the class-prompt embeddings.

    Has the inference interface of :class:`~benchmark.models.clap.ClapModel` (``class_embeddings``, ``predict``,
    ``pooled_audio``), so the suite's evaluation code scores it unchanged.
    """

    def __init__(self, folder: Path, info: dict, encoder, feature_extractor, tensors: dict[str, torch.Tensor]):
        super().__init__()
        self.source = str(folder)
        self.info = info
        # the utterances that trained the model or selected its epoch (read now: a download is temporary)
        self.training_ids = frozenset((folder / IDS_FILE).read_text(encoding="utf-8").splitlines())
        self.classes: tuple[str, ...] = tuple(info["classes"])
        self.audio_encoder = encoder
        self.feature_extractor = feature_extractor
        self.uses_attention_mask = bool(info["uses_attention_mask"])
        self.audio_proj = projection(int(encoder.config.hidden_size), int(info["proj_dim"]), int(info["proj_layers"]))
        self.audio_proj.load_state_dict(_prefixed(tensors, "audio_proj."))
        self.register_buffer("class_emb", tensors["class_embeddings"])
        self.register_buffer("scale", tensors["logit_scale"].reshape(()))
        self.gender_head = None
        if info.get("gender_head"):
            self.gender_head = nn.Linear(int(encoder.config.hidden_size), len(info["genders"]))
            self.gender_head.load_state_dict(_prefixed(tensors, "gender_head."))
        self.eval()

    @property
    def max_seconds(self) -> float:
        return float(self.info["inference"]["max_seconds"])

    def class_embeddings(self) -> torch.Tensor:
        return self.class_emb

    @torch.no_grad()
    def probabilities(self, input_values: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
        """[N, K] softmax over the scaled cosine similarities (the logits the model was trained on)."""
        logits = self.scale * (self.embed_audio(self.pooled_audio(input_values, sample_mask)) @ self.class_emb.T)
        return F.softmax(logits.float(), dim=-1)

    def collator(self) -> Collator:
        return Collator(self.feature_extractor)


def _prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_info(folder: str | Path) -> dict:
    """The ``gemo_model.json`` of a saved model directory, checked."""
    folder = Path(folder)
    path = folder / INFO_FILE
    if not path.is_file():
        what = "no such directory" if not folder.exists() else f"no {INFO_FILE}: not a saved gemo-bench model"
        raise SavedModelError(f"{folder}: {what}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SavedModelError(f"{path}: not valid JSON ({exc})") from exc
    if info.get("format") != FORMAT:
        raise SavedModelError(f"{path}: format {info.get('format')!r}; this version reads format {FORMAT}")
    return info


def load_model(source: str | Path, *, tracking_uri: str | None = None, device: str = "cpu") -> SavedModel:
    """Load a saved model from a directory, or from an MLflow artifact URI (``runs:/<run id>/model``).

    Raises:
        SavedModelError: the source holds no saved model (the message names it).
    """
    text = str(source)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        from benchmark.tracking import StoreError, download, resolve_uri

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = download(text, tracking_uri or resolve_uri(), Path(tmp))
            except StoreError as exc:
                raise SavedModelError(str(exc)) from exc
            model = _load_folder(local, device)
            model.source = text
            return model
    return _load_folder(Path(source), device)


def _load_folder(folder: Path, device: str) -> SavedModel:
    info = read_info(folder)
    try:
        with _quiet_transformers():
            encoder = AutoModel.from_pretrained(folder / ENCODER_DIR)
        extractor = AutoFeatureExtractor.from_pretrained(folder / ENCODER_DIR)
        tensors = load_file(folder / HEAD_FILE)
        model = SavedModel(folder, info, encoder, extractor, tensors)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise SavedModelError(f"{folder}: could not load the saved model ({exc})") from exc
    return model.to(device)


def utterance_loader(model: SavedModel, records: Sequence[Utterance], *, pin_memory: bool = False):
    """Ordered, centred-crop evaluation batches of ``records``, formed as in the cell's own evaluation."""
    from benchmark.config import TrainConfig
    from benchmark.train import make_loader

    inference = model.info["inference"]
    cfg = TrainConfig(
        batch_size=int(inference["batch_size"]),
        batch_seconds=float(inference.get("batch_seconds", 0.0)),
        max_seconds=float(inference["max_seconds"]),
    )
    dataset = UtteranceDataset(records, model.classes, max_seconds=cfg.max_seconds, train=False)
    return make_loader(dataset, cfg, model.collator(), train=False, seed=0, pin_memory=pin_memory)


def evaluate_records(model: SavedModel, records: Sequence[Utterance], *, precision: str = "auto") -> tuple[dict, list]:
    """Metrics (overall and per gender) and per-utterance predictions of a saved model on labelled records."""
    return score_records(model, records, precision=precision)[:2]


def score_records(model: SavedModel, records: Sequence[Utterance], *, precision: str = "auto"):
    """:func:`evaluate_records` and the records' embeddings (``benchmark.train.Embeddings``), in one pass."""
    from benchmark.train import score

    device = next(model.parameters()).device
    return score(model, utterance_loader(model, records), list(records), device, precision)


@torch.no_grad()
def predict_files(model: SavedModel, paths: Sequence[str | Path], *, batch_size: int = 1) -> list[dict]:
    """Predicted class and class probabilities of each audio file (mono-mixed, resampled to 16 kHz, centred crop).

    One file per forward pass by default, so that a file's scores do not depend on the files passed with it:
    encoders whose first convolution normalises over time (group norm: WavLM-base-plus, wav2vec 2.0-base,
    HuBERT-base) see the padding of a batch, which moves the probabilities a little.

    Raises:
        AudioError: a file is missing or unreadable (named).
    """
    from benchmark.data.audio import load_audio

    device = next(model.parameters()).device
    collate = model.collator()
    max_samples = round(model.max_seconds * SAMPLE_RATE)
    out: list[dict] = []
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        # unlabelled audio: the collator's label fields are filled and unused
        items = [{"wave": crop(load_audio(p), max_samples, None), "emotion": 0, "gender": 0, "index": 0} for p in chunk]
        batch = collate(items).to(device)
        probs = model.probabilities(batch.input_values, batch.sample_mask).cpu()
        for path, row in zip(chunk, probs, strict=True):
            out.append(
                {
                    "path": path,
                    "predicted": model.classes[int(row.argmax())],
                    **{f"p_{c}": float(p) for c, p in zip(model.classes, row, strict=True)},
                }
            )
    return out


class _PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` returns the predictions of: a DataFrame with a ``path`` column in."""

    def __init__(self, model: SavedModel) -> None:
        self.model = model

    def predict(self, model_input, params: dict | None = None):
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            if "path" not in model_input.columns:
                raise ValueError(f"expected a 'path' column of audio files, got columns {list(model_input.columns)}")
            paths = list(model_input["path"])
        else:
            paths = [model_input] if isinstance(model_input, str) else list(model_input)
        return pd.DataFrame(predict_files(self.model, paths))


def _load_pyfunc(data_path: str) -> _PyfuncModel:
    """MLflow's entry point for the python_function flavour (``mlflow.pyfunc.load_model``)."""
    return _PyfuncModel(_load_folder(Path(data_path), "cuda" if torch.cuda.is_available() else "cpu"))
