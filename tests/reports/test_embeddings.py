"""The embeddings report: its measures against slow references, on real MLflow stores with known structure."""

import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.cli import main
from benchmark.data.records import CLASSES
from benchmark.reports.common import load_cells
from benchmark.reports.embeddings import (
    ARTIFACT,
    EmbeddingsFileError,
    NoEmbeddingsError,
    _plotted_runs,
    parse,
    run_measures,
    save,
    write_embeddings_report,
)
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker, _local_artifact_dir
from tests.reports.test_mechanism import write_pair

# ---- slow references -----------------------------------------------------------------------------------

# the report takes its silhouettes' distances in float32 (from float16 embeddings); the rest in float64
TOL = {"sil_emotion": 1e-6, "sil_gender": 1e-6} | dict.fromkeys(
    ("gender_split", "margin_F", "margin_M", "margin_gap", "abs_margin_gap", "spread"), 1e-9
)


def cos_dist(a, b):
    return 1.0 - sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def ref_silhouette(rows, labels):
    """Rousseeuw's silhouette, one utterance at a time; a point alone in its group scores 0."""
    scores = []
    for i, (x, li) in enumerate(zip(rows, labels, strict=True)):
        by_label = {}
        for j, (y, lj) in enumerate(zip(rows, labels, strict=True)):
            if j != i:
                by_label.setdefault(lj, []).append(cos_dist(x, y))
        if li not in by_label:
            scores.append(0.0)
            continue
        a = sum(by_label[li]) / len(by_label[li])
        b = min(sum(d) / len(d) for lab, d in by_label.items() if lab != li)
        scores.append((b - a) / max(a, b))
    return sum(scores) / len(scores)


def ref_measures(rows, prompts, genders, emotions):
    rows = [list(r / np.linalg.norm(r)) for r in rows]
    prompts = [list(p / np.linalg.norm(p)) for p in prompts]
    splits = []
    for k in range(len(CLASSES)):
        f = [r for r, g, e in zip(rows, genders, emotions, strict=True) if e == k and g == "F"]
        m = [r for r, g, e in zip(rows, genders, emotions, strict=True) if e == k and g == "M"]
        if f and m:
            cf = [sum(c) / len(f) for c in zip(*f, strict=True)]
            cm = [sum(c) / len(m) for c in zip(*m, strict=True)]
            splits.append(cos_dist(cf, cm))
    margin = {"F": [], "M": []}
    for r, g, e in zip(rows, genders, emotions, strict=True):
        sims = [sum(x * y for x, y in zip(r, p, strict=True)) for p in prompts]
        margin[g].append(sims[e] - max(s for k, s in enumerate(sims) if k != e))
    out = {
        "sil_emotion": ref_silhouette(rows, emotions),
        "sil_gender": ref_silhouette(rows, genders),
        "gender_split": sum(splits) / len(splits),
        "margin_F": sum(margin["F"]) / len(margin["F"]),
        "margin_M": sum(margin["M"]) / len(margin["M"]),
    }
    out["margin_gap"] = out["margin_F"] - out["margin_M"]
    out["abs_margin_gap"] = abs(out["margin_gap"])
    centre = [sum(c) / len(rows) for c in zip(*rows, strict=True)]
    out["spread"] = sum(cos_dist(r, centre) for r in rows) / len(rows)
    return out


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def random_file(tmp_path, n=36, d=6, seed=0):
    rng = np.random.default_rng(seed)
    genders = np.array(["F", "M"] * (n // 2))
    emotions = rng.integers(0, len(CLASSES), n)
    emotions[:4] = [0, 1, 2, 3]  # every class present
    audio = rng.normal(size=(n, d)) + np.where(genders == "F", 1.5, -1.5)[:, None] * np.eye(d)[0]
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    prompts = rng.normal(size=(len(CLASSES), d))
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    path = tmp_path / ARTIFACT
    save(
        path,
        ids=[f"u{i:03d}" for i in range(n)],
        speakers=[f"S{g}" for g in genders],
        genders=genders,
        emotions=np.asarray(CLASSES)[emotions],
        predicted=np.asarray(CLASSES)[rng.integers(0, len(CLASSES), n)],
        audio=audio,
        prompts=prompts,
    )
    return path, audio, prompts, genders, emotions


def test_measures_match_a_slow_reference(tmp_path):
    path, _, _, genders, emotions = random_file(tmp_path)
    got = run_measures(parse(path.read_bytes(), "f"))
    # the file holds float16: the reference reads what was stored
    stored = np.load(path)["audio"].astype(np.float64)
    want = ref_measures(stored, np.load(path)["prompts"].astype(np.float64), list(genders), list(emotions))
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=TOL[key]), key
    assert got["n"] == len(genders)
    assert got["sil_gender"] > 0.05  # the file's genders were pulled apart along one axis


def test_the_file_round_trips_without_pickle(tmp_path):
    path, audio, _, genders, emotions = random_file(tmp_path)
    z = np.load(path, allow_pickle=False)
    assert list(z["gender"]) == list(genders) and list(z["classes"]) == list(CLASSES)
    assert z["audio"].dtype == np.float16 and np.abs(z["audio"] - audio).max() < 1e-3
    e = parse(path.read_bytes(), "f")
    assert list(e.emotion) == list(emotions)
    np.testing.assert_allclose(np.linalg.norm(e.audio, axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"audio": None}, "f: no array audio"),
        ({"gender": np.array(["F"] * 3)}, r"f: gender has shape \(3,\), expected \(36,\)"),
        ({"classes": np.array(["neu", "hap", "ang", "fea"])}, "f: classes"),
        ({"emotion": np.array(["xxx"] * 36)}, "f: unknown emotion 'xxx'"),
        ({"gender": np.array(["W"] * 36)}, "f: unknown gender 'W'"),
        ({"audio": np.full((36, 6), np.nan, dtype=np.float16)}, "f: audio holds a non-finite"),
        ({"prompts": np.ones((3, 6))}, r"f: prompts has shape \(3, 6\), expected \(4, 6\)"),
        ({"audio": np.ones((35, 6))}, r"f: audio has shape \(35, 6\), expected \(36, d\)"),
    ],
)
def test_a_malformed_file_is_one_clear_error(tmp_path, change, message):
    path = random_file(tmp_path)[0]
    arrays = dict(np.load(path))
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with pytest.raises(EmbeddingsFileError, match=message):
        parse(npz_bytes(**arrays), "f")
    with pytest.raises(EmbeddingsFileError, match=r"f: not a readable \.npz file"):
        parse(b"PK\x03\x04 not a zip", "f")


# ---- the report on simulated stores --------------------------------------------------------------------


def test_report_finds_the_simulated_gender_direction_and_its_figures_are_the_runs(sim_store, tmp_path):
    _, tracker, _ = sim_store
    report = write_embeddings_report(tracker, "sim", tmp_path / "out", encoders=["tiny-wavlm"])
    assert not report.missing and len(report.runs) == 15

    # every fold run's measures, recomputed from its downloaded file with the slow reference
    cells = load_cells(tracker, "sim")
    recomputed = []
    for _, r in cells.frame.iterrows():
        z = np.load(tracker.client.download_artifacts(r["run_id"], ARTIFACT, str(tmp_path / r["run_id"])))
        emotions = [CLASSES.index(e) for e in z["emotion"]]
        m = ref_measures(z["audio"].astype(np.float64), z["prompts"].astype(np.float64), list(z["gender"]), emotions)
        recomputed.append({"variant": r["variant"], "fold": r["fold"], **m})
    ref = pd.DataFrame(recomputed)
    runs = report.runs.merge(ref, on=["variant", "fold"], suffixes=("", "_ref"))
    for key in ("sil_emotion", "sil_gender", "gender_split", "margin_gap"):
        np.testing.assert_allclose(runs[key], runs[f"{key}_ref"], atol=TOL[key])

    # SL-GEmo-CLAP's embeddings carry the gender direction: genders further apart, paired over folds
    by = {(d.config.split(" | ")[1].split()[0], d.measure): d for d in report.differences}
    for variant in ("SL-GEmo-CLAP", "ML-GEmo-CLAP"):
        for measure in ("sil_gender", "gender_split", "sil_emotion"):
            d = by[(variant, measure)]
            a = ref[ref["variant"] == variant.lower()].sort_values("fold")[measure].to_numpy()
            b = ref[ref["variant"] == "emo-clap"].sort_values("fold")[measure].to_numpy()
            assert d.test.mean_diff == pytest.approx((a - b).mean(), abs=2 * TOL[measure])
            assert d.test.p_t == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-4)
    assert by[("SL-GEmo-CLAP", "sil_gender")].reading == "genders further apart"
    assert by[("SL-GEmo-CLAP", "gender_split")].reading == "each emotion split more by gender"
    assert by[("SL-GEmo-CLAP", "sil_gender")].test.p_t < 0.001
    assert by[("ML-GEmo-CLAP", "sil_gender")].reading == "no significant change"
    assert abs(by[("ML-GEmo-CLAP", "sil_gender")].test.mean_diff) < 0.02

    summary = report.summary.set_index("variant")
    emo = ref[ref["variant"] == "emo-clap"]["sil_gender"]
    assert summary.loc["emo-clap", "sil_gender_mean"] == pytest.approx(emo.mean(), abs=1e-6)
    assert summary.loc["emo-clap", "sil_gender_std"] == pytest.approx(emo.std(ddof=1), abs=1e-6)

    md = report.markdown.read_text()
    assert "genders further apart" in md and "| SL-GEmo-CLAP α=0.8 | 5 |" in md
    assert [p.name for p in report.figures] == ["embeddings_tiny-wavlm.png"] and report.figures[0].stat().st_size
    assert {m[1:] for m in report.drawn["tiny-wavlm"].values()} == {(1, 0)} and "- tiny-wavlm: fold 1 (seed 0)" in md
    assert 'id="embeddings"' in report.page.read_text()
    frame = pd.read_csv(report.csv)
    assert {"sil_gender_mean", "sil_gender_diff", "sil_gender_p_t"} <= set(frame.columns)


@pytest.fixture
def small_store(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'small.db'}", "small")
    configs = [
        SimConfig("tiny-wavlm", "emo-clap", emb_gender=0.0),
        SimConfig("tiny-wavlm", "sl-gemo-clap", 0.8, emb_gender=0.5),
    ]
    simulate_study(tracker, "small", configs, folds=(1, 2, 3), per_speaker=20)
    return tracker


def _artifact_file(tracker, run_id):
    return _local_artifact_dir(tracker.client.get_run(run_id).info.artifact_uri) / ARTIFACT


def test_runs_without_embeddings_are_counted_and_left_out(small_store, tmp_path, monkeypatch):
    monkeypatch.setattr("benchmark.reports.embeddings.READ_CHUNK", 4)  # several bulk reads, one run left out
    cells = load_cells(small_store, "small")
    gone = cells.frame[(cells.frame["variant"] == "emo-clap") & (cells.frame["fold"] == 1)]["run_id"].item()
    _artifact_file(small_store, gone).unlink()
    report = write_embeddings_report(small_store, "small", tmp_path / "out")
    assert report.missing == (gone,) and gone not in set(report.runs["run_id"])
    assert "1 finished fold run(s) logged no embeddings.npz" in report.markdown.read_text()
    (d,) = [d for d in report.differences if d.measure == "sil_gender"]
    assert d.test.n == 2  # folds 2 and 3: fold 1 has no Emo-CLAP embeddings to pair with
    # the drawn fold: the first both configurations have
    assert {m[1] for m in report.drawn["tiny-wavlm"].values()} == {2}
    assert "- tiny-wavlm: fold 2 (seed 0)" in report.markdown.read_text()


def test_the_drawn_fold_is_the_first_every_configuration_has(small_store):
    cells = load_cells(small_store, "small")
    configs = list(cells.configs()["config"])
    assert {m[1] for m in _plotted_runs(cells, configs, None).values()} == {1}
    assert {m[1] for m in _plotted_runs(cells, configs, 3).values()} == {3}
    without = cells.frame[~((cells.frame["variant"] == "emo-clap") & (cells.frame["fold"] == 1))]
    from benchmark.reports.common import Cells

    fewer = Cells(without.reset_index(drop=True), cells.extras, cells.runs)
    assert {m[1] for m in _plotted_runs(fewer, configs, None).values()} == {2}
    assert _plotted_runs(fewer, configs, 1)[configs[0]] is None  # asked for a fold it lacks: an empty panel


def test_a_store_without_embeddings_writes_nothing(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'none.db'}", "none")
    simulate_study(tracker, "none", [SimConfig("tiny-wavlm", "emo-clap")], folds=(1, 2), per_speaker=10)
    with pytest.raises(NoEmbeddingsError, match=r"none of its 2 finished fold runs logged embeddings\.npz"):
        write_embeddings_report(tracker, "none", tmp_path / "out")
    assert not (tmp_path / "out" / "none" / "embeddings.md").exists()


def test_a_corrupt_file_names_its_run_and_nothing_is_written(small_store, tmp_path):
    run_id = load_cells(small_store, "small").frame["run_id"].iloc[-1]
    _artifact_file(small_store, run_id).write_bytes(b"not an npz")
    with pytest.raises(EmbeddingsFileError, match=f"run {run_id} .*fold .*embeddings.npz: not a readable"):
        write_embeddings_report(small_store, "small", tmp_path / "out")
    assert not (tmp_path / "out" / "small" / "embeddings.md").exists()


def test_command_draws_the_asked_fold_with_tsne(sim_store, tmp_path, capsys):
    uri, _, _ = sim_store
    study, _ = write_pair(tmp_path, uri=uri)
    out = tmp_path / "out"
    args = ["report", "embeddings", str(study), "--fold", "3", "--projection", "tsne", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "t-SNE of the audio embeddings" in text and "wrote" in text
    assert (out / "sim" / "embeddings_tiny-wavlm.png").stat().st_size > 10_000
    assert (out / "sim" / "embeddings_runs.csv").exists()
    assert "- tiny-wavlm: fold 3 (seed 0)" in text
    with pytest.raises(SystemExit):
        main([*args[:-4], "--projection", "umap"])
    assert "invalid choice: 'umap'" in capsys.readouterr().err
    assert main([*args[:3], "--fold", "9", "--out", str(tmp_path / "none")]) == 2
    assert "--fold 9: no fold run with embeddings has it (folds: 1, 2, 3, 4, 5)" in capsys.readouterr().err
    assert not (tmp_path / "none" / "sim" / "embeddings.md").exists()


def test_an_alpha_sweep_gets_the_measures_against_alpha(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'sweep.db'}", "sweep")
    configs = [SimConfig("tiny-wavlm", "emo-clap", emb_gender=0.0)]
    configs += [SimConfig("tiny-wavlm", "sl-gemo-clap", a, emb_gender=1.0 - a) for a in (0.5, 0.7, 0.9)]
    simulate_study(tracker, "sweep", configs, folds=(1, 2, 3), per_speaker=15)
    report = write_embeddings_report(tracker, "sweep", tmp_path / "out")
    assert [p.name for p in report.figures] == ["embeddings_alpha.png", "embeddings_tiny-wavlm.png"]
    assert "![embeddings_alpha.png](embeddings_alpha.png)" in report.markdown.read_text()
    # the simulated gender weight falls as alpha rises, and so does the measured gender silhouette
    sl = report.summary[report.summary["variant"] == "sl-gemo-clap"].sort_values("alpha")
    assert list(sl["alpha"]) == [0.5, 0.7, 0.9] and sl["sil_gender_mean"].is_monotonic_decreasing
