"""Epoch checkpoints (``train.resumable``): a cell stopped after any epoch resumes to an uninterrupted run's result."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from benchmark.cli import main
from benchmark.config import CellSpec, ClapConfig, TrainConfig
from benchmark.resume import ResumeError
from benchmark.status import render, study_status
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri
from benchmark.train import evaluate_cell, fit_cell
from tests.test_faults import KILLED, gemo_bench
from tests.test_runner import STUDY

pytestmark = pytest.mark.slow


def spec(**train) -> CellSpec:
    return CellSpec(
        audio_encoder="tiny-wav2vec2",  # fine-tuned, with dropout: the generators' states matter
        text_encoder="tiny-roberta",
        variant="sl-gemo-clap",
        alpha=0.8,
        fold=1,
        model=ClapConfig(proj_dim=16),
        train=TrainConfig(epochs=3, batch_size=8, max_seconds=1.0, device="cpu", **train),
    )


class Stop(Exception):
    pass


def stop_at(epoch: int, seen: list[int]):
    def on_epoch(stats) -> None:
        seen.append(stats.epoch)
        if stats.epoch == epoch:
            raise Stop  # before the epoch's state is saved: the state of the epoch before stays

    return on_epoch


def figures(fit) -> tuple:
    result = evaluate_cell(fit)
    history = [{k: v for k, v in asdict(h).items() if k != "seconds"} for h in fit.history]
    return history, fit.best_epoch, result.predictions, result.test["uar"], fit.model.state_dict()


@pytest.mark.parametrize("stop", [2, 3])
def test_a_cell_stopped_after_an_epoch_resumes_to_the_uninterrupted_result(small_records, tmp_path, stop):
    cell = spec()
    history, best, predictions, uar, weights = figures(fit_cell(small_records, cell, progress=False))

    state = tmp_path / "state.pt"
    seen: list[int] = []
    with pytest.raises(Stop):
        fit_cell(small_records, cell, progress=False, resume=state, on_epoch=stop_at(stop, seen))
    assert seen == list(range(1, stop + 1)) and state.is_file()

    seen = []
    fit = fit_cell(small_records, cell, progress=False, resume=state, on_epoch=seen.append)
    assert fit.resumed_from == stop - 1
    assert [s.epoch for s in seen] == [1, 2, 3]  # the restored epochs first, then the trained ones
    resumed = figures(fit)
    assert resumed[0] == history and resumed[1] == best and resumed[3] == uar
    assert resumed[2] == predictions
    assert weights.keys() == resumed[4].keys()
    assert all(torch.equal(weights[k], resumed[4][k]) for k in weights)  # bit for bit


def test_a_state_of_another_cell_or_a_damaged_one_is_one_error_naming_the_file(small_records, tmp_path):
    state = tmp_path / "state.pt"
    with pytest.raises(Stop):
        fit_cell(small_records, spec(), progress=False, resume=state, on_epoch=stop_at(2, []))
    with pytest.raises(ResumeError, match=rf"{state}: the saved training state belongs to another cell; delete it"):
        fit_cell(small_records, spec(lr=1e-3), progress=False, resume=state)
    state.write_bytes(state.read_bytes()[:1000])  # cut short
    with pytest.raises(ResumeError, match=rf"{state}: cannot read the saved training state .*; delete it"):
        fit_cell(small_records, spec(), progress=False, resume=state)


def test_a_resumable_cell_killed_after_an_epoch_resumes_in_the_next_run(tmp_path, capsys):
    def study_in(folder):
        folder.mkdir()
        text = STUDY.format(epochs=3, uri=f"sqlite:///{folder / 'mlflow.db'}")
        text = text.replace('variants = ["emo-clap", "sl-gemo-clap"]', 'variants = ["sl-gemo-clap"]')
        text = text.replace("folds = [1, 2]", "folds = [1]").replace("[train]\n", "[train]\nresumable = true\n")
        (folder / "mini.toml").write_text(text)
        return folder / "mini.toml"

    path, clean = study_in(tmp_path / "killed"), study_in(tmp_path / "clean")
    proc = gemo_bench("run", str(path), "--no-progress", cwd=tmp_path, fault="epoch-saved:2")
    assert proc.returncode == KILLED, proc.stdout + proc.stderr
    study = load_study(path)
    tracker = Tracker(resolve_uri(study.tracking.uri), study.experiment_name)
    (killed,) = tracker.runs("cell", "RUNNING")
    state = tmp_path / "killed" / ".gemo" / "resume" / tracker.experiment_id / f"{killed.tags['gemo.cell_id']}.pt"
    assert state.is_file()
    status = study_status(study)  # what `gemo-bench status` says of it
    (stale,) = status.cells
    assert (stale.state, stale.epoch, stale.epochs, stale.saved_epoch) == ("stale", 2, 3, 2)
    assert "; 2 of 3 epochs logged, resumes after epoch 2" in render(status, "mini.toml")
    assert status.orphan_states == 0
    # the same study edited (another learning rate: other cells) will never resume that state: said, with its size
    edited = study_status(load_study(path, ["train.lr=0.001"]))
    assert (edited.orphan_states, edited.orphan_state_bytes) == (1, state.stat().st_size)
    assert f"note: 1 saved training state(s) in {state.parent} (" in render(edited, "mini.toml")

    assert main(["run", str(path), "--no-progress"]) == 0
    assert ": 1 cells trained" in capsys.readouterr().out
    (run,) = tracker.runs("cell", "FINISHED")
    assert run.tags["gemo.resumed_from_epoch"] == "2"
    assert [m.step for m in tracker.client.get_metric_history(run.run_id, "val_uar")] == [1, 2, 3]
    assert not state.exists()  # deleted once the run ended FINISHED

    assert main(["run", str(clean), "--no-progress"]) == 0
    clean_study = load_study(clean)
    (reference,) = Tracker(resolve_uri(clean_study.tracking.uri), clean_study.experiment_name).runs("cell", "FINISHED")
    assert "gemo.resumed_from_epoch" not in reference.tags
    for key in ("test_uar", "test_war", "best_epoch", "val_uar", "train_loss"):
        assert run.metrics[key] == reference.metrics[key], key
    assert run.tags["gemo.cell_id"] == reference.tags["gemo.cell_id"]  # resumable is no part of the identity
