"""The table report's LaTeX: the same figures as the CSV, the best per encoder bold, text escaped."""

import re
import statistics

import numpy as np
import pandas as pd
import pytest

from benchmark.reports.table import latex, summarize_table, tex_escape, write_table_report

HEADER = {
    "title": "my_study: Emo-CLAP vs GEmo-CLAP",
    "data": "IEMOCAP (fingerprint 0123_abcd)",
    "weights": "pretrained (org/my_model#1)",
    "git": "abc123",
    "generated": "2026-01-01 00:00 UTC",
    "runs": "10 finished fold runs",
}
ROW = re.compile(r"^(?P<enc>[^&]*) & (?P<method>[^&]+) & \$(?P<war>[^$]+)\$ & \$(?P<uar>[^$]+)\$ \\\\$")


def cells() -> pd.DataFrame:
    """Two encoders; on the hub id, SL and ML tie on UAR; ML misses a fold."""
    rows = []
    folds = {"emo-clap": [1, 2, 3], "sl-gemo-clap": [1, 2, 3], "ml-gemo-clap": [1, 2]}
    war = {"emo-clap": [0.50, 0.60, 0.70], "sl-gemo-clap": [0.55, 0.65, 0.72], "ml-gemo-clap": [0.70, 0.70]}
    uar = {"emo-clap": [0.40, 0.50, 0.60], "sl-gemo-clap": [0.50, 0.60, 0.70], "ml-gemo-clap": [0.55, 0.65]}
    for variant, fs in folds.items():
        for i, fold in enumerate(fs):
            rows.append(
                (
                    "org/my_model#1",
                    variant,
                    1.0 if variant == "emo-clap" else 0.9,
                    fold,
                    war[variant][i],
                    uar[variant][i],
                )
            )
    for i, fold in enumerate([1, 2, 3]):
        rows.append(("tiny-wavlm", "emo-clap", 1.0, fold, 0.3 + 0.01 * i, 0.25 + 0.02 * i))
    return pd.DataFrame(rows, columns=["encoder", "variant", "alpha", "fold", "war", "uar"])


def parse(tex: str) -> list[dict]:
    return [m.groupdict() for line in tex.splitlines() if (m := ROW.match(line))]


def test_latex_gives_every_mean_and_std_and_bolds_each_encoders_best():
    frame = cells()
    tex = latex(summarize_table(frame, ["org/my_model#1", "tiny-wavlm"]), HEADER, 3, "my study")
    rows = parse(tex)
    assert len(rows) == 4
    # a slow reference: the figures from the fold values, one configuration at a time
    expected = []
    for (enc, variant), group in frame.groupby(["encoder", "variant"], sort=False):
        figures = {}
        for m in ("war", "uar"):
            values = list(group[m])
            figures[m] = (round(100 * statistics.mean(values), 2), 100 * statistics.stdev(values))
        expected.append((enc, variant, figures))
    best = {}
    for enc, _, figures in expected:
        for m in ("war", "uar"):
            best[enc, m] = max(best.get((enc, m), -1), figures[m][0])
    for row, (enc, variant, figures) in zip(rows, expected, strict=True):
        for m in ("war", "uar"):
            mean, std = figures[m]
            text = f"{mean:.2f}" if mean != best[enc, m] else f"\\mathbf{{{mean:.2f}}}"
            assert row[m] == f"{text} \\pm {std:.2f}", (enc, variant, m, row[m])
    # ties are all bold: SL and ML share the best UAR of the hub-id encoder (60.00)
    assert [r["uar"].startswith(r"\mathbf") for r in rows] == [False, True, True, True]
    assert [r["war"].startswith(r"\mathbf") for r in rows] == [False, False, True, True]
    assert [r["enc"] for r in rows] == [r"org/my\_model\#1", "", "", "tiny-wavlm"]
    assert rows[2]["method"] == r"ML-GEmo-CLAP ($\alpha=0.9$)$^\dagger$"  # 2 of 3 folds
    assert r"$^\dagger$Fewer than 3 folds finished." in tex
    assert r"\label{tab:my-study}" in tex and "Weights: pretrained (org/my\\_model\\#1)." in tex
    body = re.sub(r"\\[{}]", "", "\n".join(ln for ln in tex.splitlines() if not ln.startswith("%")))
    assert body.count("{") == body.count("}")
    assert tex.count(r"\midrule") == 2 and r"\begin{tabular}{llcc}" in tex


def test_a_complete_table_has_no_dagger_and_text_is_escaped():
    frame = cells()
    frame = frame[frame["variant"] != "ml-gemo-clap"]
    tex = latex(summarize_table(frame, ["org/my_model#1", "tiny-wavlm"]), HEADER, 3, "s")
    assert "dagger" not in tex
    assert tex_escape("a\\b_c&d%e$f#g{h}i~j^k") == (
        r"a\textbackslash{}b\_c\&d\%e\$f\#g\{h\}i\textasciitilde{}j\textasciicircum{}k"
    )


def test_the_table_report_writes_tex_with_the_csvs_figures(sim_store, tmp_path):
    _, tracker, _ = sim_store
    report = write_table_report(tracker, "sim", ["tiny-wavlm"], 5, tmp_path)
    rows = parse(report.latex.read_text())
    table = report.frame
    assert len(rows) == len(table) == 3
    for row, (_, r) in zip(rows, table.iterrows(), strict=True):
        for m in ("war", "uar"):
            assert (
                re.sub(r"\\mathbf\{([^}]*)\}", r"\1", row[m])
                == f"{100 * r[f'{m}_mean']:.2f} \\pm {100 * r[f'{m}_std']:.2f}"
            )
    assert "% weights: " in report.latex.read_text()


@pytest.mark.parametrize("name", ["paper table", "x_y"])
def test_labels_are_safe(name):
    tex = latex(summarize_table(cells(), ["org/my_model#1", "tiny-wavlm"]), HEADER, 3, name)
    (label,) = re.findall(r"\\label\{tab:([^}]*)\}", tex)
    assert re.fullmatch(r"[A-Za-z0-9:._-]+", label)


def test_seeds_are_averaged_within_a_fold_and_their_spread_is_its_own_column():
    # 2 seeds x 3 folds; seed 1 misses fold 3, so fold 3's figure is seed 0's alone
    uar = {(0, 1): 0.40, (0, 2): 0.50, (0, 3): 0.60, (1, 1): 0.50, (1, 2): 0.70}
    war = {key: value + 0.05 for key, value in uar.items()}
    frame = pd.DataFrame(
        [("tiny-wavlm", "emo-clap", 1.0, s, f, war[s, f], uar[s, f]) for s, f in uar],
        columns=["encoder", "variant", "alpha", "seed", "fold", "war", "uar"],
    )
    (row,) = summarize_table(frame, ["tiny-wavlm"]).to_dict("records")
    # the slow reference, by hand
    folds = [statistics.mean([0.40, 0.50]), statistics.mean([0.50, 0.70]), 0.60]
    seeds = [statistics.mean([0.40, 0.50, 0.60]), statistics.mean([0.50, 0.70])]
    assert (row["folds"], row["runs"], row["seeds"]) == (3, 5, 2)
    assert row["uar_mean"] == pytest.approx(statistics.mean(folds))
    assert row["uar_std"] == pytest.approx(statistics.stdev(folds))
    assert row["uar_seed_std"] == pytest.approx(statistics.stdev(seeds))
    assert row["war_seed_std"] == pytest.approx(statistics.stdev(seeds))  # WAR is UAR + 0.05 throughout
    from benchmark.reports.table import markdown

    md = markdown(summarize_table(frame, ["tiny-wavlm"]), HEADER, 3)
    assert "each fold's figure the mean of its seeds" in md and "*Seed std*" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| tiny-wavlm"))
    cells_ = [c.strip() for c in line.strip("|").split("|")]
    assert cells_[4:8] == ["3", "2", f"{100 * statistics.stdev(seeds):.2f}", f"{100 * statistics.stdev(seeds):.2f}"]
    tex = latex(summarize_table(frame, ["tiny-wavlm"]), HEADER, 3, "s")
    assert "Each fold's figure is the mean of its seeds (up to 2)." in tex

    # one seed: no seed columns, and the table reads as before
    single = markdown(summarize_table(frame[frame["seed"] == 0], ["tiny-wavlm"]), HEADER, 3)
    header = next(ln for ln in single.splitlines() if ln.startswith("| encoder"))
    assert (
        "Seed std" not in single
        and header == "| encoder | variant | WAR | UAR | folds | paper WAR | paper UAR | Δ WAR | Δ UAR |"
    )


def test_the_header_names_a_dialog_subset():
    from benchmark.reports.table import describe_source

    frame = pd.DataFrame(
        {
            "data_source": ["iemocap"] * 2,
            "data_fingerprint": ["abc"] * 2,
            "weights": ["pretrained (x/y)"] * 2,
            "git_sha": ["0123456789abcdef"] * 2,
            "data_subset": ["improvised"] * 2,
        }
    )
    assert describe_source(frame)["data"] == "IEMOCAP, dialogs: improvised (fingerprint abc)"
    assert describe_source(frame.assign(data_subset="all"))["data"] == "IEMOCAP (fingerprint abc)"


def test_context_rows_only_under_an_iemocap_table():
    from benchmark.reports.table import LITERATURE, markdown

    table = summarize_table(cells(), ["org/my_model#1", "tiny-wavlm"])
    md = markdown(table, HEADER, 3)
    assert "## Context" in md
    assert "| EmoBox, frozen WavLM-Large | leave-one-session-out | 69.07 | 69.47 |" in md
    assert sum(line.startswith("| ") for line in md.split("## Context")[1].splitlines()) == len(LITERATURE) + 1
    embedded = markdown(table, {**HEADER, "data": "embedded corpus (generated, IEMOCAP format)"}, 3)
    assert "## Context" not in embedded


def test_the_studys_paper_figures_go_beside_ours():
    from benchmark.reports.table import markdown
    from benchmark.studies import Paper

    paper = Paper(results={"org/my_model#1/emo-clap": (61.0, 52.5), "wavlm/emo-clap": (90.0, 80.0)}, source="T2")
    table = summarize_table(cells(), ["org/my_model#1", "tiny-wavlm"], paper).set_index(["encoder", "variant"])
    row = table.loc[("org/my_model#1", "emo-clap")]
    assert (row["paper_war"], row["paper_uar"]) == (61.0, 52.5)
    assert row["diff_war"] == pytest.approx(100 * statistics.mean([0.50, 0.60, 0.70]) - 61.0)
    assert row["diff_uar"] == pytest.approx(100 * statistics.mean([0.40, 0.50, 0.60]) - 52.5)
    assert table.loc[("tiny-wavlm", "emo-clap"), "paper_uar"] == 80.0  # through its family
    assert np.isnan(table.loc[("org/my_model#1", "sl-gemo-clap"), "paper_war"])  # the paper gives no figure
    md = markdown(table.reset_index(), HEADER, 3, paper)
    assert "*Paper*: the paper's figures (T2)" in md
