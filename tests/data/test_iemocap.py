"""The IEMOCAP reader against small trees written in the release's format (tests/data/iemocap_tree.py)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
from pathlib import Path

import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.data import iemocap
from benchmark.data.audio import AudioError
from benchmark.data.iemocap import (
    EXPECTED_COUNTS,
    RAW_LABELS,
    UTTERANCE_RE,
    IemocapCountWarning,
    IemocapFormatError,
    IemocapReader,
    LabelLine,
    MissingAudioError,
    NotIemocapRootError,
    corpus_source,
    parse_emo_evaluation,
    read_iemocap,
    resolve_root,
    summarize,
)
from benchmark.data.records import CLASSES, DEFAULT_CLASS_MAP
from tests.data.iemocap_tree import (
    MARKER,
    BuiltTree,
    Utt,
    build_tree,
    consensus_line,
    count_by_mocap_letter,
    label_file_text,
    make_spec,
)

ALL_SESSIONS = (1, 2, 3, 4, 5)
SYNTHETIC_MARKER = {"generator": "tests", "seed": 0}


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory: pytest.TempPathFactory) -> BuiltTree:
    """All five sessions, marked as a generated corpus so that reading it does not warn."""
    return build_tree(tmp_path_factory.mktemp("full"), make_spec(ALL_SESSIONS), marker=SYNTHETIC_MARKER)


@pytest.fixture
def tree(tmp_path: Path) -> BuiltTree:
    """Two sessions, one per test, for tests that damage the tree."""
    return build_tree(tmp_path / "IEMOCAP_full_release", make_spec((1, 2)))


def _first(tree: BuiltTree, *, kept: bool = True, session: int | None = None) -> Utt:
    return next(
        u for u in tree.spec if (u.label in DEFAULT_CLASS_MAP) == kept and (session is None or u.session == session)
    )


# --------------------------------------------------------------------------- counts and records


def test_counts_equal_the_spec(full_tree: BuiltTree) -> None:
    records = read_iemocap(full_tree.root)
    assert summarize(records) == full_tree.counts()


def test_spec_separates_speaker_gender_from_mocap_letter(full_tree: BuiltTree) -> None:
    # The fixture must be able to catch a reader that counts genders by the `Ses01F` letter.
    assert count_by_mocap_letter(full_tree.spec) != full_tree.counts()["by_gender"]
    assert "Ses01F_impro01_M000" in {u.utt_id for u in full_tree.kept()}


def test_gender_and_speaker_come_from_the_letter_after_the_last_underscore(full_tree: BuiltTree) -> None:
    by_id = {r.id: r for r in read_iemocap(full_tree.root)}
    assert by_id["Ses01F_impro01_M000"].gender == "M"
    for utt in full_tree.kept():
        record = by_id[utt.utt_id]
        assert record.gender == utt.gender
        assert record.speaker == f"Ses{utt.session:02d}{utt.gender}"
        assert record.dialog == utt.dialog
        assert record.session == utt.session


def test_records_are_sorted_and_point_at_their_wavs(full_tree: BuiltTree) -> None:
    records = read_iemocap(full_tree.root)
    assert [(r.session, r.dialog, r.id) for r in records] == sorted((r.session, r.dialog, r.id) for r in records)
    expected = {u.utt_id: full_tree.wav(u) for u in full_tree.kept()}
    assert {r.id: r.path for r in records} == expected


def test_exc_is_merged_into_hap_and_dropped_labels_are_absent(full_tree: BuiltTree) -> None:
    records = read_iemocap(full_tree.root)
    ids = {r.id for r in records}
    dropped = [u for u in full_tree.spec if u.label not in DEFAULT_CLASS_MAP]
    assert {u.label for u in dropped} >= {"fru", "xxx"}
    assert not ids & {u.utt_id for u in dropped}
    excited = [r for r in records if r.raw_label == "exc"]
    assert excited
    assert all(r.emotion == "hap" for r in excited)
    assert {r.emotion for r in records} == set(CLASSES)


def test_decoy_files_are_ignored(full_tree: BuiltTree) -> None:
    emo_dir = full_tree.emo_dir(1)
    decoys = [p for p in emo_dir.rglob("*.txt") if p.parent != emo_dir or p.name.startswith("._")]
    assert {p.parent.name for p in decoys} >= {"Categorical", "Attribute", "Self-evaluation", "EmoEvaluation"}
    # Parsing any decoy as a label file fails, so reading the tree at all shows they were skipped.
    for decoy in decoys:
        with pytest.raises(IemocapFormatError, match=re.escape(str(decoy))):
            parse_emo_evaluation(decoy)
    assert len(read_iemocap(full_tree.root)) == len(full_tree.kept())


@pytest.mark.parametrize(
    "class_map",
    [
        {"neu": "neu", "hap": "hap", "exc": "exc", "ang": "ang", "sad": "sad"},
        {**DEFAULT_CLASS_MAP, "fru": "fru"},
        {"ang": "ang", "fru": "ang", "xxx": "unsure"},
    ],
    ids=["exc-apart", "with-fru", "odd"],
)
def test_custom_class_map(full_tree: BuiltTree, class_map: dict[str, str]) -> None:
    records = read_iemocap(full_tree.root, class_map)
    assert summarize(records) == full_tree.counts(class_map)
    assert all(r.emotion == class_map[r.raw_label] for r in records)


def test_class_map_with_a_key_that_is_no_label_is_rejected(full_tree: BuiltTree) -> None:
    with pytest.raises(ValueError, match="hapy"):
        read_iemocap(full_tree.root, {"neu": "neu", "hapy": "hap"})


def test_durations_match_the_written_files(full_tree: BuiltTree) -> None:
    spec = {u.utt_id: u for u in full_tree.spec}
    for record in read_iemocap(full_tree.root):
        assert record.duration == pytest.approx(sf.info(str(record.path)).duration)
        assert record.duration == pytest.approx(spec[record.id].frames / 16_000)


def test_sessions_filter(full_tree: BuiltTree) -> None:
    records = read_iemocap(full_tree.root, sessions=[4, 2])
    assert {r.session for r in records} == {2, 4}
    assert len(records) == len([u for u in full_tree.kept() if u.session in (2, 4)])


def test_sessions_filter_rejects_absent_and_impossible_sessions(tree: BuiltTree) -> None:
    with pytest.raises(NotIemocapRootError, match="Session3"):
        read_iemocap(tree.root, sessions=[1, 3])
    with pytest.raises(ValueError, match=re.escape("1..5")):
        read_iemocap(tree.root, sessions=[6])


def test_crlf_label_files_parse(tmp_path: Path) -> None:
    spec = make_spec((1,))
    lf = build_tree(tmp_path / "lf", spec)
    crlf = build_tree(tmp_path / "crlf", spec, newline="\r\n")
    assert b"\r\n" in crlf.label_file(spec[0].dialog).read_bytes()
    for dialog in lf.dialogs():
        assert parse_emo_evaluation(crlf.label_file(dialog)) == parse_emo_evaluation(lf.label_file(dialog))
    assert summarize(read_iemocap(crlf.root)) == crlf.counts()


# --------------------------------------------------------------------------- one label file


REAL_EXAMPLE = (
    "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n"
    "\n"
    "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
    "C-E2:\tNeutral;\t()\n"
    "C-E3:\tNeutral;\t()\n"
    "C-E4:\tNeutral;\t()\n"
    "C-F1:\tNeutral;\t(curious)\n"
    "A-E3:\tval 3; act 2; dom  2;\t()\n"
    "A-E4:\tval 2; act 3; dom  3;\t(mildly aggravated but staying polite, attitude)\n"
    "\n"
    "[10.0100 - 11.3925]\tSes01F_impro01_M001\tfru\t[2.0000, 3.5000, 3.5000]   \n"
    "C-E2:\tAnger; Frustration;\t()\n"
    "A-E2:\tval 2; act 3; dom  4;\t()\n"
    "\n"
)


def test_parse_emo_evaluation_reads_times_labels_vad_and_votes(tmp_path: Path) -> None:
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(REAL_EXAMPLE)
    # the evaluators' categories (C-E*), not the speaker's own rating (C-F1) nor the dimensional lines
    assert parse_emo_evaluation(path) == [
        LabelLine("Ses01F_impro01_F000", 6.2901, 8.2357, "neu", (2.5, 2.5, 2.5), 3, (("neu",), ("neu",), ("neu",))),
        LabelLine("Ses01F_impro01_M001", 10.01, 11.3925, "fru", (2.0, 3.5, 3.5), 11, (("ang", "fru"),)),
    ]


AGREEMENT_BLOCKS = {
    # consensus label, then the annotator lines; expected (agreeing, evaluators) under the 4-class map
    0: ("hap", ["C-E1:\tExcited;\t()", "C-E2:\tHappiness; Excited;\t()", "C-E3:\tAnger;\t(loud)"], (2, 3)),
    1: ("neu", ["C-E1:\tNeutral;\t()", "C-E2:\tNeutral;\t()", "C-M1:\tAnger;\t()"], (2, 2)),  # not C-M1
    2: ("ang", ["C-E1:\tFrustration; Anger;\t()", "C-E4:\tOther:annoyed;\t()", "C-E5:\tBored;\t()"], (1, 3)),
    3: ("sad", ["A-E3:\tval 2; act 2; dom  2;\t()"], None),  # no categorical evaluator: unknown
    4: ("exc", ["C-E2:\tExcited;\t()", "C-E3:\tHappiness;\t()", "C-E6:\tSadness;\t()", "A-E6:\tval 4;\t()"], (2, 3)),
}


def test_label_agreement_counts_the_evaluators_who_named_the_class(tmp_path: Path) -> None:
    spec = [Utt(1, "Ses01F_impro01", "FM"[t % 2], t // 2, label) for t, (label, _, _) in AGREEMENT_BLOCKS.items()]
    tree = build_tree(tmp_path / "IEMOCAP_full_release", spec)
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for utt, (_, annotators, _) in zip(spec, AGREEMENT_BLOCKS.values(), strict=True):
        lines += [consensus_line(utt), *annotators, ""]
    tree.label_file("Ses01F_impro01").write_text("\n".join(lines))
    want = {u.utt_id: expected for u, (_, _, expected) in zip(spec, AGREEMENT_BLOCKS.values(), strict=True)}
    strict = {r.id: r for r in read_iemocap(tree.root)}
    assert {i: r.agreement for i, r in strict.items()} == want
    assert strict[spec[0].utt_id].agreement_text == "2/3" and strict[spec[3].utt_id].agreement_text == ""
    # the listing route (unreadable="drop") turns the same votes into the same agreement
    dropped = IemocapReader().read(tree.root, unreadable="drop").records
    assert {r.id: r.agreement for r in dropped} == want and all("votes" not in dict(r.extra) for r in dropped)
    # with exc kept apart from hap, Happiness no longer agrees with an exc consensus
    apart = {"neu": "neu", "hap": "hap", "exc": "exc", "ang": "ang", "sad": "sad"}
    assert {r.id: r.agreement for r in read_iemocap(tree.root, apart)}[spec[4].utt_id] == (1, 3)


@pytest.mark.parametrize(
    "utt_id, dialog, session, gender",
    [
        ("Ses01F_impro01_F000", "Ses01F_impro01", 1, "F"),
        ("Ses05M_script01_1b_M012", "Ses05M_script01_1b", 5, "M"),
        ("Ses03M_impro05b_F021", "Ses03M_impro05b", 3, "F"),
        ("Ses01F_script02_2_M042", "Ses01F_script02_2", 1, "M"),
        ("Ses01F_impro01_M000", "Ses01F_impro01", 1, "M"),
    ],
)
def test_utterance_re(utt_id: str, dialog: str, session: int, gender: str) -> None:
    match = UTTERANCE_RE.fullmatch(utt_id)
    assert match is not None
    assert (match["dialog"], int(match["session"]), match["gender"]) == (dialog, session, gender)


@pytest.mark.parametrize("utt_id", ["Ses1F_impro01_F000", "Ses01F_impro01_X000", "Ses01F_F000", "impro01_F000"])
def test_utterance_re_rejects(utt_id: str) -> None:
    assert UTTERANCE_RE.fullmatch(utt_id) is None


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank"])
def test_empty_file_is_an_error_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(content)
    with pytest.raises(IemocapFormatError, match=re.escape(str(path))):
        parse_emo_evaluation(path)


def test_file_without_header_is_an_error_at_line_1(tmp_path: Path) -> None:
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(REAL_EXAMPLE.split("\n", 2)[2])
    with pytest.raises(IemocapFormatError, match=re.escape(f"{path}:1: expected a header")):
        parse_emo_evaluation(path)


# --------------------------------------------------------------------------- malformed trees


def _assert_format_error_at(tree: BuiltTree, dialog: str, line_no: int, *fragments: str) -> None:
    with pytest.raises(IemocapFormatError) as info:
        read_iemocap(tree.root)
    message = str(info.value)
    assert message.startswith(f"{tree.label_file(dialog)}:{line_no}: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda line: line.replace("\t", " "),
        lambda line: line.rsplit("\t", 1)[0],
        lambda line: line.replace("[", "(", 1),
        lambda line: re.sub(r"^\[\d+", "[x", line),
        lambda line: line.replace(", ", " ", 1),
    ],
    ids=["spaces-not-tabs", "no-vad", "paren", "non-numeric-time", "two-vad-values"],
)
def test_malformed_consensus_line(tree: BuiltTree, corrupt) -> None:
    # A later block, so that the line number must be counted, not assumed.
    utt = [u for u in tree.spec if u.dialog == tree.spec[0].dialog][3]
    bad = corrupt(consensus_line(utt))
    line_no = tree.replace_line(utt, bad)
    assert line_no > 3
    _assert_format_error_at(tree, utt.dialog, line_no, "consensus", repr(bad))


def test_malformed_annotator_line(tree: BuiltTree) -> None:
    utt = tree.spec[2]
    line_no = tree.line_no(utt) + 1
    tree.replace_at(utt.dialog, line_no, "C-E2 Neutral; ()")
    _assert_format_error_at(tree, utt.dialog, line_no, "annotator", "'C-E2 Neutral; ()'")


def test_block_must_start_with_a_consensus_line(tree: BuiltTree) -> None:
    utt = tree.spec[1]
    line_no = tree.replace_line(utt, "C-E2:\tNeutral;\t()")
    _assert_format_error_at(tree, utt.dialog, line_no, "consensus")


def test_unknown_label(tree: BuiltTree) -> None:
    utt = dataclasses.replace(tree.spec[4], label="bor")
    line_no = tree.replace_line(tree.spec[4], consensus_line(utt))
    _assert_format_error_at(tree, utt.dialog, line_no, "unknown label 'bor'")


def test_bad_utterance_id(tree: BuiltTree) -> None:
    utt = tree.spec[2]
    bad = consensus_line(utt).replace(utt.utt_id, f"{utt.dialog}_X{utt.turn:03d}")
    line_no = tree.replace_line(utt, bad)
    _assert_format_error_at(tree, utt.dialog, line_no, "bad utterance id")


def test_session_mismatch(tree: BuiltTree) -> None:
    utt = _first(tree, session=2)
    moved = consensus_line(utt).replace(utt.utt_id, utt.utt_id.replace("Ses02", "Ses03", 1))
    line_no = tree.replace_line(utt, moved)
    _assert_format_error_at(tree, utt.dialog, line_no, "session 3", "Session2")


def test_duplicate_id_names_both_places(tree: BuiltTree) -> None:
    first = tree.spec[0]
    # Another dialog of the same session, so that the session check does not fire first.
    other = next(u for u in tree.spec if u.session == first.session and u.dialog != first.dialog)
    line_no = tree.replace_line(other, consensus_line(dataclasses.replace(first, start=other.start)))
    with pytest.raises(IemocapFormatError) as info:
        read_iemocap(tree.root)
    message = str(info.value)
    assert f"{tree.label_file(other.dialog)}:{line_no}:" in message
    assert f"{tree.label_file(first.dialog)}:{tree.line_no(first)}" in message


def test_trailing_whitespace_is_tolerated(tree: BuiltTree) -> None:
    path = tree.label_file(tree.spec[0].dialog)
    path.write_text("\n".join(line + " \t " for line in path.read_text().split("\n")))
    assert summarize(read_iemocap(tree.root)) == tree.counts()


# --------------------------------------------------------------------------- audio


def test_missing_wav_is_reported(tree: BuiltTree) -> None:
    utt = _first(tree)
    tree.wav(utt).unlink()
    with pytest.raises(MissingAudioError) as info:
        read_iemocap(tree.root)
    assert info.value.missing == (tree.wav(utt),)
    assert str(tree.wav(utt)) in str(info.value)
    assert str(info.value).startswith("1 WAV file")


def test_all_missing_wavs_are_counted(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, make_spec((1, 2), turns=12))
    kept = tree.kept()
    assert len(kept) > 20
    for utt in kept:
        tree.wav(utt).unlink()
    with pytest.raises(MissingAudioError) as info:
        read_iemocap(tree.root)
    assert set(info.value.missing) == {tree.wav(u) for u in kept}
    message = str(info.value)
    assert message.startswith(f"{len(kept)} WAV file")
    assert f"... and {len(kept) - 20} more" in message
    assert sum(str(tree.root) in line for line in message.splitlines()) == 20


def test_missing_wav_of_a_dropped_utterance_is_fine(tree: BuiltTree) -> None:
    tree.wav(_first(tree, kept=False)).unlink()
    assert summarize(read_iemocap(tree.root)) == tree.counts()


def test_corrupt_wav_is_an_audio_error_naming_it(tree: BuiltTree) -> None:
    wav = tree.wav(_first(tree))
    wav.write_bytes(random.Random(0).randbytes(2000))
    with pytest.raises(AudioError, match=re.escape(str(wav))):
        read_iemocap(tree.root)


def test_errors_survive_pickling(tmp_path: Path) -> None:
    # Readers may run in worker processes; their errors must cross back intact.
    missing = MissingAudioError([tmp_path / "a.wav", tmp_path / "b.wav"])
    assert pickle.loads(pickle.dumps(missing)).missing == missing.missing
    error = IemocapFormatError(tmp_path / "x.txt", 7, "bad", "line")
    assert str(pickle.loads(pickle.dumps(error))) == str(error) == f"{tmp_path / 'x.txt'}:7: bad: 'line'"


# --------------------------------------------------------------------------- the root


def test_not_an_iemocap_root(tmp_path: Path) -> None:
    with pytest.raises(NotIemocapRootError, match="SessionN/dialog/EmoEvaluation/"):
        read_iemocap(tmp_path)
    (tmp_path / "Session1" / "dialog").mkdir(parents=True)
    with pytest.raises(NotIemocapRootError, match=re.escape(str(tmp_path))):
        resolve_root(tmp_path)
    with pytest.raises(NotIemocapRootError, match="not a directory"):
        resolve_root(tmp_path / "nowhere")


def test_session_folder_without_labels_is_an_error(tree: BuiltTree) -> None:
    (tree.root / "Session3").mkdir()
    with pytest.raises(NotIemocapRootError, match="Session3"):
        read_iemocap(tree.root)


def test_no_root_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IEMOCAP_ROOT", raising=False)
    with pytest.raises(NotIemocapRootError, match=r"--iemocap ROOT.*IEMOCAP_ROOT"):
        read_iemocap()


def test_iemocap_root_env_is_honoured(full_tree: BuiltTree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IEMOCAP_ROOT", str(full_tree.root))
    assert resolve_root(None) == full_tree.root
    assert summarize(read_iemocap()) == full_tree.counts()


# --------------------------------------------------------------------------- the release's counts


def test_full_looking_tree_with_other_counts_warns(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, make_spec(ALL_SESSIONS, turns=3))
    found = tree.counts()
    with pytest.warns(IemocapCountWarning) as record:
        records = read_iemocap(tree.root)
    message = str(record[0].message)
    assert f"total: expected 5531, found {found['total']}" in message
    assert f"by_emotion.neu: expected 1708, found {found['by_emotion'].get('neu', 0)}" in message
    assert f"by_gender.M: expected 2882, found {found['by_gender']['M']}" in message
    assert f"by_session.5: expected 1241, found {found['by_session']['5']}" in message
    assert summarize(records) == found


def test_generated_corpus_filtered_reads_and_custom_maps_do_not_warn(full_tree: BuiltTree, tmp_path: Path) -> None:
    # filterwarnings = error turns any warning here into a failure.
    read_iemocap(full_tree.root)
    unmarked = build_tree(tmp_path, make_spec(ALL_SESSIONS, turns=3))
    read_iemocap(unmarked.root, sessions=[1, 2])
    read_iemocap(unmarked.root, {**DEFAULT_CLASS_MAP, "fru": "fru"})
    four_sessions = build_tree(tmp_path / "four", make_spec((1, 2, 3, 4), turns=3))
    read_iemocap(four_sessions.root)


def test_matching_counts_do_not_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = build_tree(tmp_path, make_spec(ALL_SESSIONS, turns=3))
    monkeypatch.setattr(iemocap, "EXPECTED_COUNTS", tree.counts())
    read_iemocap(tree.root)


def test_expected_counts_are_consistent() -> None:
    total = EXPECTED_COUNTS["total"]
    for field in ("by_emotion", "by_session", "by_gender"):
        assert sum(EXPECTED_COUNTS[field].values()) == total
    assert list(EXPECTED_COUNTS["by_emotion"]) == list(CLASSES)


def _real_release() -> str | None:
    root = os.environ.get("IEMOCAP_ROOT")
    if not root or (Path(root) / MARKER).exists():
        return None
    if not all((Path(root) / f"Session{n}" / "dialog" / "EmoEvaluation").is_dir() for n in ALL_SESSIONS):
        return None
    return root


@pytest.mark.skipif(_real_release() is None, reason="IEMOCAP_ROOT does not point at a full IEMOCAP release")
def test_real_release_has_the_published_counts() -> None:
    assert summarize(read_iemocap(_real_release())) == EXPECTED_COUNTS


# --------------------------------------------------------------------------- summaries and provenance


def test_summarize_shape_and_order(full_tree: BuiltTree) -> None:
    summary = summarize(reversed(read_iemocap(full_tree.root)))
    assert list(summary) == ["total", "by_emotion", "by_session", "by_gender"]
    assert list(summary["by_emotion"]) == list(CLASSES)
    assert list(summary["by_session"]) == ["1", "2", "3", "4", "5"]
    assert list(summary["by_gender"]) == ["F", "M"]


def test_summarize_of_nothing() -> None:
    assert summarize([]) == {"total": 0, "by_emotion": {}, "by_session": {}, "by_gender": {"F": 0, "M": 0}}


def test_corpus_source(full_tree: BuiltTree, tree: BuiltTree) -> None:
    assert corpus_source(full_tree.root) == {"kind": "embedded", **SYNTHETIC_MARKER}
    assert corpus_source(tree.root) == {"kind": "iemocap", "root": str(tree.root)}


# --------------------------------------------------------------------------- property: consensus lines

_times = st.integers(0, 10**7).map(lambda k: k / 10_000)
_scores = st.integers(10_000, 50_000).map(lambda k: k / 10_000)
_dialogs = st.builds(
    lambda session, mocap, suffix: f"Ses{session:02d}{mocap}_{suffix}",
    st.integers(1, 5),
    st.sampled_from("FM"),
    st.from_regex(r"(impro|script)0[1-8](_[1-3])?[ab]?", fullmatch=True),
)
_utts = st.builds(
    Utt,
    session=st.integers(1, 5),
    dialog=_dialogs,
    gender=st.sampled_from("FM"),
    turn=st.integers(0, 999),
    label=st.sampled_from(sorted(RAW_LABELS)),
    seconds=_times,
    start=_times,
    vad=st.tuples(_scores, _scores, _scores),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@settings(max_examples=60, deadline=None)
@given(utts=st.lists(_utts, min_size=1, max_size=4), crlf=st.booleans())
def test_consensus_lines_round_trip(scratch: Path, utts: list[Utt], crlf: bool) -> None:
    path = scratch / "Ses01F_impro01.txt"
    path.write_bytes(label_file_text(utts, "\r\n" if crlf else "\n").encode())
    parsed = parse_emo_evaluation(path)
    lines = path.read_text().splitlines()
    assert [p.utt_id for p in parsed] == [u.utt_id for u in utts]
    for line, utt in zip(parsed, utts, strict=True):
        assert line.label == utt.label
        assert line.vad == utt.vad
        assert line.start == utt.start
        assert line.end == float(f"{utt.end:.4f}")
        assert lines[line.line_no - 1].startswith(f"[{utt.start:.4f} - ")
