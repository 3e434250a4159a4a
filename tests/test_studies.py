"""Study specs: every shipped file validates; bad files fail with the file and key named."""

from pathlib import Path

import pytest

from benchmark.studies import StudyError, cell_id, config_id, load_study

STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))

MINIMAL = """
name = "t"
[data]
corpus = "embedded"
size = 60
[encoders]
audio = ["tiny-wavlm", "tiny-hubert"]
text = "tiny-roberta"
[method]
variants = ["emo-clap", "sl-gemo-clap", "ml-gemo-clap"]
alphas = [0.7, 0.9]
[protocol]
folds = [1, 2, 3]
seeds = [0, 1]
"""


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_studies_exist():
    names = {p.stem for p in STUDIES}
    assert {"paper_table", "paper_table_embedded", "ci_subset"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_study_file_validates_and_expands(path):
    study = load_study(path)
    assert study.name == path.stem
    cells = study.cells()
    n_gender_aware = sum(v != "emo-clap" for v in study.method.variants) * len(study.method.alphas)
    n_configs = (
        len(study.encoders.audio) * ("emo-clap" in study.method.variants) + len(study.encoders.audio) * n_gender_aware
    )
    assert len(cells) == n_configs * len(study.protocol.folds) * len(study.protocol.seeds)


def test_paper_table_shape():
    study = load_study(Path(__file__).parent.parent / "studies" / "paper_table.toml")
    assert study.data.corpus == "iemocap"
    families = {a.split("-")[0] for a in study.encoders.audio}
    assert families == {"wavlm", "hubert", "wav2vec2", "data2vec"}
    assert set(study.method.variants) == {"emo-clap", "sl-gemo-clap", "ml-gemo-clap"}
    assert study.protocol.folds == (1, 2, 3, 4, 5)
    embedded = load_study(Path(__file__).parent.parent / "studies" / "paper_table_embedded.toml")
    assert len(embedded.cells()) == len(study.cells())  # the same shape


def test_expansion_runs_emo_clap_once_not_per_alpha(tmp_path):
    study = load_study(write(tmp_path, MINIMAL))
    cells = study.cells()
    # 2 encoders x (1 emo-clap + 2 variants x 2 alphas) x 3 folds x 2 seeds
    assert len(cells) == 2 * (1 + 2 * 2) * 3 * 2
    assert {c.alpha for c in cells if c.variant == "emo-clap"} == {1.0}
    assert {c.alpha for c in cells if c.variant == "sl-gemo-clap"} == {0.7, 0.9}
    assert len({cell_id(c, "fp") for c in cells}) == len(cells)
    assert len({config_id(c, "fp") for c in cells}) == len(cells) // 3
    # lr defaults by encoder kind
    assert {c.train.lr for c in cells} == {3e-3}


def test_ids_are_stable_and_depend_on_data(tmp_path):
    a = load_study(write(tmp_path, MINIMAL)).cells()[0]
    b = load_study(write(tmp_path, MINIMAL, "copy.toml")).cells()[0]
    assert cell_id(a, "fp1") == cell_id(b, "fp1") != cell_id(a, "fp2")


def test_overrides(tmp_path):
    path = write(tmp_path, MINIMAL)
    study = load_study(path, ["train.epochs=3", "method.alphas=[0.5]", "data.corpus=embedded", "model.proj_dim=16"])
    assert study.train["epochs"] == 3 and study.method.alphas == (0.5,) and study.model.proj_dim == 16
    assert all(c.train.epochs == 3 for c in study.cells())
    with pytest.raises(StudyError, match=r"train\.epochs: expected an integer"):
        load_study(path, ["train.epochs=three"])
    with pytest.raises(StudyError, match="expected key=value"):
        load_study(path, ["train.epochs"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("bogus = 1", r"unknown key 'bogus'"),
        ("[train]\nepoch = 3", r"train\.epoch: unknown key"),
        ("[train]\nepochs = 0", r"train\.epochs: epochs must be >= 1"),
        ("[train]\nlr = 'fast'", r"train\.lr: expected a number, got str"),
        ("[model]\ntemperature = true", r"model\.temperature: expected a number, got bool"),
        ("[model]\nprompt_template = 'no label'", r"model\.prompt_template"),
        ("[tracking]\nuri = 5", r"tracking\.uri: expected a string"),
        (
            '[paper.results]\n"wavlm" = [80, 79]',
            r"paper\.results: results key 'wavlm' must be '<encoder or family>/<variant>'",
        ),
        (
            '[paper.results]\n"wavlm/gemo" = [80, 79]',
            r"paper\.results: results key 'wavlm/gemo': unknown variant 'gemo'",
        ),
        (
            '[paper.results]\n"wavlm/emo-clap" = [0.8, 179]',
            r"paper\.results: results 'wavlm/emo-clap' must be \[WAR, UAR\] in %",
        ),
        (
            '[paper.results]\n"wavlm/emo-clap" = [80]',
            r"must be \[WAR, UAR\] in % \(two numbers in 0\.\.100\), got \[80\.0\]",
        ),
        ('[paper.results]\n"wavlm/emo-clap" = "80/79"', r"paper\.results\.wavlm/emo-clap: expected a list of a number"),
        ("[paper]\nresults = [80, 79]", r"paper\.results: expected a table, got list"),
        ("[paper]\ntable = 2", r"paper\.table: unknown key \(allowed: results, source\)"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, edit, message):
    # a top-level key must come before the first table; tables can go last
    text = MINIMAL + "\n" + edit + "\n" if edit.startswith("[") else edit + "\n" + MINIMAL
    path = write(tmp_path, text)
    with pytest.raises(StudyError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("alphas = [0.7, 0.9]", "alphas = [0.7, 1.5]", r"method\.alphas: alpha must be in \[0, 1\], got 1.5"),
        (
            'audio = ["tiny-wavlm", "tiny-hubert"]',
            'audio = ["tiny-wavlm", "wavlm-huge"]',
            r"encoders\.audio\[1\]: unknown audio encoder 'wavlm-huge'",
        ),
        ('text = "tiny-roberta"', 'text = "tiny-wavlm"', r"encoders\.text: 'tiny-wavlm' is a audio encoder preset"),
        (
            'variants = ["emo-clap", "sl-gemo-clap", "ml-gemo-clap"]',
            'variants = ["gemo"]',
            r"method\.variants: unknown variant 'gemo'",
        ),
        ("folds = [1, 2, 3]", "folds = [1, 6]", r"protocol\.folds: distinct sessions in 1\.\.5"),
        ('corpus = "embedded"', 'corpus = "savee"', r"data\.corpus: corpus must be one of"),
        ("size = 60", "size = 10", r"data\.size"),
        ('corpus = "embedded"', 'corpus = "embedded"\nsubset = "impro"', r"data\.subset: subset must be one of all"),
        (
            'corpus = "embedded"',
            'corpus = "ravdess"\nsubset = "improvised"',
            r"data\.subset: subset 'improvised': only IEMOCAP-format corpora",
        ),
        ('name = "t"', "", r"name: required"),
    ],
)
def test_semantic_errors_name_the_key(tmp_path, old, new, message):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(StudyError, match=message):
        load_study(path)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(write(tmp_path, "name = "))
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "nope.toml")


def test_speed_options_leave_the_cell_identity_alone(tmp_path):
    from dataclasses import replace

    cell = load_study(write(tmp_path, MINIMAL)).cells()[0]
    fast = replace(
        cell,
        train=replace(cell.train, attention="sdpa", compile=True, grad_checkpointing=True, deterministic=False),
    )
    assert cell_id(fast, "fp") == cell_id(cell, "fp") and config_id(fast, "fp") == config_id(cell, "fp")
    # batching by an audio budget changes what is computed; when unset it is not in the identity at all, so cells
    # of studies written before the option keep their identities
    budget = replace(cell, train=replace(cell.train, batch_seconds=120.0))
    assert cell_id(budget, "fp") != cell_id(cell, "fp")
    assert "batch_seconds" not in cell.identity()["train"] and "compile" in cell.to_dict()["train"]


def test_the_papers_figures_are_a_study_table(tmp_path):
    default = load_study(write(tmp_path, MINIMAL))
    assert default.paper.is_default and default.paper.figure("tiny-wavlm", "sl-gemo-clap") == {
        "war": 83.16,
        "uar": 81.43,
    }
    assert default.paper.figure("tiny-wavlm", "emo-clap") is None
    text = (
        MINIMAL
        + '[paper]\nsource = "Table 2"\n[paper.results]\n"wavlm/emo-clap" = [80, 79]\n"tiny-wavlm/emo-clap" = [50, 40]\n'
    )
    study = load_study(write(tmp_path, text), ['paper.source="Table 3"'])
    assert not study.paper.is_default and study.paper.source == "Table 3"
    # the encoder named exactly wins over its family; the family covers the others
    assert study.paper.figure("tiny-wavlm", "emo-clap") == {"war": 50.0, "uar": 40.0}
    assert study.paper.figure("microsoft/wavlm-large", "emo-clap") == {"war": 80.0, "uar": 79.0}
    assert study.paper.figure("tiny-wavlm", "sl-gemo-clap") is None  # a given table replaces the default
    # what the paper reports is no part of a cell's identity
    assert [cell_id(c, "d") for c in study.cells()] == [cell_id(c, "d") for c in default.cells()]
