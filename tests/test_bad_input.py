"""Every bad input the suite refuses or converts, and what the user reads, end to end through the CLI.

Each case builds its input here, runs ``gemo-bench`` in-process (``benchmark.cli.main``) and checks the exit
code and the message: it names the file (and the line or the key) and says what is wrong. The checks
themselves are unit-tested beside their modules (tests/data/test_iemocap.py, test_audio.py,
tests/test_studies.py, tests/test_train.py); this file is the catalogue, seen from the command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.cli import main
from benchmark.data.audio import AudioConversionWarning
from benchmark.data.iemocap import IemocapFormatError, parse_emo_evaluation
from benchmark.data.records import DEFAULT_CLASS_MAP
from benchmark.studies import load_study
from benchmark.tracking import Tracker, resolve_uri
from tests.data.iemocap_tree import BuiltTree, Utt, build_tree, consensus_line, label_file_text, make_spec
from tests.test_runner import STUDY

ERROR = "gemo-bench: error: "


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def tree(tmp_path: Path) -> BuiltTree:
    return build_tree(tmp_path / "IEMOCAP_full_release", make_spec((1, 2)))


def _kept(tree: BuiltTree, index: int = 0) -> Utt:
    return [u for u in tree.spec if u.label in DEFAULT_CLASS_MAP][index]


def _later_block(tree: BuiltTree) -> Utt:
    """A block after the first of its file, so that a line number has to be counted to be right."""
    return [u for u in tree.spec if u.dialog == tree.spec[0].dialog][3]


# --------------------------------------------------------------------------- the corpus: audio and labels
# Each damage function breaks a fresh two-session tree and returns the fragments the message must hold.


def _missing_wav(tree: BuiltTree) -> list[str]:
    wav = tree.wav(_kept(tree))
    wav.unlink()
    return ["1 WAV file(s) missing for labelled utterances:", f"\n  {wav}"]


def _empty_wav(tree: BuiltTree) -> list[str]:
    wav = tree.wav(_kept(tree))
    sf.write(wav, np.zeros(0, dtype=np.float32), 16_000, subtype="PCM_16")  # a header, no frames
    return [f"{wav}: audio file holds no samples"]


def _zero_byte_wav(tree: BuiltTree) -> list[str]:
    wav = tree.wav(_kept(tree))
    wav.write_bytes(b"")
    return [f"{wav}: not a readable audio file"]


def _wav_cut_in_its_header(tree: BuiltTree) -> list[str]:
    wav = tree.wav(_kept(tree))
    wav.write_bytes(wav.read_bytes()[:20])
    return [f"{wav}: not a readable audio file"]


def _wav_cut_in_its_data(tree: BuiltTree) -> list[str]:
    # libsndfile would read the half that is left; the header still says how long the file was
    utt = _kept(tree)
    wav = tree.wav(utt)
    data = wav.read_bytes()
    wav.write_bytes(data[: 44 + (len(data) - 44) // 2])
    return ["1 WAV file(s) cut short", f"\n  {wav}: {utt.frames // 2} of {utt.frames} frames"]


def _non_audio_wav(tree: BuiltTree) -> list[str]:
    wav = tree.wav(_kept(tree))
    wav.write_text("<html>Access denied</html>\n" * 10)  # what a failed download often saves
    return [f"{wav}: not a readable audio file"]


def _malformed_line(tree: BuiltTree) -> list[str]:
    utt = _later_block(tree)
    bad = consensus_line(utt).replace("\t", " ")  # an editor that turned tabs into spaces
    line_no = tree.replace_line(utt, bad)
    return [f"{tree.label_file(utt.dialog)}:{line_no}: expected a consensus line", repr(bad)]


def _unknown_label(tree: BuiltTree) -> list[str]:
    utt = _later_block(tree)
    line_no = tree.replace_line(utt, consensus_line(utt).replace(f"\t{utt.label}\t", "\tbored\t"))
    return [f"{tree.label_file(utt.dialog)}:{line_no}: unknown label 'bored'"]


def _block_starting_with_an_annotator_line(tree: BuiltTree) -> list[str]:
    utt = _later_block(tree)
    line_no = tree.replace_line(utt, "C-E2:\tNeutral;\t()")
    return [f"{tree.label_file(utt.dialog)}:{line_no}: expected a consensus line", "'C-E2:\\tNeutral;\\t()'"]


def _label_file_not_utf8(tree: BuiltTree) -> list[str]:
    path = tree.label_file(tree.spec[0].dialog)
    # an annotator's comment saved as Latin-1 on line 4
    path.write_bytes(path.read_bytes().replace(b"()", "(très calme)".encode("latin-1"), 1))
    return [f"{path}:4: not a UTF-8 text file (byte 0xe8 cannot be decoded)"]


def _empty_label_file(tree: BuiltTree) -> list[str]:
    path = tree.label_file(tree.spec[0].dialog)
    path.write_text("")
    return [f"{path}: empty file, expected an EmoEvaluation label file"]


CORPUS_CASES: dict[str, Callable[[BuiltTree], list[str]]] = {
    "missing WAV": _missing_wav,
    "empty WAV (header, no frames)": _empty_wav,
    "zero-byte WAV": _zero_byte_wav,
    "WAV cut inside its header": _wav_cut_in_its_header,
    "WAV cut inside its data": _wav_cut_in_its_data,
    "non-audio WAV": _non_audio_wav,
    "malformed EmoEvaluation line": _malformed_line,
    "unknown label": _unknown_label,
    "block starting with an annotator line": _block_starting_with_an_annotator_line,
    "EmoEvaluation file not UTF-8": _label_file_not_utf8,
    "empty EmoEvaluation file": _empty_label_file,
}


@pytest.mark.parametrize("damage", CORPUS_CASES.values(), ids=CORPUS_CASES.keys())
def test_a_broken_corpus_is_one_clear_error(tree: BuiltTree, capsys, damage) -> None:
    fragments = damage(tree)
    code, out, err = cli(capsys, "data", "summary", "--iemocap", tree.root, "--json")
    assert code == 2 and out == ""
    assert err.startswith(ERROR)
    for fragment in fragments:
        assert fragment in err, err


NOT_A_DIRECTORY = "not a directory (expected an IEMOCAP root with SessionN/dialog/EmoEvaluation/)"
NOT_A_ROOT = "not an IEMOCAP root: expected at least one SessionN/dialog/EmoEvaluation/ (N in 1..5)"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("Session1", NOT_A_ROOT),
        ("Session1/dialog/EmoEvaluation/Ses01F_impro01.txt", NOT_A_DIRECTORY),
        ("nowhere", NOT_A_DIRECTORY),
    ],
    ids=["a session folder", "a file", "absent"],
)
def test_a_root_that_is_not_iemocap_is_one_clear_error(tree: BuiltTree, capsys, where: str, message: str) -> None:
    code, out, err = cli(capsys, "data", "summary", "--iemocap", tree.root / where)
    assert code == 2 and out == ""
    assert err == f"{ERROR}{tree.root / where}: {message}\n"


def test_other_rates_and_stereo_are_converted_and_noted_once(tree: BuiltTree, capsys) -> None:
    kept = [u for u in tree.spec if u.label in DEFAULT_CLASS_MAP]
    rng = np.random.default_rng(0)
    for utt in kept[:4]:  # 4 files at 44.1 kHz: the warning names 3 and counts the rest
        sf.write(tree.wav(utt), rng.uniform(-0.3, 0.3, round(utt.seconds * 44_100)), 44_100, subtype="PCM_16")
    stereo = kept[4]
    sf.write(tree.wav(stereo), rng.uniform(-0.3, 0.3, (stereo.frames, 2)), 16_000, subtype="PCM_16")

    with pytest.warns(AudioConversionWarning) as record:
        code, out, _ = cli(capsys, "data", "summary", "--iemocap", tree.root, "--json")
    assert code == 0  # usable: every utterance is kept
    summary = json.loads(out)
    assert {key: summary[key] for key in tree.counts()} == tree.counts()
    (warning,) = record.list
    message = str(warning.message)
    rel = [str(tree.wav(u).relative_to(tree.root)) for u in kept]
    n = len(kept)
    assert message == (
        f"{tree.root}: 4 of {n} WAV files resampled to 16 kHz ({rel[0]} 44100 Hz, {rel[1]} 44100 Hz, "
        f"{rel[2]} 44100 Hz, ... and 1 more); 1 of {n} WAV files downmixed to mono ({rel[4]} 2 channels); "
        "loading converts them each time"
    )


# --------------------------------------------------------------------------- study files


@pytest.fixture
def study_text(tmp_path: Path) -> str:
    return STUDY.format(epochs=1, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


STUDY_CASES = {
    "unknown top-level key": ('name = "mini"', 'name = "mini"\ncolour = "red"', "unknown key 'colour'"),
    "unknown key in a table": ("batch_size = 8", "batch_size = 8\nepochz = 3", "train.epochz: unknown key (allowed: "),
    "wrong type": ("epochs = 1", 'epochs = "one"', "train.epochs: expected an integer, got str 'one'"),
    "alpha above 1": ("alphas = [0.8]", "alphas = [0.8, 1.5]", "method.alphas: alpha must be in [0, 1], got 1.5"),
    "unknown encoder preset": (
        'audio = ["tiny-wav2vec2"]',
        'audio = ["tiny-wav2vecc"]',
        "encoders.audio[0]: unknown audio encoder 'tiny-wav2vecc'",
    ),
    "not TOML": ("[train]", "[train", "not valid TOML"),
}


@pytest.mark.parametrize("command", [["run"], ["report", "table"]])
@pytest.mark.parametrize(("old", "new", "message"), STUDY_CASES.values(), ids=STUDY_CASES.keys())
def test_a_bad_study_file_is_one_clear_error(tmp_path, study_text, capsys, command, old, new, message) -> None:
    assert old in study_text
    path = tmp_path / "mini.toml"
    path.write_text(study_text.replace(old, new))
    code, out, err = cli(capsys, *command, path)
    assert code == 2 and out == ""
    assert err.startswith(f"{ERROR}{path}: ") and message in err, err
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything was touched


def test_a_bad_override_is_one_clear_error(tmp_path, study_text, capsys) -> None:
    path = tmp_path / "mini.toml"
    path.write_text(study_text)
    code, _, err = cli(capsys, "run", path, "method.alphas=[-0.1]")
    assert code == 2
    assert err == f"{ERROR}{path}: method.alphas: alpha must be in [0, 1], got -0.1\n"


def test_a_study_whose_iemocap_root_is_not_one_is_one_clear_error(tmp_path, study_text, capsys) -> None:
    empty = tmp_path / "not_iemocap"
    empty.mkdir()
    path = tmp_path / "mini.toml"
    path.write_text(study_text.replace('corpus = "embedded"', f'corpus = "iemocap"\nroot = "{empty}"'))
    code, out, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == f"{ERROR}{empty}: {NOT_A_ROOT}"


@pytest.mark.slow
def test_a_non_finite_loss_fails_its_cell_naming_it(tmp_path, study_text, capsys) -> None:
    path = tmp_path / "mini.toml"
    path.write_text(study_text.replace('variants = ["emo-clap", "sl-gemo-clap"]', 'variants = ["emo-clap"]'))
    code, out, err = cli(capsys, "run", path, "protocol.folds=[1]", "train.lr=1e30", "--no-progress")
    assert code == 1
    assert "0 cells trained, 0 already finished, 1 failed" in out
    failed = r"  failed: tiny-wav2vec2 emo-clap s0 fold 1: NonFiniteLossError: non-finite loss \((nan|-?inf)\)"
    assert re.search(failed + r" at epoch 1, batch \d+ \(fold 1, emo-clap", err), err
    study = load_study(path)
    (run,) = Tracker(resolve_uri(study.tracking.uri), study.experiment_name).runs("cell")
    assert run.status == "FAILED" and "non-finite loss" in run.tags["gemo.end_reason"]


# --------------------------------------------------------------------------- the label parser, fuzzed

GOOD_UTTS = [
    Utt(1, "Ses01F_impro01", "F", 0, "neu", 1.5, 2.0),
    Utt(1, "Ses01F_impro01", "M", 1, "exc", 2.25, 4.0, (3.5, 4.0, 2.0)),
    Utt(1, "Ses01F_impro01", "F", 2, "xxx", 0.75, 7.5),
]
GOOD_LINES = label_file_text(GOOD_UTTS).split("\n")

_line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=80)


@st.composite
def _damaged_line(draw) -> str:
    """A line of the good file with one character changed, inserted or removed: the likely corruptions."""
    line = draw(st.sampled_from([line for line in GOOD_LINES if line]))
    i = draw(st.integers(0, len(line)))
    char = draw(st.characters(codec="utf-8", exclude_characters="\r\n"))
    kind = draw(st.sampled_from(["replace", "insert", "delete"]))
    if kind == "insert":
        return line[:i] + char + line[i:]
    return line[:i] + (char if kind == "replace" else "") + line[i + 1 :]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "Ses01F_impro01.txt"


@settings(max_examples=300, deadline=None)
@given(line_no=st.integers(1, len(GOOD_LINES)), new=st.one_of(_line_text, _damaged_line()))
def test_any_damaged_line_parses_or_is_named_by_file_and_line(scratch: Path, line_no: int, new: str) -> None:
    lines = list(GOOD_LINES)
    lines[line_no - 1] = new
    scratch.write_bytes("\n".join(lines).encode())
    try:
        parsed = parse_emo_evaluation(scratch)
    except IemocapFormatError as exc:
        # the error points at a real line of the file and quotes it as it stands there
        assert exc.path == scratch
        assert exc.line_no is not None and 1 <= exc.line_no <= len(lines)
        stands = lines[exc.line_no - 1].rstrip()
        assert exc.line == (stands.removeprefix("\ufeff") if exc.line_no == 1 else stands)  # a BOM is no text
        assert str(exc).startswith(f"{scratch}:{exc.line_no}: ")
        return
    # accepted: then every consensus line is one of the file's own lines, read back as written
    for label in parsed:
        assert f"\t{label.utt_id}\t{label.label}\t" in lines[label.line_no - 1]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_parse_or_are_a_format_error_naming_the_file(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    try:
        parse_emo_evaluation(scratch)
    except IemocapFormatError as exc:
        assert str(exc).startswith(str(scratch))


@pytest.mark.slow
def test_train_cell_non_finite_loss_is_one_clear_error(capsys):
    code = main(
        [
            "train-cell",
            "--synth-size",
            "100",
            "--audio-encoder",
            "tiny-wav2vec2",
            "--text-encoder",
            "tiny-roberta",
            "--variant",
            "emo-clap",
            "--fold",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-seconds",
            "1",
            "--proj-dim",
            "16",
            "--lr",
            "1e30",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gemo-bench: error: non-finite loss (nan) at epoch 1, batch")
