"""Saved cell models: the saved model scores exactly as the trained one did, from a directory, an MLflow run
and MLflow's pyfunc loader; bad directories and bad audio are one clear error; nothing is left half-written."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from benchmark.cli import main
from benchmark.data.audio import AudioError, load_audio
from benchmark.data.batching import crop
from benchmark.data.records import CLASSES, SAMPLE_RATE
from benchmark.models import saved
from benchmark.models.saved import SavedModelError, evaluate_records, load_model, predict_files, save_cell
from benchmark.train import evaluate_cell, fit_cell
from tests.test_train import spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(small_records, tmp_path_factory):
    """A trained ML-GEmo-CLAP (head mode: the gender head is saved too), its result and its saved directory."""
    fit = fit_cell(small_records, spec("ml-gemo-clap"), progress=False)
    result = evaluate_cell(fit)
    folder = save_cell(fit, result, tmp_path_factory.mktemp("saved") / "model", data={"kind": "embedded"})
    return fit, result, folder


def test_saved_model_scores_the_test_fold_exactly_as_the_trained_model(fitted):
    fit, result, folder = fitted
    model = load_model(folder)
    test, predictions = evaluate_records(model, fit.fold.test)
    assert predictions == result.predictions
    assert test["confusion"] == result.test["confusion"]
    assert test["war"] == result.test["war"] and test["uar"] == result.test["uar"]
    assert test["by_gender"] == result.test["by_gender"]
    for name, tensor in fit.model.audio_encoder.state_dict().items():
        assert torch.equal(model.audio_encoder.state_dict()[name], tensor), name
    assert torch.equal(model.gender_head.weight, fit.model.gender_head.weight)


def test_saved_model_records_what_produced_it(fitted):
    fit, result, folder = fitted
    info = json.loads((folder / "gemo_model.json").read_text())
    assert info["spec"] == json.loads(json.dumps(fit.spec.to_dict())) and info["best_epoch"] == fit.best_epoch
    assert info["weights"] == {"audio": "random-init (tiny-wavlm)", "text": "random-init (tiny-roberta)"}
    assert info["test"]["war"] == result.test["war"] and info["test"]["n"] == len(fit.fold.test)
    assert info["classes"] == list(CLASSES) and info["inference"]["max_seconds"] == 1.5
    assert info["data"] == {"kind": "embedded"} and info["commit"]
    ids = (folder / "training_ids.txt").read_text().splitlines()
    assert sorted(ids) == sorted(r.id for r in (*fit.fold.train, *fit.fold.val))
    assert not {r.id for r in fit.fold.test} & set(ids)
    # the encoder directory is a plain transformers checkpoint
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(folder / "audio_encoder")
    assert type(encoder).__name__ == type(fit.model.audio_encoder).__name__


@pytest.mark.parametrize("batch_size", [1, 4])
def test_predicted_probabilities_are_the_trained_models(fitted, batch_size):
    """Files in, through the whole chain (read, crop, pad, reloaded encoder), against the in-memory model fed
    the same batches (padding is part of an encoder's arithmetic, so the reference pads alike)."""
    fit, _, folder = fitted
    records = fit.fold.test[:6]
    rows = predict_files(load_model(folder), [r.path for r in records], batch_size=batch_size)
    assert [row["path"] for row in rows] == [str(r.path) for r in records]
    trained = fit.model.eval()
    extractor = fit.collator.feature_extractor
    want = []
    with torch.no_grad():
        class_emb = trained.class_embeddings()
        for start in range(0, len(records), batch_size):
            waves = [
                crop(load_audio(r.path), round(1.5 * SAMPLE_RATE), None) for r in records[start : start + batch_size]
            ]
            x = extractor(
                waves, sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True, return_tensors="pt"
            )
            pooled = trained.pooled_audio(x["input_values"], x["attention_mask"].long())
            want.append(F.softmax(trained.logit_scale() * trained.embed_audio(pooled) @ class_emb.T, dim=-1))
    want = torch.cat(want)
    got = torch.tensor([[row[f"p_{c}"] for c in CLASSES] for row in rows])
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert [row["predicted"] for row in rows] == [CLASSES[int(k)] for k in want.argmax(dim=1)]


def test_mlflow_pyfunc_loads_the_directory(fitted):
    import mlflow.pyfunc

    fit, _, folder = fitted
    paths = [str(r.path) for r in fit.fold.test[:3]]
    frame = mlflow.pyfunc.load_model(str(folder)).predict(pd.DataFrame({"path": paths}))
    want = pd.DataFrame(predict_files(load_model(folder), paths))
    pd.testing.assert_frame_equal(frame, want)
    with pytest.raises(ValueError, match="'path' column"):
        mlflow.pyfunc.load_model(str(folder)).predict(pd.DataFrame({"file": paths}))


def test_save_refuses_a_non_empty_directory_and_leaves_nothing_half_written(fitted, tmp_path, monkeypatch):
    fit, result, _ = fitted
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        save_cell(fit, result, tmp_path / "taken", data={})
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["x"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saved, "write_pyfunc_description", broken)
    with pytest.raises(OSError, match="disk full"):
        save_cell(fit, result, tmp_path / "new", data={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_directory_that_is_not_a_saved_model_is_one_clear_error(fitted, tmp_path):
    _, _, folder = fitted
    with pytest.raises(SavedModelError, match=re.escape(f"{tmp_path}: no gemo_model.json")):
        load_model(tmp_path)
    with pytest.raises(SavedModelError, match="no such directory"):
        load_model(tmp_path / "missing")
    copy = tmp_path / "copy"
    copy.mkdir()
    info = json.loads((folder / "gemo_model.json").read_text())
    (copy / "gemo_model.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(SavedModelError, match="format 99"):
        load_model(copy)
    (copy / "gemo_model.json").write_text(json.dumps(info))  # right format, no weights
    with pytest.raises(SavedModelError, match=re.escape(f"{copy}: could not load the saved model")):
        load_model(copy)


def test_a_corrupt_audio_file_is_named(fitted, tmp_path):
    _, _, folder = fitted
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match=r"bad\.wav"):
        predict_files(load_model(folder), [bad])


def test_other_rates_and_stereo_are_read_like_training_audio(fitted, tmp_path):
    """A 44.1 kHz stereo file is mixed and resampled by the same reader as the corpora."""
    fit, _, folder = fitted
    wave = load_audio(fit.fold.test[0].path)
    import soxr

    up = soxr.resample(wave, SAMPLE_RATE, 44100)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([up, up], axis=1), 44100)
    model = load_model(folder)
    (row,) = predict_files(model, [path])
    (ref,) = predict_files(model, [fit.fold.test[0].path])
    assert row["predicted"] == ref["predicted"]
    assert max(abs(row[f"p_{c}"] - ref[f"p_{c}"]) for c in CLASSES) < 0.05


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_save_evaluate_and_predict(capsys, small_corpus, tmp_path):
    common = ["--iemocap", small_corpus, "--audio-encoder", "tiny-hubert", "--text-encoder", "tiny-roberta"]
    train = [*common, "--variant", "emo-clap", "--fold", "3", "--epochs", "2", "--batch-size", "8"]
    train += ["--max-seconds", "1.5", "--proj-dim", "16", "--no-progress", "--json"]
    code, out, err = run(capsys, "train-cell", *train, "--save-model", tmp_path / "m")
    assert code == 0, err
    trained = json.loads(out)

    files = ["--embeddings", tmp_path / "e.emb", "--predictions", tmp_path / "p3.csv"]
    code, out, err = run(capsys, "evaluate", tmp_path / "m", *common[:2], "--fold", "3", "--json", *files)
    assert code == 0, err
    scored = json.loads(out)
    assert "warning" not in err
    # the embeddings file, at the path given: a row per scored utterance beside its prediction (its values are
    # checked against the model in test_runner)
    emb = np.load(tmp_path / "e.emb", allow_pickle=False)
    preds = pd.read_csv(tmp_path / "p3.csv")
    assert list(emb["id"]) == list(preds["id"]) and list(emb["predicted"]) == list(preds["predicted"])
    assert len(preds) == trained["sizes"]["test"] and emb["audio"].shape == (len(preds), 16)
    assert set(emb["speaker"]) == {"Ses03F", "Ses03M"} and list(emb["classes"]) == list(CLASSES)
    assert {k: scored[k] for k in ("war", "uar", "confusion", "by_gender")} == {
        k: trained[k] for k in ("war", "uar", "confusion", "by_gender")
    }
    assert scored["n"] == trained["sizes"]["test"] and scored["seen_in_training"] == 0
    assert scored["weights"] == trained["weights"]

    # the whole corpus holds the model's own training data: scored, and flagged
    code, out, err = run(capsys, "evaluate", tmp_path / "m", *common[:2], "--json", "--predictions", tmp_path / "p.csv")
    assert code == 0
    seen = trained["sizes"]["train"] + trained["sizes"]["val"]
    assert json.loads(out)["seen_in_training"] == seen
    assert f"warning: {seen} of {seen + trained['sizes']['test']} utterances trained this model" in err
    assert len(pd.read_csv(tmp_path / "p.csv")) == seen + trained["sizes"]["test"]

    code, out, err = run(capsys, "evaluate", tmp_path / "m", *common[:2], "--fold", "9")
    assert code == 2 and "--fold 9: no such fold" in err

    wavs = sorted(small_corpus.glob("Session3/sentences/wav/*/*.wav"))[:3]
    code, out, err = run(capsys, "predict", tmp_path / "m", *wavs, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["path"] for r in rows] == [str(w) for w in wavs]
    for r in rows:
        assert r["predicted"] in CLASSES and sum(r[f"p_{c}"] for c in CLASSES) == pytest.approx(1.0, abs=1e-5)

    # a taken directory is refused before any training
    code, out, err = run(capsys, "train-cell", *train, "--save-model", tmp_path / "m")
    assert code == 2 and out == "" and f"{tmp_path / 'm'}: a saved model needs a new or empty" in err
