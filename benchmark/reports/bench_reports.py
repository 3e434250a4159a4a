"""Benchmark: every report on a simulated store of 1,000 fold runs (IEMOCAP-sized predictions).

    python -m benchmark.reports.bench_reports                 # store in .gemo/bench-reports (reused)
    python -m benchmark.reports.bench_reports --store DIR --json reports/perf/reports.json

The store holds two studies of 1,000 fold runs each (the mechanism report reads both): 4 encoders x 10
configurations (Emo-CLAP, SL- and ML-GEmo-CLAP at two alphas, each at two temperatures) x 5 seeds x 5
folds, with parent runs, 20 epochs of training history per run, ``predictions.csv`` of a whole IEMOCAP
session per run (2 speakers x ``--per-speaker`` utterances, with label agreement in the main study) and
cross-corpus metrics for two evaluation corpora. The embeddings and calibration reports are timed on a third
study of the paper table's size, 4 encoders x 3 variants x 5 folds, whose runs log ``embeddings.npz`` of
IEMOCAP's shape (a whole session, d = 512) and a logit scale at every epoch. Populating the store
takes minutes and is done once; the timings are of the reports only.

Each report is timed in this process (imports done, as in a long session) and as the ``gemo-bench report``
command in a fresh process (imports included), in wall-clock and CPU seconds: on a shared machine the CPU
time is the figure an idle machine would show as wall time. ``imports`` is the command's start-up alone.
Beside them, side by side, the bulk reads the reports use are compared with the calls they replace, as
ratios: the table read of the runs (``Tracker.read_runs``) with ``search_runs`` on all of them and with
``get_run`` per run on a sample, the in-place artifact read with ``download_artifacts`` per run, and the
table read of the epoch histories (``Tracker.read_histories``) with ``get_metric_history`` per run and key.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark.reports import (
    ablation,
    agreement,
    bias,
    calibration,
    claims,
    cross_corpus,
    curves,
    embeddings,
    mechanism,
)
from benchmark.reports.common import load_cells, load_predictions
from benchmark.reports.simulate import SimConfig, simulate_study
from benchmark.tracking import Tracker

# MLflow draws a progress bar per download; the per-run comparison below makes a hundred of them
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

ENCODERS = ("tiny-wavlm", "tiny-hubert", "tiny-wav2vec2", "tiny-data2vec")
EPOCHS = 20  # per-epoch history of each fold run (5 metrics a step), as a 20-epoch study logs
STUDY, CONTROL, EMBEDDINGS = "bench_reports", "bench_reports_control", "bench_embeddings"
EMB_DIM = 512  # the projection's default dimension
UNANIMOUS = {"F": 0.72, "M": 0.74}  # the embedded corpus's shares of unanimous labels, per gender
STUDY_FILE = """name = "{name}"
[data]
corpus = "embedded"
control = {control}
[encoders]
audio = {encoders}
text = "tiny-roberta"
[tracking]
uri = "{uri}"
"""


def design(control: bool) -> list[SimConfig]:
    """4 encoders x 2 temperatures x (Emo-CLAP + SL/ML at alpha 0.7 and 0.9) = 40 configurations."""
    out = []
    for k, encoder in enumerate(ENCODERS):
        for t in (0.07, 0.05):
            extra = {"model.temperature": t}
            base = 0.55 + 0.02 * k
            out.append(SimConfig(encoder, "emo-clap", 1.0, base, {"M": 0.03}, extra, split_penalty=0.1))
            for variant, gain in (("sl-gemo-clap", 0.03), ("ml-gemo-clap", 0.01)):
                for alpha in (0.7, 0.9):
                    g = 0.0 if control else gain * (1.3 - alpha) / 0.4
                    out.append(SimConfig(encoder, variant, alpha, base + g, {"M": 0.01}, extra, split_penalty=0.1))
    return out


def populate(store: Path, per_speaker: int) -> None:
    uri = f"sqlite:///{store / 'mlflow.db'}"
    for name, control in ((STUDY, False), (CONTROL, True)):
        tracker = Tracker(uri, name)
        runs = tracker.runs("cell", "FINISHED")
        if len(runs) >= 1000:
            if not control and b"agreement" not in tracker.read_artifacts(runs[:1], "predictions.csv")[runs[0].run_id]:
                raise SystemExit(f"{store}: a store from before label agreement; delete it to populate a new one")
            continue
        started = time.perf_counter()
        n = simulate_study(
            tracker,
            name,
            design(control),
            seeds=range(5),
            per_speaker=per_speaker,
            eval_corpora={"ravdess": (24, 28), "cremad": (91, 8)},
            data={"control": control},
            seed=int(control),
            epochs=EPOCHS,
            unanimous=None if control else UNANIMOUS,
        )
        print(f"populated {name}: {n} fold runs in {time.perf_counter() - started:.0f} s", flush=True)
    tracker = Tracker(uri, EMBEDDINGS)
    if len(tracker.runs("cell", "FINISHED")) < 60:
        started = time.perf_counter()
        table = [
            SimConfig(encoder, variant, alpha, 0.6, emb_gender=gender)
            for encoder in ENCODERS
            for variant, alpha, gender in (
                ("emo-clap", 1.0, 0.0),
                ("sl-gemo-clap", 0.9, 0.3),
                ("ml-gemo-clap", 0.9, 0.1),
            )
        ]
        n = simulate_study(tracker, EMBEDDINGS, table, per_speaker=per_speaker, epochs=EPOCHS, emb_dim=EMB_DIM)
        print(f"populated {EMBEDDINGS}: {n} fold runs in {time.perf_counter() - started:.0f} s", flush=True)


def timed(fn, repeat: int) -> float:
    """Median wall-clock seconds of ``repeat`` calls."""
    return timed_both(fn, repeat)[0]


def timed_both(fn, repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeat`` calls. CPU time is what wall time would be on an idle machine
    for this single-threaded work, so it is the figure to compare when the machine is shared."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def run_command(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall, CPU of the child) seconds of a command in a fresh process, imports included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".gemo/bench-reports", help="store directory (kept and reused)")
    parser.add_argument("--per-speaker", type=int, default=550, help="test utterances per speaker (IEMOCAP: ~550)")
    parser.add_argument("--repeat", type=int, default=3, help="in-process repetitions (median)")
    parser.add_argument("--sample", type=int, default=100, help="runs for the per-run comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    populate(store, args.per_speaker)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    tracker, control, emb = Tracker(uri, STUDY), Tracker(uri, CONTROL), Tracker(uri, EMBEDDINGS)
    out = store / "reports"
    results: dict[str, dict[str, float]] = {}

    runs = tracker.runs("cell", "FINISHED")
    cells = load_cells(tracker, STUDY, ENCODERS)
    preds = load_predictions(tracker, cells.runs.values())
    print(f"{STUDY}: {len(runs)} fold runs, {len(preds.y_true):,} test predictions; {CONTROL} likewise")

    # the bulk reads against the per-run calls they replace, side by side on the same sample
    sample = runs[: args.sample]
    search = timed(lambda: tracker.runs("cell", "FINISHED"), args.repeat)
    table_read = timed(lambda: tracker.read_runs("cell", "FINISHED"), args.repeat)
    bulk_query = table_read * len(sample) / len(runs)
    per_run = timed(lambda: [tracker.client.get_run(r.run_id) for r in sample], 1)
    bulk_read = timed(lambda: tracker.read_artifacts(sample, "predictions.csv"), args.repeat)
    bulk_histories = timed(lambda: tracker.read_histories(sample, curves.CURVE_METRICS), args.repeat)
    keys = curves.CURVE_METRICS
    per_history = timed(lambda: [tracker.client.get_metric_history(r.run_id, k) for r in sample for k in keys], 1)
    with tempfile.TemporaryDirectory() as tmp:
        download = timed(
            lambda: [tracker.client.download_artifacts(r.run_id, "predictions.csv", tmp) for r in sample], 1
        )
    results["bulk vs per-run"] = {
        f"per-run get_run / bulk read of the runs (per {len(sample)} runs)": per_run / bulk_query,
        f"search_runs / read_runs ({len(runs)} runs)": search / table_read,
        f"per-run download_artifacts / bulk read ({len(sample)} runs)": download / bulk_read,
        f"per-run get_metric_history / read_histories ({len(sample)} runs)": per_history / bulk_histories,
    }

    reports = {
        "claims": lambda: claims.write_claims_report(tracker, STUDY, out, encoders=ENCODERS),
        "ablation": lambda: ablation.write_ablation_report(tracker, STUDY, out, encoders=ENCODERS),
        "bias": lambda: bias.write_bias_report(tracker, STUDY, out, encoders=ENCODERS),
        "agreement": lambda: agreement.write_agreement_report(tracker, STUDY, out, encoders=ENCODERS),
        "curves": lambda: curves.write_curves_report(tracker, STUDY, out, encoders=ENCODERS),
        "cross-corpus": lambda: cross_corpus.write_cross_corpus_report(tracker, STUDY, out, encoders=ENCODERS),
        "mechanism": lambda: mechanism.write_mechanism_report(tracker, control, STUDY, CONTROL, out, encoders=ENCODERS),
        "embeddings": lambda: embeddings.write_embeddings_report(emb, EMBEDDINGS, out, encoders=ENCODERS),
        "calibration": lambda: calibration.write_calibration_report(emb, EMBEDDINGS, out, encoders=ENCODERS),
    }
    on_embeddings = ("embeddings", "calibration")  # the reports timed on the embeddings study
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, control_flag in ((STUDY, "false"), (CONTROL, "true"), (EMBEDDINGS, "false")):
            files[name] = Path(tmp) / f"{name}.toml"
            files[name].write_text(
                STUDY_FILE.format(name=name, control=control_flag, encoders=json.dumps(list(ENCODERS)), uri=uri)
            )
        imports = [sys.executable, "-c", "import benchmark.cli, benchmark.studies, benchmark.reports.bias"]
        results["imports"] = dict(zip(("command wall (s)", "command CPU (s)"), run_command(imports)[:2], strict=True))
        for name, fn in reports.items():
            wall, cpu = timed_both(fn, args.repeat)
            study_file = files[EMBEDDINGS if name in on_embeddings else STUDY]
            cmd = [sys.executable, "-m", "benchmark.cli", "report", name, str(study_file), "--out", str(out)]
            if name == "mechanism":
                cmd = [*cmd[:6], "--control", str(files[CONTROL]), *cmd[6:]]
            cwall, ccpu, proc = run_command(cmd)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            results[name] = {
                "in-process wall (s)": wall,
                "in-process CPU (s)": cpu,
                "command wall (s)": cwall,
                "command CPU (s)": ccpu,
            }

    cols = ("in-process wall (s)", "in-process CPU (s)", "command wall (s)", "command CPU (s)")
    print(f"\n{'':<14}" + "".join(f"{c:>21}" for c in cols))
    for name in [*reports, "imports"]:
        print(
            f"{name:<14}" + "".join(f"{results[name][c]:>21.2f}" if c in results[name] else f"{'':>21}" for c in cols)
        )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for k, v in results["bulk vs per-run"].items():
        print(f"{k}: {v:.0f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        record = {
            "load_average": os.getloadavg()[0],
            "runs_per_study": len(runs),
            "runs_of_the_embeddings_study": len(emb.runs("cell", "FINISHED")),
            "predictions_per_study": len(preds.y_true),
            "cpu_count": os.cpu_count(),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
