"""Every corpus reader on small trees with the corpus's real naming conventions.

Expected records, counts and drops come from what the tree builders wrote (tests/data/corpus_trees.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data.audio import AudioConversionWarning, AudioError
from benchmark.data.corpus import DUPLICATE, UNREADABLE, CorpusFormatError, find_duplicates
from benchmark.data.folds import assign_folds, split_fold
from benchmark.data.sources import READERS, DataSpec, fingerprint
from tests.data.corpus_trees import Tree, cremad_tree, emodb_tree, manifest_tree, ravdess_tree

BUILDERS = {"ravdess": ravdess_tree, "cremad": cremad_tree, "emodb": emodb_tree}


@pytest.fixture(scope="module", params=list(BUILDERS))
def damaged(request, tmp_path_factory) -> tuple[str, Tree]:
    """A tree of each corpus with a duplicate, an unreadable file and a stereo file."""
    return request.param, BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


def read(name: str, tree: Tree, **kwargs):
    with pytest.warns(AudioConversionWarning):
        return DataSpec(corpus=name, root=str(tree.root), unreadable="drop", **kwargs).read()


def test_records_match_what_was_written(damaged):
    name, tree = damaged
    reading = read(name, tree)
    expected = {f.id: f for f in tree.kept()}
    assert {r.id for r in reading.records} == set(expected)
    for r in reading.records:
        f = expected[r.id]
        assert (r.path, r.speaker, r.gender, r.raw_label, r.emotion, r.corpus) == (
            f.path,
            f.speaker,
            f.gender,
            f.label,
            f.emotion,
            name,
        )
        assert r.session is None and r.duration == pytest.approx(0.4, abs=1e-3)


def test_drops_are_counted_by_reason(damaged):
    name, tree = damaged
    reading = read(name, tree)
    reader = READERS[name]
    by_label = Counter(f"label {f.label} ({reader.labels[f.label]})" for f in tree.files if not f.emotion)
    expected = {**by_label, UNREADABLE: 1, DUPLICATE: 1}
    skipped = Counter(f.skipped for f in tree.files if f.skipped)
    if skipped:  # RAVDESS: song files and video-only names
        expected |= {"song (vocal channel 02)": skipped["song"], "not audio-only (modality 02)": skipped["not audio"]}
    assert reading.dropped == dict(sorted(expected.items()))
    assert reading.unreadable[0][0] == tree.unreadable.path
    assert reading.duplicates == ((tree.duplicate.path, tree.duplicate_of.path),)


def test_conversions_are_noted(damaged):
    name, tree = damaged
    reading = read(name, tree)
    assert "1 file(s) downmixed 2 channels -> mono" in reading.notes
    if name == "ravdess":  # the originals are 48 kHz
        assert f"{len(tree.kept())} file(s) resampled 48000 Hz -> 16000 Hz" in reading.notes


def test_unreadable_audio_is_one_error_naming_the_file_by_default(damaged):
    name, tree = damaged
    with pytest.raises(AudioError) as err:
        DataSpec(corpus=name, root=str(tree.root)).read()
    assert str(tree.unreadable.path) in str(err.value) and "unreadable" in str(err.value)


def test_summary_command_has_the_shared_shape(damaged, capsys):
    name, tree = damaged
    with pytest.warns(AudioConversionWarning):
        code = main(["data", "summary", "--corpus", name, "--root", str(tree.root), "--drop-unreadable", "--json"])
    out = capsys.readouterr()
    assert code == 0
    summary = json.loads(out.out)
    assert list(summary) == ["total", "by_emotion", "by_gender", "by_speaker", "dropped"]
    assert {k: summary[k] for k in ("total", "by_emotion", "by_gender", "by_speaker")} == tree.counts()
    assert summary["dropped"][DUPLICATE] == 1 and summary["dropped"][UNREADABLE] == 1
    assert str(tree.unreadable.path) in out.err and str(tree.duplicate.path) in out.err


def test_keep_other_keeps_native_labels(damaged):
    name, tree = damaged
    with pytest.warns(AudioConversionWarning):
        reading = DataSpec(corpus=name, root=str(tree.root), unreadable="drop").read(keep_other=True)
    reader = READERS[name]
    others = Counter(reader.labels[f.label] for f in tree.files if not f.emotion and not f.skipped)
    found = Counter(r.emotion for r in reading.records if r.emotion not in ("neu", "hap", "ang", "sad"))
    assert found == others and not any(k.startswith("label") for k in reading.dropped)


def test_speaker_folds_are_speaker_independent_balanced_and_seeded(damaged):
    name, tree = damaged
    records = read(name, tree, folds=3).records
    folds = {r.fold for r in records}
    assert folds == {1, 2, 3}
    for speaker in {r.speaker for r in records}:
        assert len({r.fold for r in records if r.speaker == speaker}) == 1
    for k in folds:  # 3 male and 3 female speakers: one of each per fold
        assert Counter(r.gender for r in {(r.speaker, r.gender): r for r in records if r.fold == k}.values()) == {
            "F": 1,
            "M": 1,
        }
    again = assign_folds(records, 3, seed=0)
    assert [r.fold for r in again] == [r.fold for r in records]
    fold = split_fold(records, 2, val_fraction=0.25, seed=0)
    test_speakers = {r.speaker for r in fold.test}
    assert test_speakers.isdisjoint({r.speaker for r in fold.train + fold.val})
    assert len(fold.train) + len(fold.val) + len(fold.test) == len(records)


def test_fold_seed_changes_the_assignment_and_the_fingerprint(tmp_path):
    tree = emodb_tree(tmp_path, damaged=False)
    a = DataSpec(corpus="emodb", root=str(tree.root), folds=3, fold_seed=0).load()
    b = DataSpec(corpus="emodb", root=str(tree.root), folds=3, fold_seed=1).load()
    assert [r.fold for r in a] != [r.fold for r in b]
    assert fingerprint(a) != fingerprint(b)


def test_too_few_speakers_for_the_folds_is_a_clear_error(tmp_path):
    tree = ravdess_tree(tmp_path, actors=range(1, 4), damaged=False)
    with pytest.warns(AudioConversionWarning), pytest.raises(ValueError, match="3 speakers cannot fill 5"):
        DataSpec(corpus="ravdess", root=str(tree.root)).read()


# --------------------------------------------------------------------------- corpus-specific rules


def test_ravdess_gender_is_the_actor_number_parity(tmp_path):
    tree = ravdess_tree(tmp_path, damaged=False)
    with pytest.warns(AudioConversionWarning):
        records = DataSpec(corpus="ravdess", root=str(tree.root)).load()
    assert {r.speaker: r.gender for r in records} == {
        "Actor_01": "M",
        "Actor_02": "F",
        "Actor_03": "M",
        "Actor_04": "F",
        "Actor_05": "M",
        "Actor_06": "F",
    }
    assert dict(records[0].extra)["intensity"] in ("normal", "strong")


def test_ravdess_bad_names_are_errors_naming_the_file(tmp_path):
    tree = ravdess_tree(tmp_path, damaged=False)
    moved = tree.root / "Actor_02" / "03-01-05-01-01-01-03.wav"
    moved.write_bytes(tree.files[0].path.read_bytes())
    with pytest.raises(CorpusFormatError, match=r"actor 03 in the name, but the file lies in Actor_02/"):
        READERS["ravdess"].list(tree.root)
    moved.unlink()
    odd = tree.root / "Actor_02" / "03-01-09-01-01-01-02.wav"
    odd.write_bytes(tree.files[0].path.read_bytes())
    with pytest.raises(CorpusFormatError, match=f"{odd}: unknown emotion code 09"):
        READERS["ravdess"].list(tree.root)


def test_cremad_sex_comes_from_the_demographics_file(tmp_path):
    tree = cremad_tree(tmp_path, damaged=False)
    csv = tree.root / "VideoDemographics.csv"
    records = DataSpec(corpus="cremad", root=str(tree.root)).load()
    assert {r.speaker: r.gender for r in records} == {f.speaker: f.gender for f in tree.files}
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines[:3], lines[3].replace("Male", "M?"), *lines[4:]]) + "\n")
    with pytest.raises(CorpusFormatError, match=rf"{csv}:4: Sex must be Male or Female, got 'M\?'"):
        READERS["cremad"].list(tree.root)
    csv.write_text("\n".join(lines[:-1]) + "\n")  # the last actor is missing
    with pytest.raises(CorpusFormatError, match=rf"actor 1006 is not in {csv}"):
        READERS["cremad"].list(tree.root)
    csv.unlink()
    with pytest.raises(CorpusFormatError, match=r"VideoDemographics\.csv: not found"):
        READERS["cremad"].list(tree.root)


def test_emodb_speakers_and_letters(tmp_path):
    tree = emodb_tree(tmp_path, damaged=False)
    records = DataSpec(corpus="emodb", root=str(tree.root)).load()
    assert {r.speaker: r.gender for r in records} == {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "13": "F"}
    assert {r.raw_label: r.emotion for r in records} == {"W": "ang", "F": "hap", "T": "sad", "N": "neu"}
    bad = tree.root / "wav" / "04a01Wa.wav"
    bad.write_bytes(tree.files[0].path.read_bytes())
    with pytest.raises(CorpusFormatError, match="unknown speaker 04"):
        READERS["emodb"].list(tree.root)


def test_wrong_root_names_what_was_expected(tmp_path):
    for name, what in (("ravdess", "Actor_01/"), ("cremad", "AudioWAV/"), ("emodb", "wav/")):
        with pytest.raises(CorpusFormatError, match=what):
            READERS[name].list(tmp_path)
    with pytest.raises(ValueError, match=r"no RAVDESS root given: set data\.root"):
        DataSpec(corpus="ravdess").read()


# --------------------------------------------------------------------------- manifest


def test_manifest_folds_paths_and_label_words(tmp_path):
    tree = manifest_tree(tmp_path)
    records = DataSpec(corpus="manifest", root=str(tree.root / "manifest.csv")).load()
    expected = {f.id: f for f in tree.kept()}
    assert {r.id: (r.path, r.gender, r.emotion, r.fold) for r in records} == {
        i: (f.path, f.gender, f.emotion, f.fold) for i, f in expected.items()
    }
    # the folder works as a root too, and the manifest's folds are the test folds
    same = DataSpec(corpus="manifest", root=str(tree.root)).load()
    assert same == records
    fold = split_fold(records, 3, val_fraction=0.2)
    assert {r.speaker for r in fold.test} == {"spk4", "spk5"}


def test_manifest_without_folds_gets_speaker_folds(tmp_path):
    tree = manifest_tree(tmp_path, folds=False)
    records = DataSpec(corpus="manifest", root=str(tree.root), folds=3).load()
    assert {r.fold for r in records} == {1, 2, 3}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: ["path,emotion,speaker", *lines[1:]], r"manifest.csv:1: missing column\(s\) \['gender'\]"),
        (lambda lines: [*lines[:2], lines[2].replace("male", "x"), *lines[3:]], r"manifest.csv:3: gender must be"),
        (lambda lines: [*lines[:4], lines[4].rsplit(",", 1)[0] + ",", *lines[5:]], "give a fold for all or none"),
        (lambda lines: [*lines[:2], lines[2].rsplit(",", 1)[0] + ",zero", *lines[3:]], r"manifest.csv:3: fold must be"),
        (lambda lines: [*lines[:2], ",neutral,male,spk0,1", *lines[3:]], r"manifest.csv:3: empty path"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path, edit, message):
    tree = manifest_tree(tmp_path)
    path = tree.root / "manifest.csv"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(CorpusFormatError, match=message):
        DataSpec(corpus="manifest", root=str(path)).load()


# --------------------------------------------------------------------------- duplicates


def test_duplicates_are_found_by_content_not_name(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.wav", "b.wav", "c.wav"))
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"same size!")  # same size, other content: hashed, not a duplicate
    assert find_duplicates([c, b, a]) == [(b, a)]


def test_iemocap_reader_counts_dropped_labels(small_corpus: Path, small_records):
    reading = DataSpec(corpus="iemocap", root=str(small_corpus)).read()
    assert list(reading.records) == list(small_records)
    listing = READERS["iemocap"].list(small_corpus)
    assert sum(reading.dropped.values()) == len(listing.entries) - len(small_records)


@pytest.mark.parametrize("subset", ["improvised", "scripted"])
def test_a_subset_keeps_its_dialogs_and_counts_the_others(tmp_path, subset):
    from benchmark.data.iemocap import DEFAULT_CLASS_MAP
    from tests.data.iemocap_tree import build_tree, make_spec

    # dialog names as the release writes them: impro01, impro05b, script01_1b, script02_2 (4 sessions: a
    # partial tree, which the reader does not hold to the full release's counts)
    spec = make_spec((1, 2, 3, 4))
    tree = build_tree(tmp_path / "IEMOCAP_full_release", spec)
    whole = DataSpec(corpus="iemocap", root=str(tree.root)).read()
    reading = DataSpec(corpus="iemocap", root=str(tree.root), subset=subset).read()
    # the slow reference: the spec's 4-class utterances of that kind of dialog
    word = "impro" if subset == "improvised" else "script"
    other = "scripted" if subset == "improvised" else "improvised"
    kept = [u for u in spec if u.label in DEFAULT_CLASS_MAP and f"_{word}" in u.dialog]
    left = [u for u in spec if u.label in DEFAULT_CLASS_MAP and f"_{word}" not in u.dialog]
    assert kept and left
    assert sorted(r.id for r in reading.records) == sorted(f"{u.dialog}_{u.gender}{u.turn:03d}" for u in kept)
    assert reading.dropped[f"{other} dialog (data.subset = {subset})"] == len(left)
    assert {k: v for k, v in reading.dropped.items() if "dialog" not in k} == dict(whole.dropped)
    assert fingerprint(reading.records) != fingerprint(whole.records)
    assert DataSpec(corpus="iemocap", root=str(tree.root), subset=subset).describe()["subset"] == subset
    assert "subset" not in DataSpec(corpus="iemocap", root=str(tree.root)).describe()


def test_subset_flag_of_the_summary_command(capsys):
    assert main(["data", "summary", "--subset", "improvised", "--synth-size", "100", "--json"]) == 0
    improvised = json.loads(capsys.readouterr().out)
    assert main(["data", "summary", "--subset", "scripted", "--synth-size", "100", "--json"]) == 0
    scripted = json.loads(capsys.readouterr().out)
    assert main(["data", "summary", "--synth-size", "100", "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert improvised["total"] + scripted["total"] == whole["total"] == 100
    assert improvised["dropped"]["scripted dialog (data.subset = improvised)"] == scripted["total"]
