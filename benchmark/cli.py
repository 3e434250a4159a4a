"""The one command-line entry point: ``gemo-bench``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence

from benchmark.data.records import CLASSES

_DESCRIPTION = (
    "Reproducibility benchmark for gender-aware contrastive speech emotion recognition (GEmo-CLAP): "
    "train and score study cells, search alpha and temperature, and write reports from the runs in MLflow."
)
_EPILOG = (
    "a first run, offline on the embedded corpus: `gemo-bench check studies/paper_table_embedded.toml`, "
    "`gemo-bench run studies/paper_table_embedded.toml`, `gemo-bench report table studies/paper_table_embedded.toml`"
    " (studies/paper_table.toml for IEMOCAP and the pretrained encoders); `gemo-bench COMMAND -h` for each command"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from benchmark.models.quiet import silence_known_warnings

    silence_known_warnings()
    from benchmark.stopping import stop_exit_code, stop_name, stop_on_sigterm

    stop_on_sigterm()  # SIGTERM (kill, timeout) stops a command as Ctrl-C does: runs in progress end KILLED
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        print(f"gemo-bench: interrupted ({stop_name(exc)})", file=sys.stderr)
        return stop_exit_code(exc)
    except (ValueError, FileNotFoundError, RuntimeError, OSError, FloatingPointError) as exc:
        # Every bad input raises one clear error that names the file, line or field; show just that.
        print(f"gemo-bench: error: {exc}", file=sys.stderr)
        return 2


class _VersionAction(argparse.Action):
    """``--version``: the package version and the git commit the code runs from (``-dirty`` with local edits)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from benchmark import __version__
        from benchmark.provenance import git_state

        sha, dirty = git_state()
        print(f"gemo-bench {__version__} (commit {sha}{'-dirty' if dirty else ''})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gemo-bench", description=_DESCRIPTION, epilog=_EPILOG)
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and the commit of this checkout, then exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect a corpus").add_subparsers(dest="data_command", required=True)
    summary = data.add_parser("summary", help="utterance counts of the 4-class set")
    _add_data_args(summary)
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.add_argument("--keep-other", action="store_true", help="count labels outside the 4 classes too")
    summary.set_defaults(func=cmd_data_summary)

    synth = sub.add_parser("synth", help="write the embedded corpus (IEMOCAP format) to a directory")
    synth.add_argument("out", help="directory to create (must not exist or be empty)")
    _add_synth_args(synth)
    synth.set_defaults(func=cmd_synth)

    cell = sub.add_parser("train-cell", help="train and test one fold of one configuration")
    _add_data_args(cell)
    _add_cell_args(cell)
    cell.add_argument("--json", action="store_true", help="print the result as one JSON object")
    cell.add_argument("--no-progress", action="store_true", help="hide progress bars")
    cell.add_argument(
        "--save-model", metavar="DIR", help="save the trained model here (a new directory; see `gemo-bench predict`)"
    )
    cell.set_defaults(func=cmd_train_cell)

    pred = sub.add_parser("predict", help="the emotion of audio files, by a saved cell model")
    _add_model_args(pred)
    pred.add_argument(
        "audio", nargs="+", help="audio files (any rate and channels: mixed to mono, resampled to 16 kHz)"
    )
    pred.add_argument(
        "--batch-size",
        type=POSITIVE,
        default=1,
        help="files per forward pass (default 1: scores independent of the others)",
    )
    pred.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    pred.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="score a saved cell model on a corpus: WAR/UAR overall and per gender")
    _add_model_args(ev)
    _add_data_args(ev)
    ev.add_argument(
        "--fold", type=int, help="score only this test fold (a session on IEMOCAP); default: every utterance"
    )
    ev.add_argument("--predictions", metavar="CSV", help="also write the per-utterance predictions to this CSV file")
    ev.add_argument(
        "--embeddings",
        metavar="NPZ",
        help="also write the utterances' embeddings and the class prompts' (embeddings.npz format) to this file",
    )
    ev.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ev.set_defaults(func=cmd_evaluate)

    run = sub.add_parser("run", help="run every unfinished cell of a study (resumable)")
    run.add_argument("study", help="study file (studies/*.toml)")
    run.add_argument(
        "overrides", nargs="*", default=[], metavar="key=value", help="override study keys: train.epochs=3"
    )
    run.add_argument("--workers", type=POSITIVE, default=1, help="local worker processes (one per GPU when several)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_executor_args(run)
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="where a study stands: each cell finished, running, failed or pending")
    status.add_argument("study", help="study file (studies/*.toml)")
    status.add_argument(
        "overrides", nargs="*", default=[], metavar="key=value", help="the overrides the study runs with"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object, every cell included")
    status.set_defaults(func=cmd_status)

    check = sub.add_parser(
        "check", help="before a run: store, data, checkpoints, device, disk, Slurm and search storage, all at once"
    )
    check.add_argument("study", help="study file (studies/*.toml)")
    check.add_argument(
        "overrides", nargs="*", default=[], metavar="key=value", help="the overrides the study will run with"
    )
    check.add_argument("--workers", type=POSITIVE, default=1, help="local workers it will run with (disk estimate)")
    check.add_argument("--search", action="store_true", help="also check the Optuna storage of `gemo-bench search`")
    check.add_argument(
        "--download", action="store_true", help="fetch hub checkpoints missing from the Hugging Face cache first"
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    _add_executor_args(check)
    check.set_defaults(func=cmd_check)

    search = sub.add_parser("search", help="Optuna search of alpha / temperature / lr, then the best on the test folds")
    search.add_argument("study", help="study file with a [search] table (studies/search_embedded.toml)")
    search.add_argument(
        "overrides", nargs="*", default=[], metavar="key=value", help="override study keys: search.pruner=none"
    )
    search.add_argument("--trials", type=POSITIVE, help="finished trials wanted per search (search.trials)")
    search.add_argument("--workers", type=POSITIVE, default=1, help="search workers (processes, or array tasks)")
    search.add_argument("--no-evaluate", action="store_true", help="skip the best configuration's test-fold run")
    search.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_executor_args(search)
    search.set_defaults(func=cmd_search)

    cost = sub.add_parser(
        "search-cost", help="per-trial cost with and without the frozen-feature cache, measured side by side"
    )
    cost.add_argument("study", help="study file with frozen encoders (train.freeze_encoders)")
    cost.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="override study keys")
    cost.add_argument("--repeats", type=POSITIVE, default=3, help="trials timed per mode, interleaved (default 3)")
    cost.add_argument("--finetune", action="store_true", help="also time a fine-tuning trial (no frozen encoders)")
    cost.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    cost.set_defaults(func=cmd_search_cost)

    report = sub.add_parser("report", help="write reports from logged runs").add_subparsers(
        dest="report_command", required=True
    )
    table = report.add_parser("table", help="the paper's table: encoders x variants, WAR/UAR over folds")
    table.add_argument("study", help="study file (studies/*.toml)")
    table.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="the same overrides as for `run`")
    table.add_argument("--out", default="reports", help="reports folder (default reports/)")
    table.set_defaults(func=cmd_report_table)
    for name, help_text in (
        ("claims", "each of the paper's claims with a verdict: headline figure, direction, alpha range"),
        ("ablation", "every variant and alpha vs Emo-CLAP per encoder, paired tests and speaker-bootstrap CIs"),
        ("bias", "per-gender WAR/UAR, F-M gap with CIs, per-gender confusions, fairlearn metrics"),
        ("agreement", "the F-M gap at equal label agreement: WAR on unanimous and split labels per gender, CIs"),
        ("calibration", "how far each model's confidence can be trusted per gender: ECE, over-confidence, Brier"),
        ("cross-corpus", "in-corpus test vs each evaluation corpus, per gender, from logged xc_ metrics"),
    ):
        p = report.add_parser(name, help=help_text)
        p.add_argument("study", help="study file (studies/*.toml)")
        p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="the same overrides as for `run`")
        p.add_argument("--out", default="reports", help="reports folder (default reports/)")
        _add_boot_args(p)
        p.set_defaults(func=cmd_report_more, kind=name)
    emb = report.add_parser(
        "embeddings",
        help="emotions and speaker genders in each model's embedding space: silhouettes, F-M split, prompt "
        "margins per gender, projections",
    )
    emb.add_argument("study", help="study file (studies/*.toml)")
    emb.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="the same overrides as for `run`")
    emb.add_argument("--out", default="reports", help="reports folder (default reports/)")
    emb.add_argument("--fold", type=int, help="fold whose test embeddings are drawn (default: the first all share)")
    emb.add_argument("--projection", choices=("pca", "tsne"), default="pca", help="2-D projection (default pca)")
    emb.add_argument("--seed", type=int, default=0, help="t-SNE seed (default 0)")
    emb.set_defaults(func=cmd_report_embeddings)
    curves = report.add_parser(
        "curves", help="validation UAR/WAR and training loss per epoch over folds, and where the chosen epochs fell"
    )
    curves.add_argument("study", help="study file (studies/*.toml)")
    curves.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="the same overrides as for `run`")
    curves.add_argument("--out", default="reports", help="reports folder (default reports/)")
    curves.set_defaults(func=cmd_report_more, kind="curves", n_boot=0, boot_seed=0)  # no bootstrap here
    searched = report.add_parser(
        "search", help="each Optuna search: best values, near-best region, importances, the best's test figures"
    )
    searched.add_argument("study", help="study file with a [search] table (studies/search_embedded.toml)")
    searched.add_argument(
        "overrides", nargs="*", default=[], metavar="key=value", help="the same overrides as for `search`"
    )
    searched.add_argument("--out", default="reports", help="reports folder (default reports/)")
    searched.set_defaults(func=cmd_report_search)
    every = report.add_parser(
        "all",
        help="every report that applies: table, claims, ablation, bias, agreement, embeddings, calibration, curves, "
        "cross-corpus, "
        "search, mechanism (with a _control twin)",
    )
    every.add_argument("study", help="study file (studies/*.toml)")
    every.add_argument("--out", default="reports", help="reports folder (default reports/)")
    _add_boot_args(every)
    every.set_defaults(func=cmd_report_all)
    mech = report.add_parser(
        "mechanism", help="gain of the gender-aware variants on the embedded corpus vs its control twin"
    )
    mech.add_argument("study", help="study on the gender-relative embedded corpus (studies/mechanism.toml)")
    mech.add_argument("--control", help="its control twin (default: <study>_control.toml beside it)")
    mech.add_argument("--out", default="reports", help="reports folder (default reports/)")
    _add_boot_args(mech)
    mech.set_defaults(func=cmd_report_mechanism)

    cmp = report.add_parser(
        "compare", help="two runs of the same grid (machines, versions, precision): do they agree, and what changed"
    )
    cmp.add_argument("study", help="study A (its report folder gets the comparison)")
    cmp.add_argument("other", help="study B: the same grid, run elsewhere or otherwise")
    cmp.add_argument("--out", default="reports", help="reports folder (default reports/)")
    _add_boot_args(cmp)
    cmp.set_defaults(func=cmd_report_compare)

    reg = sub.add_parser("regression", help="run a small study afresh and compare WAR/UAR with a baseline")
    reg.add_argument("study", help="study file (default CI subset: studies/ci_subset.toml)")
    reg.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="override study keys")
    reg.add_argument("--baseline", help="baseline JSON (default reports/baselines/<study>.json)")
    reg.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run, on purpose")
    reg.add_argument("--store", help="keep the run's MLflow store in this directory (default: a temporary one)")
    reg.add_argument("--tolerance", type=float, help="absolute WAR/UAR tolerance to record with --update-baseline")
    reg.add_argument("--no-progress", action="store_true", help="hide progress bars")
    reg.set_defaults(func=cmd_regression)

    bench = sub.add_parser("bench", help="performance measurements").add_subparsers(dest="bench_command", required=True)
    tp = bench.add_parser(
        "throughput",
        help="training throughput: a naive loop and the suite's step side by side (random-init weights, real shapes)",
    )
    _add_throughput_args(tp)
    tp.set_defaults(func=cmd_bench_throughput)
    tm = bench.add_parser(
        "throughput-matrix",
        help="the throughput benchmark for every preset and speed option, each run in its own process, one table",
    )
    tm.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    tm.add_argument("--out", default="reports/perf", help="folder of the JSON files and summary (default reports/perf)")
    tm.add_argument("--tag", help="device tag in the file names (default from the device: h100-80gb, cpu, ...)")
    tm.add_argument("--only", nargs="+", metavar="ENTRY", help="run only these entries (see --list)")
    tm.add_argument("--list", action="store_true", help="print the entries and their flags, run nothing")
    tm.add_argument("--budget-minutes", type=float, help="stop the matrix after this long; the rest is listed")
    tm.add_argument(
        "--study", help="study of the crop and hours (default paper_table on CUDA, paper_table_embedded on CPU)"
    )
    tm.add_argument("--utterances", type=POSITIVE, help="every entry's pool size (default: each entry's own)")
    tm.add_argument("--max-seconds", type=float, help="crop length (default: the study's train.max_seconds)")
    tm.add_argument("--warmup", type=NON_NEGATIVE, help="untimed batches per loop (default: the benchmark's)")
    tm.set_defaults(func=cmd_bench_throughput_matrix)
    return parser


def _at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum`` (a count of workers, trials, repeats, ...)."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return count


POSITIVE, NON_NEGATIVE = _at_least(1), _at_least(0)


def _add_throughput_args(p: argparse.ArgumentParser) -> None:
    from benchmark.config import ATTENTION_KINDS, ML_MODES, PRECISIONS, VARIANTS

    p.add_argument("--audio-encoder", help="audio preset (default: wavlm-base-plus on CUDA, tiny-wavlm on CPU)")
    p.add_argument("--text-encoder", help="text preset (default: roberta-base on CUDA, tiny-roberta on CPU)")
    p.add_argument("--variant", choices=VARIANTS, default="emo-clap")
    p.add_argument("--alpha", type=float, help="alpha_e of the gender-aware variants (default 0.9)")
    p.add_argument("--ml-mode", choices=ML_MODES, default="head")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--utterances", type=POSITIVE, help="pool size of the timed pass (default 1024 on CUDA, 96 on CPU)")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=5, help="untimed batches per loop first (default 5)")
    p.add_argument("--naive-batch", type=POSITIVE, default=8, help="batch size of the naive loop (default 8)")
    p.add_argument(
        "--suite-only",
        dest="naive",
        action="store_false",
        help="time the suite's step alone: no naive loop, no speed-up (for option variants of a measured preset)",
    )
    p.add_argument("--study", help="study whose training hours to estimate (default studies/paper_table.toml)")
    p.add_argument("--max-seconds", type=float, help="crop length (default: the study's train.max_seconds)")
    p.add_argument("--batch-size", type=POSITIVE, default=64, help="suite: most utterances per batch (default 64)")
    p.add_argument(
        "--batch-seconds", type=float, default=320.0, help="suite: padded audio seconds per batch (default 320)"
    )
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="suite: default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--attention", choices=ATTENTION_KINDS, default="auto", help="suite: attention kernel")
    p.add_argument("--compile", action="store_true", help="suite: torch.compile the audio encoder's layers")
    p.add_argument("--grad-checkpointing", action="store_true", help="suite: activation checkpointing")
    p.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="both loops: let torch pick non-deterministic (faster) CUDA kernels",
    )
    p.add_argument("--num-workers", type=NON_NEGATIVE, help="suite: loader workers (default 4 on CUDA, 0 on CPU)")
    p.add_argument("--proj-dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, help="peak TFLOP/s of the device for MFU (default: table / measured)")
    p.add_argument("--json", metavar="PATH", help="also write the figures, device and versions to this JSON file")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="a saved model: a directory (train-cell --save-model) or an MLflow URI, runs:/<run id>/model"
    )
    p.add_argument(
        "--tracking-uri", help="MLflow store of a runs:/ URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")


def _load_saved(args: argparse.Namespace):
    from benchmark.models.saved import load_model
    from benchmark.tracking import resolve_uri
    from benchmark.train import resolve_device

    return load_model(args.model, tracking_uri=resolve_uri(args.tracking_uri or ""), device=resolve_device(args.device))


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    from benchmark.executors import KINDS

    g = p.add_argument_group("executor (default: the study's [executor] table)")
    g.add_argument("--executor", choices=KINDS, help="local processes, a Slurm job array, or submitit's local runner")
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument("--gpus-per-task", type=int, help="GPUs per array task")
    g.add_argument("--timeout-min", type=int, help="wall-clock limit per array task")
    g.add_argument("--array-parallelism", type=int, help="array tasks running at once")


def _executor_overrides(args: argparse.Namespace) -> list[str]:
    """The executor flags as study overrides, so they are validated like the file's own keys."""
    flags = {
        "kind": args.executor,
        "partition": args.partition,
        "gpus_per_task": args.gpus_per_task,
        "timeout_min": args.timeout_min,
        "array_parallelism": args.array_parallelism,
    }
    return [f"executor.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]


def _add_synth_args(p: argparse.ArgumentParser) -> None:
    from benchmark.data.synthetic import DEFAULT_SIZE

    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"4-class utterances (default {DEFAULT_SIZE})")
    p.add_argument("--control", action="store_true", help="gender-independent cues (the control twin)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from benchmark.data.sources import CORPORA, SUBSETS
    from benchmark.data.synthetic import DEFAULT_SIZE

    g = p.add_argument_group(
        "data (--corpus NAME --root ROOT; --iemocap ROOT or IEMOCAP_ROOT for IEMOCAP; else the embedded corpus)"
    )
    g.add_argument(
        "--corpus", choices=CORPORA, help="corpus to read (default: iemocap if a root is known, else embedded)"
    )
    g.add_argument("--root", help="the corpus's root (a manifest CSV for --corpus manifest; default: its $..._ROOT)")
    g.add_argument(
        "--iemocap", metavar="ROOT", help="shorthand for --corpus iemocap --root ROOT (default: $IEMOCAP_ROOT)"
    )
    g.add_argument("--folds", type=int, default=5, help="speaker-independent k-fold for corpora without sessions (5)")
    g.add_argument(
        "--drop-unreadable",
        action="store_true",
        help="leave unreadable audio files out (listed on stderr) instead of stopping with an error naming them",
    )
    g.add_argument(
        "--subset",
        choices=SUBSETS,
        default="all",
        help="IEMOCAP-format corpora: all dialogs (default), or only the improvised or the scripted ones",
    )
    g.add_argument("--synth-seed", type=int, default=0, help="embedded corpus seed (default 0)")
    g.add_argument("--synth-size", type=int, default=DEFAULT_SIZE, help=f"embedded corpus size ({DEFAULT_SIZE})")
    g.add_argument("--control", action="store_true", help="use the embedded corpus's control twin")


def _data_spec(args: argparse.Namespace):

    spec = _base_data_spec(args)
    if args.subset != "all":
        spec = dataclasses.replace(spec, subset=args.subset)
    return dataclasses.replace(spec, unreadable="drop") if args.drop_unreadable else spec


def _base_data_spec(args: argparse.Namespace):
    from benchmark.data.sources import DataSpec

    if args.corpus and args.iemocap:
        raise ValueError("--iemocap ROOT is the shorthand for --corpus iemocap --root ROOT; give one or the other")
    if args.corpus == "embedded":
        return DataSpec(corpus="embedded", seed=args.synth_seed, size=args.synth_size, control=args.control)
    if args.corpus:
        return DataSpec(corpus=args.corpus, root=args.root, folds=args.folds)
    if args.root:
        raise ValueError("--root needs --corpus NAME (or use --iemocap ROOT)")
    return DataSpec.from_environment(args.iemocap, seed=args.synth_seed, size=args.synth_size, control=args.control)


def _add_cell_args(p: argparse.ArgumentParser) -> None:
    from benchmark.config import ML_MODES, VARIANTS, TrainConfig, check_alpha

    def alpha(text: str) -> float:
        try:
            return check_alpha(float(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    g = p.add_argument_group("cell")
    g.add_argument(
        "--audio-encoder",
        help="preset, hub id or local dir (default: tiny-wavlm on the embedded corpus, wavlm-base-plus on IEMOCAP)",
    )
    g.add_argument("--text-encoder", help="preset, hub id or local dir (default: tiny-roberta / roberta-base)")
    g.add_argument("--variant", choices=VARIANTS, default="sl-gemo-clap")
    g.add_argument("--alpha", type=alpha, help="alpha_e in [0, 1] (default 0.9; emo-clap always uses 1)")
    g.add_argument("--ml-mode", choices=ML_MODES, default="head", help="ML-GEmo-CLAP gender task")
    g.add_argument("--target-norm", choices=("sum", "softmax"), default="sum")
    g.add_argument("--fold", type=int, required=True, help="test fold: the session (1-5) on IEMOCAP, else 1..k")
    g.add_argument("--seed", type=int, default=0)
    m = p.add_argument_group("model")
    m.add_argument("--proj-dim", type=int, default=512)
    m.add_argument("--temperature", type=float, default=0.07, help="initial (or fixed) temperature")
    m.add_argument("--fixed-temperature", action="store_true", help="do not learn the temperature")
    m.add_argument("--prompt-template", default="The emotion is {label}.")
    t = p.add_argument_group("training (defaults: PAPER.md; lr 2e-5 pre-trained, 1e-3 random-init)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        if kind is bool:  # --compile / --no-compile
            t.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"default {f.default}")
        else:
            t.add_argument(flag, type=kind, default=None, help=f"default {f.default}")


def cell_spec_from_args(args: argparse.Namespace, corpus: str):
    from benchmark.config import CellSpec, ClapConfig, TrainConfig
    from benchmark.models.presets import default_lr

    tiny = corpus == "embedded"
    audio = args.audio_encoder or ("tiny-wavlm" if tiny else "wavlm-base-plus")
    text = args.text_encoder or ("tiny-roberta" if tiny else "roberta-base")
    train = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    train.setdefault("lr", default_lr(audio))
    alpha = 1.0 if args.variant == "emo-clap" else (0.9 if args.alpha is None else args.alpha)
    if args.variant == "emo-clap" and args.alpha not in (None, 1.0):
        raise ValueError(f"--alpha {args.alpha}: alpha applies only to the gender-aware variants")
    model = ClapConfig(
        proj_dim=args.proj_dim,
        temperature=args.temperature,
        learnable_temperature=not args.fixed_temperature,
        prompt_template=args.prompt_template,
    )
    return CellSpec(
        audio_encoder=audio,
        text_encoder=text,
        variant=args.variant,
        fold=args.fold,
        alpha=alpha,
        ml_mode=args.ml_mode,
        target_norm=args.target_norm,
        seed=args.seed,
        model=model,
        train=TrainConfig(**train),
    )


def cmd_data_summary(args: argparse.Namespace) -> int:
    from benchmark.data.corpus import summarize_reading

    spec = _data_spec(args)
    reading = spec.read(keep_other=args.keep_other)
    summary = summarize_reading(reading, sessions=spec.session_folds and not args.corpus)
    for path, reason in reading.unreadable:
        print(f"unreadable: {path}: {reason}", file=sys.stderr)
    for dup, kept in reading.duplicates:
        print(f"duplicate: {dup} (same audio as {kept}; kept that one)", file=sys.stderr)
    for note in reading.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{spec.reader.title} at {reading.root}")
    print(f"total: {summary['total']}")
    for key in ("by_emotion", "by_session", "by_gender", "by_speaker", "dropped"):
        if key in summary:
            print(f"{key}: " + (", ".join(f"{k} {v}" for k, v in summary[key].items()) or "none"))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from benchmark.data.synthetic import SynthConfig, write_corpus

    root = write_corpus(args.out, SynthConfig(seed=args.seed, size=args.size, control=args.control))
    print(root)
    return 0


def cmd_train_cell(args: argparse.Namespace) -> int:
    from benchmark.models.presets import describe_weights
    from benchmark.train import train_cell

    data = _data_spec(args)
    spec = cell_spec_from_args(args, data.corpus)
    save = None
    if args.save_model:
        from benchmark.models.saved import check_target, save_cell

        target = check_target(args.save_model)  # say so before training, not after

        def save(fit, result):
            save_cell(fit, result, target, data=data.describe())

    result = train_cell(data.load(), spec, progress=not args.no_progress, on_evaluated=save)
    out = result.summary()
    out["data"] = data.describe()
    out["weights"] = {
        "audio": describe_weights(spec.audio_encoder, "audio"),
        "text": describe_weights(spec.text_encoder, "text"),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    _print_scores(
        f"fold {spec.fold} {spec.variant} alpha={spec.alpha} {spec.audio_encoder}: "
        f"WAR {out['war']:.4f}  UAR {out['uar']:.4f}  ({out['seconds']} s on {out['device']})",
        out,
    )
    if args.save_model:
        print(f"  model saved: {args.save_model}")
    return 0


def _print_scores(title: str, out: dict) -> None:
    print(title)
    for g, m in out["by_gender"].items():
        print(f"  {g}: WAR {m['war']:.4f}  UAR {m['uar']:.4f}")
    print("  confusion (rows true, cols predicted: " + " ".join(CLASSES) + ")")
    for code, row in zip(CLASSES, out["confusion"], strict=True):
        print(f"    {code} " + " ".join(f"{v:5d}" for v in row))


def cmd_predict(args: argparse.Namespace) -> int:
    from benchmark.models.saved import predict_files

    model = _load_saved(args)
    rows = predict_files(model, args.audio, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(rows))
        return 0
    print("predicted  " + "  ".join(f"p_{c:<4}" for c in model.classes) + "  path")
    for row in rows:
        print(
            f"{row['predicted']:<9}  " + "  ".join(f"{row[f'p_{c}']:.4f}" for c in model.classes) + f"  {row['path']}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import csv
    from pathlib import Path

    from benchmark import metrics
    from benchmark.models.saved import score_records

    model = _load_saved(args)
    data = _data_spec(args)
    records = data.load()
    if args.fold is not None:
        folds = sorted({r.test_fold for r in records})
        records = [r for r in records if r.test_fold == args.fold]
        if not records:
            raise ValueError(f"--fold {args.fold}: no such fold in {data.corpus} (folds: {folds})")
    seen = sum(r.id in model.training_ids for r in records)
    if seen:
        print(
            f"gemo-bench: warning: {seen} of {len(records)} utterances trained this model or chose its epoch "
            f"(it was trained with fold {model.info['spec']['fold']} held out): their scores are not held-out",
            file=sys.stderr,
        )
    test, predictions, embeddings = score_records(model, records)
    out = {
        **metrics.headline(test),
        "confusion": test["confusion"],
        "classes": list(model.classes),
        "recall": test["recall"],
        "n": len(predictions),
        "seen_in_training": seen,
        "model": model.source,
        "weights": model.info.get("weights"),
        "data": data.describe(),
    }
    if args.predictions:
        with open(args.predictions, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(predictions[0]))
            writer.writeheader()
            writer.writerows(predictions)
    if args.embeddings:
        from benchmark.reports.embeddings import save_scored

        e = embeddings
        save_scored(Path(args.embeddings), predictions, e.ids, e.audio, e.prompts, model.classes)
    if args.json:
        print(json.dumps(out))
        return 0
    where = f"fold {args.fold}" if args.fold is not None else "all"
    _print_scores(
        f"{model.source} on {data.corpus} ({where}, {len(predictions)} utterances): "
        f"WAR {out['war']:.4f}  UAR {out['uar']:.4f}",
        out,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import shlex

    from benchmark.runner import StudyInterrupted, run_study
    from benchmark.stopping import stop_exit_code
    from benchmark.studies import load_study

    study = load_study(args.study, [*args.overrides, *_executor_overrides(args)])
    try:
        summary = run_study(study, workers=args.workers, progress=not args.no_progress)
    except StudyInterrupted as stop:
        s = stop.summary
        print(
            f"{study.name}: interrupted ({stop.stopped_by}) after {len(s.trained)} cells trained "
            f"({len(s.skipped)} already finished, "
            f"{len(s.failed)} failed); finished cells are kept, and the cells in training ended KILLED",
            file=sys.stderr,
        )
        if stop.executor == "slurm":
            print(
                "  the Slurm jobs already submitted keep running: `gemo-bench status "
                f"{shlex.join([args.study, *args.overrides])}` follows them, `scancel` stops them",
                file=sys.stderr,
            )
        print("run the same command again to resume", file=sys.stderr)
        return stop_exit_code(stop)
    print(
        f"{study.name}: {len(summary.trained)} cells trained, {len(summary.skipped)} already finished, "
        f"{len(summary.failed)} failed ({summary.seconds:.0f} s)"
    )
    for reason in summary.failed.values():
        print(f"  failed: {reason}", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.status import render, study_status
    from benchmark.studies import load_study

    study = load_study(args.study, args.overrides)
    status = study_status(study)
    import shlex

    where = shlex.join([args.study, *args.overrides])
    print(json.dumps(status.to_dict(), indent=2) if args.json else render(status, where))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import shlex

    from benchmark.preflight import check_study, render
    from benchmark.studies import load_study

    overrides = [*args.overrides, *_executor_overrides(args)]
    study = load_study(args.study, overrides)
    result = check_study(study, workers=args.workers, search=True if args.search else None, download=args.download)
    workers = [] if args.workers == 1 else ["--workers", str(args.workers)]
    print(
        json.dumps(result.to_dict(), indent=2)
        if args.json
        else render(result, shlex.join([args.study, *overrides, *workers]), "search" if args.search else "run")
    )
    return 1 if result.failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    from benchmark import provenance
    from benchmark.search import run_search, storage_url
    from benchmark.search_store import nothing_to_search, targets
    from benchmark.stopping import stop_exit_code, stop_name
    from benchmark.studies import StudyError, load_study

    trials = [] if args.trials is None else [f"search.trials={args.trials}"]
    study = load_study(args.study, [*args.overrides, *trials, *_executor_overrides(args)])
    if not _has_search_table(study) and not any(o.startswith("search.") for o in args.overrides):
        raise StudyError(
            f"{args.study}: no [search] table: it says what to search (alpha, temperature, lr ranges) and how many "
            "trials; add one (README, Searches; studies/search_embedded.toml is an example) or give search.* overrides"
        )
    storage = provenance.redact_uri(storage_url(study))
    for target in targets(study):
        why = nothing_to_search(study, target)
        if why and study.search.trials > 1:
            print(f"note: {target.study_name}: {why}", file=sys.stderr)
    try:
        results = run_search(study, workers=args.workers, evaluate=not args.no_evaluate, progress=not args.no_progress)
    except KeyboardInterrupt as exc:
        print(
            f"{study.name}: interrupted ({stop_name(exc)}); run the same command again to resume the search",
            file=sys.stderr,
        )
        return stop_exit_code(exc)
    failed = False
    for error in results[0].worker_errors if results else []:
        print(f"note: {error} (its trials were retried by the other workers)", file=sys.stderr)
    for r in results:
        c = r.counts
        print(f"{r.target.study_name}: {c.done} trials ({c.complete} complete, {c.pruned} pruned, {c.failed} failed)")
        if r.best_trial is None:
            print("  no complete trial: nothing to evaluate")
            continue
        values = ", ".join(f"{k}={v:.4g}" for k, v in r.best_values.items())
        gap = f", gender gap {r.best_gap:.4f}" if r.best_gap is not None and math.isfinite(r.best_gap) else ""
        print(f"  best: trial {r.best_trial}, mean validation UAR {r.best_value:.4f}{gap} ({values})")
        if r.front:
            print(f"  Pareto front of validation UAR and gender gap: {len(r.front)} trials")
        for p in r.front:
            tested = ""
            if "uar_mean" in p.test:
                tested = f"; test UAR {p.test['uar_mean']:.4f}"
                if "uar_F_mean" in p.test and "uar_M_mean" in p.test:
                    tested += f", F - M {p.test['uar_F_mean'] - p.test['uar_M_mean']:+.4f}"
            front_values = ", ".join(f"{k}={v:.4g}" for k, v in p.values.items())
            print(f"    trial {p.trial}: UAR {p.uar:.4f}, gap {p.gap:.4f} ({front_values}){tested}")
        if r.evaluation is not None:
            failed |= bool(r.evaluation.failed)
            for reason in r.evaluation.failed.values():
                print(f"  failed: {reason}", file=sys.stderr)
        if r.test:
            print(
                f"  test folds ({int(r.test.get('folds', 0))}): UAR {r.test['uar_mean']:.4f} +- {r.test['uar_std']:.4f}, "
                f"WAR {r.test['war_mean']:.4f} +- {r.test['war_std']:.4f}"
            )
    print(f"trials: optuna-dashboard {storage}    runs: nox -s ui (nested under each 'search' run)")
    return 1 if failed else 0


def _has_search_table(study) -> bool:
    import tomllib

    return study.path is None or "search" in tomllib.loads(study.path.read_text(encoding="utf-8"))


def cmd_search_cost(args: argparse.Namespace) -> int:
    from benchmark.search import measure_trial_cost
    from benchmark.studies import load_study

    study = load_study(args.study, args.overrides)
    figures = measure_trial_cost(study, repeats=args.repeats, finetune=args.finetune)
    print(f"{study.name}: seconds per trial ({figures['trial']}), median of {args.repeats}, on {figures['device']}")
    for mode, row in figures["modes"].items():
        ratio = row["seconds"] / figures["modes"]["cached"]["seconds"]
        print(f"  {mode:>10}: {row['seconds']:8.2f} s   x{ratio:.1f}   {row['what']}")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _study_reader(path: str, overrides: Sequence[str] = ()):
    """(study, tracker of its runs, tags for its parent run): what every report command starts from."""
    from benchmark.studies import load_study

    study = load_study(path, overrides)
    return (study, *_tracker_of(study))


def _tracker_of(study, create: bool = False):
    """(tracker of the study's runs, tags for its parent run); a missing store or experiment is an error, or
    with ``create`` is created."""
    from benchmark import provenance
    from benchmark.reports.common import NoRunsError
    from benchmark.tracking import Tracker, resolve_uri, store_exists

    uri = resolve_uri(study.tracking.uri)
    tracker = Tracker(uri, study.experiment_name) if create else Tracker.existing(uri, study.experiment_name)
    if tracker is None:
        shown = provenance.redact_uri(uri)
        where = (
            f"{shown} has no experiment {study.experiment_name!r}"
            if store_exists(uri)
            else f"there is no MLflow store at {shown} (tracking.uri, else MLFLOW_TRACKING_URI, else mlflow.db in "
            "the working directory)"
        )
        raise NoRunsError(f"study {study.name!r}: no finished runs: {where}; run `gemo-bench run STUDY` first")
    return tracker, {**provenance.tags(), "gemo.study": study.name}


def _report_options(study, tags: dict[str, str], args: argparse.Namespace) -> dict:
    """The keyword arguments every ``write_*_report`` takes: encoder order, parent-run tags, bootstrap."""
    return {"encoders": study.encoders.audio, "study_tags": tags, "n_boot": args.n_boot, "seed": args.boot_seed}


def _print_report(report) -> None:
    print(report.markdown.read_text())
    print("wrote " + ", ".join(str(p) for p in (report.markdown, report.csv, *report.figures)))
    print(f"page: {report.page}")


def cmd_report_table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports.table import write_table_report

    study, tracker, tags = _study_reader(args.study, args.overrides)
    folds = len(study.protocol.folds)
    report = write_table_report(tracker, study.name, study.encoders.audio, folds, Path(args.out), tags, study.paper)
    print(report.markdown.read_text())
    print(f"wrote {report.markdown}, {report.csv}, {report.latex}, {report.png}")
    return 0


def _add_boot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-boot", type=POSITIVE, default=2000, help="bootstrap resamplings of speakers (default 2000)")
    p.add_argument("--boot-seed", type=int, default=0, help="bootstrap generator seed (default 0)")


def cmd_report_more(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports import ablation, agreement, bias, calibration, claims, cross_corpus, curves

    study, tracker, tags = _study_reader(args.study, args.overrides)
    write = {
        "claims": claims.write_claims_report,
        "ablation": ablation.write_ablation_report,
        "bias": bias.write_bias_report,
        "agreement": agreement.write_agreement_report,
        "calibration": calibration.write_calibration_report,
        "curves": curves.write_curves_report,
        "cross-corpus": cross_corpus.write_cross_corpus_report,
    }[args.kind]
    options = _report_options(study, tags, args)
    if args.kind == "claims":
        options |= {"paper": study.paper, "searched": _searched_alphas(study)}
    _print_report(write(tracker, study.name, Path(args.out), **options))
    return 0


def _searched_alphas(study) -> list:
    """The study's Optuna searches of alpha_e for SL-GEmo-CLAP, for the claims report's C3.

    Only a study with a ``[search]`` table opens its Optuna storage (and loads Optuna): other reports stay light.
    """
    from benchmark.reports.claims import SearchedAlpha
    from benchmark.studies import SearchSpec

    if study.search == SearchSpec():
        return []
    from benchmark.search_store import searched_alphas

    return [SearchedAlpha(encoder, tuple(trials)) for encoder, trials in searched_alphas(study).items() if trials]


def cmd_report_embeddings(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports.embeddings import write_embeddings_report

    study, tracker, tags = _study_reader(args.study, args.overrides)
    report = write_embeddings_report(
        tracker,
        study.name,
        Path(args.out),
        encoders=study.encoders.audio,
        study_tags=tags,
        seed=args.seed,
        fold=args.fold,
        projection=args.projection,
    )
    _print_report(report)
    return 0


def cmd_report_search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports.searches import begun_or_raise, write_search_report
    from benchmark.studies import load_study

    study = load_study(args.study, args.overrides)
    begun_or_raise(study)
    # the trials live in the Optuna storage; a store elsewhere than the search's gets the report's run
    tracker, tags = _tracker_of(study, create=True)
    report = write_search_report(tracker, study, Path(args.out), study_tags=tags)
    _print_report(report)
    return 0


def _control_path(study_path: str, given: str | None = None):
    """The mechanism study's control twin: ``given``, or ``<study>_control.toml`` beside the study file."""
    from pathlib import Path

    return Path(given or Path(study_path).with_name(Path(study_path).stem + "_control.toml"))


def cmd_report_all(args: argparse.Namespace) -> int:
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
        searches,
    )
    from benchmark.reports.table import write_table_report
    from benchmark.studies import load_study

    study, tracker, tags = _study_reader(args.study)
    common = _report_options(study, tags, args)
    out = Path(args.out)
    folds = len(study.protocol.folds)
    table = write_table_report(tracker, study.name, study.encoders.audio, folds, out, tags, study.paper)
    written = [table.markdown]
    searched = _searched_alphas(study)
    written.append(
        claims.write_claims_report(tracker, study.name, out, **common, paper=study.paper, searched=searched).markdown
    )
    written.append(ablation.write_ablation_report(tracker, study.name, out, **common).markdown)
    written.append(bias.write_bias_report(tracker, study.name, out, **common).markdown)
    try:
        written.append(agreement.write_agreement_report(tracker, study.name, out, **common).markdown)
    except agreement.NoAgreementError as exc:
        print(f"agreement: skipped ({exc})")
    try:
        written.append(embeddings.write_embeddings_report(tracker, study.name, out, **common).markdown)
    except embeddings.NoEmbeddingsError as exc:
        print(f"embeddings: skipped ({exc})")
    try:
        written.append(calibration.write_calibration_report(tracker, study.name, out, **common).markdown)
    except calibration.NoCalibrationError as exc:
        print(f"calibration: skipped ({exc})")
    try:
        written.append(curves.write_curves_report(tracker, study.name, out, **common).markdown)
    except curves.NoCurvesError as exc:
        print(f"curves: skipped ({exc})")
    try:
        written.append(cross_corpus.write_cross_corpus_report(tracker, study.name, out, **common).markdown)
    except cross_corpus.NoCrossCorpusError as exc:
        print(f"cross-corpus: skipped ({exc})")
    try:
        written.append(searches.write_search_report(tracker, study, out, study_tags=tags).markdown)
    except searches.NoSearchError as exc:
        print(f"search: skipped ({exc})")
    twin = _control_path(args.study)
    if twin.exists():
        control = load_study(twin)
        mechanism.check_pair(study, control)
        ctrl_tracker, _ = _tracker_of(control)
        report = mechanism.write_mechanism_report(tracker, ctrl_tracker, study.name, control.name, out, **common)
        written.append(report.markdown)
    page = out / study.name / "index.html"  # rebuilt by each report after the table, so it holds them all
    print("wrote " + ", ".join(str(p) for p in written))
    print(f"page: {page}")
    return 0


def cmd_report_mechanism(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports import mechanism
    from benchmark.studies import load_study

    study, control = load_study(args.study), load_study(_control_path(args.study, args.control))
    mechanism.check_pair(study, control)  # before either store is opened: a wrong pair writes nothing
    (tracker, tags), (ctrl_tracker, _) = _tracker_of(study), _tracker_of(control)
    options = _report_options(study, tags, args)
    _print_report(
        mechanism.write_mechanism_report(tracker, ctrl_tracker, study.name, control.name, Path(args.out), **options)
    )
    return 0


def cmd_report_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.reports import compare
    from benchmark.studies import load_study
    from benchmark.tracking import resolve_uri

    study, other = load_study(args.study), load_study(args.other)
    same_store = resolve_uri(study.tracking.uri) == resolve_uri(other.tracking.uri)
    if same_store and study.experiment_name == other.experiment_name:  # before either store is opened
        raise compare.ComparePairError(
            f"{args.study} / {args.other}: both log to experiment {study.experiment_name!r} of the same store; "
            "point one at another store (tracking.uri) or experiment"
        )
    (tracker, tags), (other_tracker, _) = _tracker_of(study), _tracker_of(other)
    options = _report_options(study, tags, args)
    _print_report(
        compare.write_compare_report(tracker, other_tracker, study.name, other.name, Path(args.out), **options)
    )
    return 0


def cmd_regression(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from benchmark import provenance, regression
    from benchmark.runner import run_study
    from benchmark.studies import load_study
    from benchmark.tracking import Tracker

    with tempfile.TemporaryDirectory(prefix="gemo-regression-") as tmp:
        store = Path(args.store or tmp).resolve()
        store.mkdir(parents=True, exist_ok=True)
        study = load_study(args.study, [*args.overrides, f"tracking.uri=sqlite:///{store / 'mlflow.db'}"])
        baseline_path = Path(args.baseline or f"reports/baselines/{study.name}.json")
        baseline = None if args.update_baseline else regression.load_baseline(baseline_path)
        summary = run_study(study, progress=not args.no_progress)
        if summary.failed:
            for reason in summary.failed.values():
                print(f"failed: {reason}", file=sys.stderr)
            return 1
        current = regression.results_from_runs(
            Tracker(study.tracking.uri, study.experiment_name).runs("cell", "FINISHED")
        )
    if args.update_baseline:
        tolerance = (
            regression.DEFAULT_TOLERANCE
            if args.tolerance is None
            else dict.fromkeys(regression.METRICS, args.tolerance)
        )
        regression.write_baseline(baseline_path, study.name, current, tolerance)
        comparison = regression.compare(current, current, tolerance)
        print(regression.format_table(comparison, only_failures=False))
        print(f"wrote {baseline_path} ({len(current)} cells)")
        return 0
    comparison = regression.compare(current, regression.baseline_results(baseline), baseline["tolerance"])
    moved = {
        k: (baseline["versions"].get(k), v)
        for k, v in provenance.versions().items()
        if baseline.get("versions", {}).get(k) not in (None, v)
    }
    if moved:
        print(
            "note: the baseline was made with other versions: "
            + ", ".join(f"{k} {old} (now {new})" for k, (old, new) in moved.items())
        )
    if comparison.ok:
        print(f"{study.name}: all {len(current)} cells within tolerance of {baseline_path}")
        return 0
    print(
        f"{study.name}: {len(comparison.failures)} of {len(comparison.rows)} figures moved beyond tolerance "
        f"(baseline {baseline_path}, made at {baseline.get('git_sha', '?')}):"
    )
    print(regression.format_table(comparison))
    print("If the change is intended: gemo-bench regression STUDY --update-baseline, and commit the baseline.")
    return 1


def cmd_bench_throughput(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.config import TrainConfig
    from benchmark.perf.throughput import ThroughputConfig, format_report, run_throughput
    from benchmark.studies import load_study
    from benchmark.train import resolve_device

    cuda = resolve_device(args.device).type == "cuda"
    study_path = args.study or "studies/paper_table.toml"
    study = load_study(study_path) if args.study or Path(study_path).is_file() else None
    crop = args.max_seconds or (study.train.get("max_seconds") if study else None) or TrainConfig.max_seconds
    audio = args.audio_encoder or ("wavlm-base-plus" if cuda else "tiny-wavlm")
    text = args.text_encoder or ("roberta-base" if cuda else "tiny-roberta")
    if not cuda and args.audio_encoder is None:
        print("no CUDA device: measuring the tiny presets (pass --audio-encoder/--text-encoder for others)")
    train = TrainConfig(
        batch_size=args.batch_size,
        batch_seconds=args.batch_seconds,
        max_seconds=crop,
        device=args.device,
        precision=args.precision,
        attention=args.attention,
        compile=args.compile,
        grad_checkpointing=args.grad_checkpointing,
        deterministic=args.deterministic,
        num_workers=(4 if cuda else 0) if args.num_workers is None else args.num_workers,
    )
    alpha = 1.0 if args.variant == "emo-clap" else (0.9 if args.alpha is None else args.alpha)
    cfg = ThroughputConfig(
        audio_encoder=audio,
        text_encoder=text,
        variant=args.variant,
        alpha=alpha,
        ml_mode=args.ml_mode,
        utterances=args.utterances or (1024 if cuda else 96),
        warmup=args.warmup,
        naive_batch=args.naive_batch,
        naive=args.naive,
        train=train,
        proj_dim=args.proj_dim,
        seed=args.seed,
        peak_tflops=args.peak_tflops,
    )
    result = run_throughput(cfg, study)
    print(format_report(result))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")
    return 0


def cmd_bench_throughput_matrix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from benchmark import provenance
    from benchmark.perf.matrix import default_matrix, device_tag, run_matrix, select
    from benchmark.studies import load_study
    from benchmark.train import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    entries = select(default_matrix(cuda), args.only)
    if args.list:
        for e in entries:
            print(f"{e.name:26} {' '.join(e.args()):60} {e.note}")
        return 0
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    study_path = args.study or f"studies/{'paper_table' if cuda else 'paper_table_embedded'}.toml"
    study = load_study(study_path)
    name = provenance.device_name(str(device))
    tag = args.tag or device_tag(name)
    common = ["--device", args.device, "--study", study_path]
    for flag, value in (("--utterances", args.utterances), ("--max-seconds", args.max_seconds)):
        if value is not None:
            common += [flag, str(value)]
    if args.warmup is not None:
        common += ["--warmup", str(args.warmup)]
    out = Path(args.out)
    print(f"{len(entries)} throughput runs on {name}; logs in {out / 'logs'}")
    bar = tqdm(total=len(entries), desc="throughput matrix", unit="run")

    def done(o) -> None:
        if o.status == "ok":
            suite, speedup = o.result["suite"], o.result["speedup"]
            figure = f"{suite['audio_s_per_s']:,.1f} audio-s/s" + (
                f", {speedup:.2f}x the naive loop" if speedup else ""
            )
        else:
            figure = f"{o.status}{': ' + o.error if o.error else ''}"
        bar.write(f"{o.entry.name}: {figure} ({o.seconds:.0f} s)")
        bar.update()

    budget = None if args.budget_minutes is None else 60 * args.budget_minutes
    outcomes = run_matrix(entries, out, tag, common, budget_seconds=budget, study=study, device=name, on_done=done)
    bar.close()
    summary = out / f"throughput_{tag}_matrix.md"
    print(summary.read_text())
    print(f"wrote {summary} and {summary.with_suffix('.json')}")
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
