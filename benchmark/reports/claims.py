"""The paper's claims, checked one by one against a study's runs, each with a verdict.

PAPER.md lists what could be read of the paper's results. Each becomes a claim:

- **C1, the reported figures**: by default the abstract's one figure, WavLM SL-GEmo-CLAP at WAR 83.16 % and
  UAR 81.43 % on IEMOCAP; a study's ``[paper]`` table can give the paper's whole table
  (:class:`benchmark.studies.Paper`). Each encoder and variant with a reported figure has its chosen
  configuration (see *Choosing* below) compared with it: a 95 % Student-t interval of its mean over folds,
  and a one-sample t-test. *Consistent* when both figures lie inside the intervals; *below* or *above* the
  paper otherwise.
- **C2, the direction**: both GEmo-CLAP variants beat Emo-CLAP for every pre-trained encoder tried. For each
  encoder and gender-aware variant, its chosen configuration against the chosen Emo-CLAP configuration, on
  WAR and UAR, with the ablation report's tests: a paired t-test over folds and a paired speaker bootstrap,
  both needed for *significant*. *Supported*: both metrics significantly better. *Direction only*: both
  better, not both significantly. *Contradicted*: either significantly worse. *Not supported*: otherwise.
  A difference that is not significant comes with the smallest true difference the fold test would detect
  with 80 % power (:func:`benchmark.reports.stats.paired_mde`): a null result rules out no smaller effect.
- **C3, the weight**: a third-party reimplementation found α_e = 0.8–0.9 best for SL-GEmo-CLAP
  (unverified). It needs two or more values of α_e per encoder. *Consistent* when the chosen α_e lies in
  0.8–0.9, or when the best configuration in that range is not significantly worse than the chosen one on
  test UAR. *Not supported* when it is. A study's Optuna search of α_e for SL-GEmo-CLAP is evidence too
  (:class:`SearchedAlpha`): *consistent* when its best trial's α_e lies in 0.8–0.9, or a complete trial in
  that range comes within 1 point of the best validation objective (the search report's near-best region);
  *not supported* when trials in range all fall further behind. This is validation evidence only, and a
  maximum over noisy trials.

**Choosing.** The paper's α_e is unknown, as is any other value a study sweeps. So where a study holds several
configurations of one encoder and variant, the one checked is the one with the best mean validation UAR at
the chosen epochs. It is never the best on test, which would flatter every claim. Runs without a logged
validation history fall back to test UAR, and the report names them.

**Scope.** Only IEMOCAP, with every dialog and pre-trained checkpoints, reproduces the paper. On other data,
or with random-init weights, C1 is *not testable*: its figures are shown, not judged. C2 and C3 then check
the same directions on that data, and the report labels them so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.reports import stats
from benchmark.reports.ablation import ALPHA_LEVEL, METRICS, Comparison, RunConfusions, compare, read_study
from benchmark.reports.common import (
    Cells,
    ReportFolder,
    error_bars,
    header,
    header_lines,
    md_table,
    pct,
    pval,
    signed,
    suptitle,
)
from benchmark.reports.curves import epoch_frame, summarize_selection
from benchmark.reports.plots import plt
from benchmark.studies import Paper
from benchmark.tracking import Tracker

PAPER_FOLDS = 5  # leave-one-session-out over IEMOCAP's 5 sessions
ALPHA_RANGE = (0.8, 0.9)
POWER = 0.8
NEAR_BEST = 0.01  # the search report's near-best region (reports.searches.NEAR_BEST; that module loads Optuna)
GENDER_AWARE = ("sl-gemo-clap", "ml-gemo-clap")
NOT_TESTABLE = "not testable"


def claims(paper: Paper) -> dict[str, tuple[str, str]]:
    """Each claim as stated, and its source."""
    if paper.is_default:
        f = paper.figure("wavlm", "sl-gemo-clap")
        c1 = (f"WavLM SL-GEmo-CLAP reaches WAR {f['war']:.2f} % and UAR {f['uar']:.2f} % on IEMOCAP", "the abstract")
    else:
        n = len(paper.results)
        c1 = (f"the paper's {n} reported figure{'s' * (n != 1)} on IEMOCAP (WAR and UAR)", paper.source)
    return {
        "C1": c1,
        "C2": ("both GEmo-CLAP variants beat Emo-CLAP for every pre-trained encoder tried", "the paper's text"),
        "C3": (
            f"α_e = {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]} is best for SL-GEmo-CLAP",
            "a third-party reimplementation (unverified)",
        ),
    }


@dataclass(frozen=True)
class Scope:
    """Whether the study's runs are the paper's setting, and if not, why not."""

    reasons: tuple[str, ...]  # what differs from the paper's setting; empty for a reproduction
    notes: tuple[str, ...]  # differences that leave the claims testable (another number of folds)

    @property
    def reproduction(self) -> bool:
        return not self.reasons


def scope_of(cells: Cells) -> Scope:
    f = cells.frame
    reasons = []
    sources = sorted(set(f["data_source"]))
    if sources != ["iemocap"]:
        reasons.append("data: " + " + ".join(sources) + ", not IEMOCAP")
    other = sorted(w for w in set(f["weights"]) if not str(w).startswith("pretrained"))
    if other:
        reasons.append("weights: " + "; ".join(other))
    subsets = sorted(set(f["data_subset"]))
    if subsets != ["all"]:
        reasons.append("dialogs: " + " + ".join(subsets) + " only")
    notes = []
    folds = f["fold"].nunique()
    if folds != PAPER_FOLDS:
        notes.append(f"{folds} fold(s); the paper's protocol has {PAPER_FOLDS}")
    return Scope(tuple(reasons), tuple(notes))


# ---- choosing a configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """Per (encoder, variant): the configuration checked, and which configurations it was chosen from."""

    chosen: Mapping[tuple[str, str], str]
    candidates: Mapping[tuple[str, str], tuple[str, ...]]
    score: pd.Series  # per configuration: mean validation UAR at the chosen epochs (test UAR where unlogged)
    by_test: frozenset[str]  # configurations scored by test UAR, for want of a validation history


def choose(cells: Cells, tracker: Tracker) -> Choice:
    """The best configuration of each encoder and variant by mean validation UAR over folds."""
    histories = tracker.read_histories(cells.runs.values(), ["val_uar"])
    epochs = epoch_frame(cells, histories)
    val = pd.Series(dtype=float)
    if epochs["val_uar"].notna().any():
        val = summarize_selection(cells, epochs).set_index("config")["val_uar_best_mean"]
    test = cells.summary(["test_uar"]).set_index("config")["test_uar_mean"]
    val = val.reindex(test.index)
    score = val.where(val.notna(), test)
    by_test = frozenset(score.index[val.isna()])
    chosen, candidates = {}, {}
    for (encoder, variant), g in cells.configs().groupby(["encoder", "variant"], sort=False):
        names = tuple(g["config"])
        s = score.reindex(names)
        # ties (and all-NaN) go to the first in report order: the lowest alpha, then the study's order
        chosen[(encoder, variant)] = names[int(np.nanargmax(s.to_numpy()))] if s.notna().any() else names[0]
        candidates[(encoder, variant)] = names
    return Choice(chosen, candidates, score, by_test)


# ---- C1: the reported figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureCheck:
    """One encoder and variant's chosen configuration against the paper's figure on one metric."""

    encoder: str
    variant: str
    config: str
    metric: str
    paper: float  # fraction
    values: tuple[float, ...]  # per fold, seeds averaged
    low: float
    high: float
    p: float | None  # one-sample t-test of the fold values against the paper's figure

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def position(self) -> str:
        """``inside``, ``below`` or ``above`` the interval; ``undetermined`` without one."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "undetermined"
        if self.high < self.paper:
            return "below"
        if self.low > self.paper:
            return "above"
        return "inside"


def figure_checks(cells: Cells, choice: Choice, paper: Paper) -> list[FigureCheck]:
    out = []
    for (encoder, variant), config in choice.chosen.items():
        reported = paper.figure(encoder, variant)
        if reported is None:
            continue
        for metric in METRICS:
            values = cells.fold_values(config, f"test_{metric}").to_numpy(dtype=float)
            target = reported[metric] / 100
            low, high = stats.t_interval(values)
            p = None
            if len(values) >= 2 and np.ptp(values) > 0:
                p = float(sps.ttest_1samp(values, target).pvalue)
            out.append(FigureCheck(encoder, variant, config, metric, target, tuple(values), low, high, p))
    return out


def figure_verdict(checks: Sequence[FigureCheck], scope: Scope) -> str:
    """One encoder and variant's C1 verdict from its WAR and UAR checks."""
    if not scope.reproduction:
        return NOT_TESTABLE
    where = {c.position for c in checks}
    if "undetermined" in where:
        return f"{NOT_TESTABLE} (one fold)"
    if where == {"inside"}:
        return "consistent"
    if where <= {"inside", "below"}:
        return "below the paper"
    if where <= {"inside", "above"}:
        return "above the paper"
    return "mixed"


# ---- C2: the direction ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionCheck:
    """One encoder's chosen gender-aware configuration against its chosen Emo-CLAP configuration."""

    encoder: str
    variant: str
    config: str
    baseline: str
    comparisons: tuple[Comparison, ...]  # one per metric, in METRICS order
    mde: tuple[float, ...]  # per metric: the difference detectable with 80 % power over these folds

    @property
    def verdict(self) -> str:
        cs = self.comparisons
        if any(c.test.n < 2 for c in cs):
            return f"{NOT_TESTABLE} (fewer than 2 matched folds)"
        if any(c.significant and c.test.mean_diff < 0 for c in cs):
            return "contradicted"
        if all(c.significant and c.test.mean_diff > 0 for c in cs):
            return "supported"
        if all(c.test.mean_diff > 0 for c in cs):
            return "direction only"
        return "not supported"


def direction_checks(
    cells: Cells, confusions: RunConfusions | None, choice: Choice, *, n_boot: int, seed: int
) -> list[DirectionCheck]:
    out = []
    for (encoder, variant), config in choice.chosen.items():
        baseline = choice.chosen.get((encoder, "emo-clap"))
        if variant not in GENDER_AWARE or baseline is None:
            continue
        comps = [compare(cells, confusions, config, baseline, m, n_boot=n_boot, seed=seed) for m in METRICS]
        mde = tuple(stats.paired_mde(c.test.sd, c.test.n, power=POWER) for c in comps)
        out.append(DirectionCheck(encoder, variant, config, baseline, tuple(comps), mde))
    return out


def direction_verdict(checks: Sequence[DirectionCheck]) -> str:
    if not checks:
        return NOT_TESTABLE
    verdicts = [c.verdict for c in checks]
    n = len(verdicts)
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    tally = ", ".join(f"{k} {v}" for v, k in counts.items())
    if any(v.startswith(NOT_TESTABLE) for v in verdicts) and len(counts) == 1:
        return NOT_TESTABLE
    if "contradicted" in counts:
        return f"contradicted ({tally}, of {n})"
    if counts.get("supported") == n:
        return f"supported ({n} of {n})"
    if counts.get("supported", 0) + counts.get("direction only", 0) == n:
        return f"direction only ({tally}, of {n})"
    return f"not supported ({tally}, of {n})"


# ---- C3: the weight -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlphaCheck:
    """One encoder's SL-GEmo-CLAP configurations: the chosen α_e, and the best in the claimed range."""

    encoder: str
    alphas: tuple[float, ...]
    chosen: str
    chosen_alpha: float
    in_range: str | None  # the best configuration (by the same score) with α_e in ALPHA_RANGE
    comparison: Comparison | None  # in_range − chosen on test UAR; None when they are the same

    @property
    def verdict(self) -> str:
        if len(self.alphas) < 2:
            return f"{NOT_TESTABLE} (one α_e)"
        if self.in_range is None:
            return f"{NOT_TESTABLE} (no α_e in {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]})"
        if self.comparison is None:
            return "consistent"
        c = self.comparison
        if c.significant and c.test.mean_diff < 0:
            return "not supported"
        return "consistent within noise"


def alpha_checks(
    cells: Cells, confusions: RunConfusions | None, choice: Choice, *, n_boot: int, seed: int
) -> list[AlphaCheck]:
    configs = cells.configs().set_index("config")
    out = []
    for (encoder, variant), names in choice.candidates.items():
        if variant != "sl-gemo-clap":
            continue
        alphas = tuple(sorted({float(configs.loc[n, "alpha"]) for n in names}))
        chosen = choice.chosen[(encoder, variant)]
        inside = [n for n in names if ALPHA_RANGE[0] - 1e-9 <= float(configs.loc[n, "alpha"]) <= ALPHA_RANGE[1] + 1e-9]
        best_in = None
        if inside:
            s = choice.score.reindex(inside)
            best_in = inside[int(np.nanargmax(s.to_numpy()))] if s.notna().any() else inside[0]
        comp = None
        if best_in is not None and best_in != chosen and len(alphas) > 1:
            comp = compare(cells, confusions, best_in, chosen, "uar", n_boot=n_boot, seed=seed)
        out.append(AlphaCheck(encoder, alphas, chosen, float(configs.loc[chosen, "alpha"]), best_in, comp))
    return out


@dataclass(frozen=True)
class SearchedAlpha:
    """One encoder's Optuna search of SL-GEmo-CLAP: the α_e and validation objective of each complete trial."""

    encoder: str
    trials: tuple[tuple[float, float], ...]  # (alpha, objective), in trial order

    @property
    def best(self) -> tuple[float, float]:
        """(alpha, objective) of the best trial, the earliest of equals."""
        return max(self.trials, key=lambda t: t[1])

    @property
    def in_range(self) -> tuple[tuple[float, float], ...]:
        return tuple(t for t in self.trials if ALPHA_RANGE[0] - 1e-9 <= t[0] <= ALPHA_RANGE[1] + 1e-9)

    @property
    def gap(self) -> float:
        """How far the best trial in range falls below the best trial, in validation UAR (NaN: none in range)."""
        return self.best[1] - max(v for _, v in self.in_range) if self.in_range else math.nan

    @property
    def verdict(self) -> str:
        if len(self.trials) < 2:
            return f"{NOT_TESTABLE} (fewer than 2 complete trials)"
        if not self.in_range:
            return f"{NOT_TESTABLE} (no trial with α_e in {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]})"
        if ALPHA_RANGE[0] - 1e-9 <= self.best[0] <= ALPHA_RANGE[1] + 1e-9:
            return "consistent"
        if self.gap <= NEAR_BEST + 1e-12:
            return "consistent within noise"
        return "not supported"


def alpha_verdict(checks: Sequence[AlphaCheck | SearchedAlpha]) -> str:
    testable = [c for c in checks if not c.verdict.startswith(NOT_TESTABLE)]
    if not testable:
        reasons = sorted({c.verdict.removeprefix(NOT_TESTABLE).strip(" ()") for c in checks})
        return NOT_TESTABLE + (f" ({'; '.join(reasons)})" if reasons else " (no SL-GEmo-CLAP runs)")
    if any(c.verdict == "not supported" for c in testable):
        bad = sum(c.verdict == "not supported" for c in testable)
        return f"not supported ({bad} of {len(testable)} checks)"
    exact, n = sum(c.verdict == "consistent" for c in testable), len(testable)
    rest = "" if exact == n else f"; {n - exact} within noise of it"
    return f"consistent ({exact} of {n} checks chose α_e in range{rest})"


# ---- the report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimsReport:
    folder: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    page: Path
    verdicts: Mapping[str, str]  # "C1" -> verdict
    scope: Scope
    figure_checks: tuple[FigureCheck, ...]
    direction_checks: tuple[DirectionCheck, ...]
    alpha_checks: tuple[AlphaCheck, ...]
    searched: tuple[SearchedAlpha, ...] = ()


def by_cell(checks: Sequence[FigureCheck]) -> dict[str, list[FigureCheck]]:
    """C1's checks per configuration (one encoder and variant), in report order."""
    out: dict[str, list[FigureCheck]] = {}
    for c in checks:
        out.setdefault(c.config, []).append(c)
    return out


def c1_verdict(checks: Sequence[FigureCheck], scope: Scope, labels: Mapping[str, str]) -> str:
    if not checks:
        return f"{NOT_TESTABLE} (no runs of an encoder and variant the paper reports)"
    if not scope.reproduction:
        return f"{NOT_TESTABLE} (not the paper's setting)"
    verdicts = {config: figure_verdict(cs, scope) for config, cs in by_cell(checks).items()}
    if len(verdicts) == 1:
        ((config, verdict),) = verdicts.items()
        return f"{verdict} ({checks[0].encoder} {labels[config]})"
    tally = {v: list(verdicts.values()).count(v) for v in dict.fromkeys(verdicts.values())}
    return ", ".join(f"{v} ({k} of {len(verdicts)})" for v, k in tally.items())


def markdown(
    head: Mapping[str, str],
    scope: Scope,
    verdicts: Mapping[str, str],
    labels: Mapping[str, str],
    choice: Choice,
    c1: Sequence[FigureCheck],
    c2: Sequence[DirectionCheck],
    c3: Sequence[AlphaCheck],
    n_boot: int,
    seed: int,
    figures: Sequence[str],
    paper: Paper,
    searched: Sequence[SearchedAlpha] = (),
) -> str:
    lines = header_lines(head)
    if scope.reproduction:
        lines += ["**Scope: a reproduction.** IEMOCAP, every dialog, pre-trained checkpoints."]
    else:
        lines += [
            "**Scope: not the paper's setting** ("
            + "; ".join(scope.reasons)
            + "). C1 is not judged: its figures are shown for completeness. C2 and C3 check the same directions "
            "on this data, which says nothing about the paper's numbers."
        ]
    if scope.notes:
        lines[-1] += " Note: " + "; ".join(scope.notes) + "."
    lines += [""]
    lines += md_table(
        ["claim", "as stated", "source", "verdict"],
        [(k, text, source, f"**{verdicts[k]}**") for k, (text, source) in claims(paper).items()],
    )
    lines += [
        "Where a study holds several configurations of one encoder and variant (values of α_e, temperatures), "
        "each claim is checked on the one with the best mean validation UAR at the chosen epochs, never the "
        "best on test. The paper's own α_e is unknown."
    ]
    if choice.by_test:
        lines[-1] += (
            " No validation history was logged for "
            + ", ".join(f"**{labels.get(c, c)}**" for c in sorted(choice.by_test))
            + ": they are scored by test UAR, which flatters them."
        )
    lines += [""]

    lines += ["## C1: the reported figures", ""]
    if c1:
        lines += [
            f"The paper's figures: {paper.source}. "
            "Ours: mean over folds (seeds averaged within a fold), in %, with a 95 % Student-t interval. *p*: "
            "one-sample t-test of the fold values against the paper's figure (`scipy.stats.ttest_1samp`). "
            "*Consistent* means the paper's figure is not ruled out by an interval this wide, not that it is "
            "confirmed.",
            "",
        ]
        rows = []
        for config, cs in by_cell(c1).items():
            row: list[object] = [cs[0].encoder, labels[config], len(cs[0].values)]
            for c in cs:
                row += [
                    f"{pct(c.mean)} [{pct(c.low)}, {pct(c.high)}]",
                    pct(c.paper),
                    signed(c.mean - c.paper),
                    pval(c.p),
                ]
            rows.append([*row, f"**{figure_verdict(cs, scope)}**"])
        cols = ["encoder", "configuration", "folds"]
        for m in METRICS:
            u = m.upper()
            cols += [f"{u} ours [95 % CI]", f"{u} paper", f"Δ {u}", f"p ({u})"]
        lines += md_table([*cols, "verdict"], rows)
    else:
        reported = ", ".join(f"`{k}`" for k in paper.results)
        lines += [f"No runs of an encoder and variant with a reported figure ({reported}) in this study.", ""]

    lines += ["## C2: the gender-aware variants beat Emo-CLAP", ""]
    if c2:
        lines += [
            "Δ: the variant minus Emo-CLAP in percentage points, over matched folds. *p*: paired t-test. "
            f"*Bootstrap*: the pooled difference with a 95 % interval from {n_boot} resamplings of speakers "
            f"within gender (seed {seed}). Significant: p < {ALPHA_LEVEL} and an interval that excludes 0. "
            f"*Detectable*: the smallest true difference the paired t-test detects with {100 * POWER:.0f} % power over "
            "these folds, at the observed spread of the differences.",
            "",
        ]
        rows = []
        for d in c2:
            row = [d.encoder, labels[d.config], labels[d.baseline]]
            for c, mde in zip(d.comparisons, d.mde, strict=True):
                b = c.boot
                boot = "–" if b is None else f"{signed(b.estimate)} [{signed(b.low)}, {signed(b.high)}]"
                row += [
                    signed(c.test.mean_diff),
                    pval(c.test.p_t),
                    boot,
                    "–" if not math.isfinite(mde) else f"{100 * mde:.2f}",
                ]
            rows.append([*row, f"**{d.verdict}**"])
        cols = ["encoder", "variant", "vs Emo-CLAP"]
        for m in METRICS:
            u = m.upper()
            cols += [f"Δ {u}", f"p ({u})", f"bootstrap Δ {u} [95 % CI]", f"detectable Δ {u}"]
        lines += md_table([*cols, "verdict"], rows)
        nulls = [mde for d in c2 for c, mde in zip(d.comparisons, d.mde, strict=True) if not c.significant]
        nulls = [m for m in nulls if math.isfinite(m)]
        if nulls:
            lines += [
                f"{len(nulls)} of {2 * len(c2)} differences are not significant. Their detectable differences run "
                f"from {100 * min(nulls):.2f} to {100 * max(nulls):.2f} points: with these folds, a true difference "
                "below that size is missed more than one time in five, so these results do not rule it out.",
                "",
            ]
    else:
        lines += ["No encoder has both Emo-CLAP and a gender-aware variant: nothing to compare.", ""]

    lines += [f"## C3: α_e = {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]} for SL-GEmo-CLAP", ""]
    if c3:
        lines += [
            "The chosen α_e (best mean validation UAR) and the best configuration in the claimed range; Δ: its "
            "test UAR minus the chosen one's, over matched folds, with the paired t-test and bootstrap as in C2.",
            "",
        ]
        rows = []
        for a in c3:
            c = a.comparison
            rows.append(
                [
                    a.encoder,
                    ", ".join(f"{x:g}" for x in a.alphas),
                    labels[a.chosen],
                    labels[a.in_range] if a.in_range else "–",
                    signed(c.test.mean_diff) if c else "–",
                    pval(c.test.p_t) if c else "–",
                    f"**{a.verdict}**",
                ]
            )
        lines += md_table(
            ["encoder", "α_e values", "chosen", f"best in {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]}", "Δ UAR", "p", "verdict"],
            rows,
        )
    elif not searched:
        lines += ["No SL-GEmo-CLAP runs in this study.", ""]
    if searched:
        lines += [
            "From the study's Optuna search of α_e (validation UAR over the search folds, each trial's objective): "
            "the best complete trial, and the best with α_e in the claimed range. *Gap*: how far that one falls "
            f"below the best, in points; within {100 * NEAR_BEST:g} point (the search report's near-best region) "
            "counts as consistent. The best of many trials is partly luck: validation evidence only.",
            "",
        ]
        rows = []
        for a in searched:
            best = a.best if a.trials else (math.nan, math.nan)
            top_in = max(a.in_range, key=lambda t: t[1]) if a.in_range else None
            rows.append(
                [
                    a.encoder,
                    len(a.trials),
                    f"{best[0]:.3g} ({pct(best[1])})" if a.trials else "–",
                    f"{top_in[0]:.3g} ({pct(top_in[1])})" if top_in else "–",
                    f"{100 * a.gap:.2f}" if math.isfinite(a.gap) else "–",
                    f"**{a.verdict}**",
                ]
            )
        lines += md_table(
            [
                "encoder",
                "complete trials",
                "best α_e (objective %)",
                f"best in {ALPHA_RANGE[0]}–{ALPHA_RANGE[1]} (objective %)",
                "gap",
                "verdict",
            ],
            rows,
        )
    lines += [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def claims_frame(
    c1: Sequence[FigureCheck],
    c2: Sequence[DirectionCheck],
    c3: Sequence[AlphaCheck],
    scope: Scope,
    labels,
    searched: Sequence[SearchedAlpha] = (),
) -> pd.DataFrame:
    """One row per check and metric: the figures behind every verdict (fractions, not percent)."""
    rows = []
    for c in c1:
        rows.append(
            {
                "claim": "C1",
                "encoder": c.encoder,
                "configuration": labels[c.config],
                "metric": c.metric,
                "ours": c.mean,
                "low": c.low,
                "high": c.high,
                "paper": c.paper,
                "diff": c.mean - c.paper,
                "folds": len(c.values),
                "p_t": c.p,
                "verdict": figure_verdict(by_cell(c1)[c.config], scope),
            }
        )
    for d in c2:
        for c, mde in zip(d.comparisons, d.mde, strict=True):
            rows.append(
                {
                    "claim": "C2",
                    "encoder": d.encoder,
                    "configuration": labels[d.config],
                    "baseline": labels[d.baseline],
                    "metric": c.metric,
                    "diff": c.test.mean_diff,
                    "folds": c.test.n,
                    "p_t": c.test.p_t,
                    "p_wilcoxon": c.test.p_w,
                    "boot_diff": c.boot.estimate if c.boot else None,
                    "low": c.boot.low if c.boot else None,
                    "high": c.boot.high if c.boot else None,
                    "significant": c.significant,
                    "detectable_diff": mde,
                    "verdict": d.verdict,
                }
            )
    for a in c3:
        c = a.comparison
        rows.append(
            {
                "claim": "C3",
                "encoder": a.encoder,
                "configuration": labels[a.chosen],
                "baseline": labels[a.in_range] if a.in_range else None,
                "metric": "uar",
                "alphas": " ".join(f"{x:g}" for x in a.alphas),
                "chosen_alpha": a.chosen_alpha,
                "diff": c.test.mean_diff if c else None,
                "folds": c.test.n if c else None,
                "p_t": c.test.p_t if c else None,
                "boot_diff": c.boot.estimate if c and c.boot else None,
                "low": c.boot.low if c and c.boot else None,
                "high": c.boot.high if c and c.boot else None,
                "significant": c.significant if c else None,
                "verdict": a.verdict,
            }
        )
    for a in searched:
        rows.append(
            {
                "claim": "C3",
                "encoder": a.encoder,
                "configuration": "Optuna search",
                "metric": "validation uar",
                "folds": None,
                "trials": len(a.trials),
                "chosen_alpha": a.best[0] if a.trials else None,
                "ours": a.best[1] if a.trials else None,
                "diff": -a.gap if math.isfinite(a.gap) else None,
                "verdict": a.verdict,
            }
        )
    return pd.DataFrame(rows)


def figure(c1: Sequence[FigureCheck], c2: Sequence[DirectionCheck], labels: Mapping[str, str], title: str):
    """C1: ours with 95 % intervals against the paper's figures; C2: Δ over Emo-CLAP with bootstrap intervals."""
    panels = [p for p, has in (("c1", c1), ("c2", c2)) if has]
    rows = max(len({c.config for c in c1}), len(c2), 1)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(5.5 * len(panels), 2.0 + 0.45 * rows),
        dpi=80,
        squeeze=False,
        layout="constrained",
        width_ratios=[1.0 if p == "c1" else 1.3 for p in panels],
    )
    colors = {"war": "tab:blue", "uar": "tab:orange"}
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "c1":
            configs = list(by_cell(c1))
            y = {config: i for i, config in enumerate(reversed(configs))}
            for k, c in enumerate(c1):
                off = 0.12 if c.metric == "war" else -0.12
                low, high = (c.low, c.high) if math.isfinite(c.low) else (c.mean, c.mean)
                ax.errorbar(
                    100 * c.mean,
                    y[c.config] + off,
                    xerr=100 * error_bars(c.mean, low, high),
                    fmt="o",
                    color=colors[c.metric],
                    capsize=3,
                    label=f"ours, {c.metric.upper()}" if k < len(METRICS) else None,
                )
                ax.plot(100 * c.paper, y[c.config] + off, marker="*", ms=11, color=colors[c.metric], mec="black")
            ax.set_yticks(list(y.values()), [f"{by_cell(c1)[c][0].encoder}: {labels[c]}" for c in y], fontsize=8)
            ax.set_ylim(-0.6, len(y) - 0.4)
            ax.set_xlabel("% (stars: the paper's figures)")
            ax.set_title("C1: ours (95 % t-interval over folds) vs the paper", fontsize=9)
        else:
            names = [f"{d.encoder}: {labels[d.config]}" for d in c2]
            for i, d in enumerate(c2):
                yi = len(c2) - 1 - i
                for c in d.comparisons:
                    off = 0.12 if c.metric == "war" else -0.12
                    b = c.boot
                    est, low, high = (
                        (b.estimate, b.low, b.high) if b else (c.test.mean_diff, c.test.mean_diff, c.test.mean_diff)
                    )
                    ax.errorbar(
                        100 * est,
                        yi + off,
                        xerr=100 * error_bars(est, low, high),
                        fmt="o",
                        color=colors[c.metric],
                        capsize=3,
                        label=f"Δ {c.metric.upper()}" if i == 0 else None,
                    )
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks(range(len(c2) - 1, -1, -1), names, fontsize=8)
            ax.set_ylim(-0.6, len(c2) - 0.4)
            ax.set_xlabel("percentage points over Emo-CLAP")
            ax.set_title("C2: gain over Emo-CLAP (95 % speaker bootstrap)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    suptitle(fig, title)
    return fig


def write_claims_report(
    tracker: Tracker,
    study_name: str,
    out_root: Path,
    *,
    encoders: Sequence[str] = (),
    study_tags: Mapping[str, str] | None = None,
    n_boot: int = stats.DEFAULT_BOOT,
    seed: int = stats.DEFAULT_SEED,
    paper: Paper | None = None,
    searched: Sequence[SearchedAlpha] = (),
) -> ClaimsReport:
    """Read the study's runs, predictions and validation histories (bulk); write ``claims.md/.csv/.png``.

    ``paper``: the reported figures C1 checks (the study's ``[paper]`` table; default: the abstract's).
    ``searched``: the study's Optuna searches of α_e for SL-GEmo-CLAP (see :func:`searched_alphas`), for C3.
    """
    paper = paper or Paper()
    cells, _, confusions = read_study(tracker, study_name, encoders)
    scope = scope_of(cells)
    choice = choose(cells, tracker)
    labels = dict(zip(cells.configs()["config"], cells.configs()["label"], strict=True))
    c1 = figure_checks(cells, choice, paper)
    c2 = direction_checks(cells, confusions, choice, n_boot=n_boot, seed=seed)
    c3 = alpha_checks(cells, confusions, choice, n_boot=n_boot, seed=seed)
    verdicts = {"C1": c1_verdict(c1, scope, labels), "C2": direction_verdict(c2), "C3": alpha_verdict([*c3, *searched])}
    head = header(cells, tracker, f"{study_name}: the paper's claims, checked")
    folder = ReportFolder(out_root, study_name)
    figs = []
    if c1 or c2:
        subtitle = f"{study_name} — {head['data']}\n{head['weights']}"
        figs.append(folder.figure("claims.png", figure(c1, c2, labels, subtitle)))
    md = folder.text(
        "claims.md",
        markdown(
            head, scope, verdicts, labels, choice, c1, c2, c3, n_boot, seed, [p.name for p in figs], paper, searched
        ),
    )
    csv = folder.csv("claims.csv", claims_frame(c1, c2, c3, scope, labels, searched))
    page = folder.publish(tracker, study_tags)
    return ClaimsReport(
        folder.path, md, csv, tuple(figs), page, verdicts, scope, tuple(c1), tuple(c2), tuple(c3), tuple(searched)
    )
