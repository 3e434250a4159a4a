"""The embedded corpus: a generated IEMOCAP-format tree with a known gender-emotion mechanism.

:func:`write_corpus` writes a complete tree in IEMOCAP's own on-disk layout and syntax (5 sessions, one
female and one male speaker each, improvised and scripted dialogs, ``EmoEvaluation`` label files with
annotator lines, decoy sub-folders, 16 kHz mono 16-bit WAVs), so the suite's normal IEMOCAP reader reads it.
It lets the whole suite run offline, and it tests the paper's hypothesis -- gender information helps
emotion recognition -- where the ground truth is known.

The mechanism
-------------
Every speaker has a *prosodic baseline* typical of their gender (:data:`GENDER_BASELINES`): F0 (female
195 Hz, male 125 Hz), loudness, speaking rate, harmonic tilt (female -7, male -5 dB/octave) and
breathiness (female -24, male -28 dB), each jittered per speaker (:data:`SPEAKER_JITTER`, F0 by 0.8
semitones), and a formant scale (female 1.17, male 1.0) that stays with the gender and is the audible cue
to it.

Emotions shift prosody *relative to the speaker's baseline* (:data:`EMOTION_PROFILES`):

=======  =======  ==========  =========  ====  =============  ===========
emotion  F0 (st)  range (st)  energy dB  rate  tilt (dB/oct)  breath (dB)
=======  =======  ==========  =========  ====  =============  ===========
neu       0.0     1.5          0.0       1.00   0.0            0.0
hap      +5.0     2.4         +2.5       1.04  +0.5           +1.0
exc      +5.5     2.5         +3.0       1.05  +0.8           +0.5
ang      +4.5     1.8         +3.5       1.05  +2.0           -2.0
sad      -2.5     1.2         -2.0       0.93  -1.0           +2.0
=======  =======  ==========  =========  ====  =============  ===========

(positive tilt = flatter spectrum, pressed voice; positive breath = more aspiration noise). Every utterance
adds Gaussian variation to every cue (:data:`UTTERANCE_SPREAD`: F0 1.5 st, range x/ e^0.3, energy 2.5 dB,
rate x/ e^0.08, tilt 1.5 dB/oct, breath 3 dB, all multiplied by ``SynthConfig.difficulty``), so classes
overlap on each cue and no single cue separates them. Happy and angry share F0 and energy and differ
mainly in voice quality (tilt, breathiness) and F0 range; neutral and sad overlap moderately on every cue.

The gender gap in F0 (7.7 semitones) is about the size of the arousal shifts, so *absolute* F0 is ambiguous
across genders: an aroused male (125 Hz + 5 st = 168 Hz) sits where a sad female does (195 Hz - 2.5 st =
168 Hz), 2.5 semitones below a neutral female. A model that ignores gender confuses them; F0 relative to
the gender baseline is informative.

Three evaluators label each utterance (``C-E1..C-E3`` lines; the speaker's own rating follows as ``C-F1`` or
``C-M1``), as in the release. Two or three of them give the consensus label: all three where the utterance's
cues are clearly its class's. Its *margin* is how much nearer its cues lie to its own class's shift than to
any other 4-class one (squared distance in units of the per-utterance spread, relative to the speaker's own
baseline, as a listener hears it); the chance that all three agree is ``sigmoid((margin - 4) / 2.5)``, and a
dissenting evaluator names the nearest other class. So label agreement tracks how ambiguous an utterance
sounds, not the speaker's gender. ``xxx`` utterances get three different words.

The control twin (``SynthConfig(control=True)``) has the same speakers, baselines, labels and per-utterance
draws, but in a seeded 2 or 3 of the 5 sessions the two speakers swap their *prosodic* baselines (the
female gets the male's F0, loudness, rate, tilt and breathiness, and vice versa) while the formant scale
stays with the gender. The set of baselines and the emotion shifts are identical, but knowing a speaker's
gender no longer tells their F0 baseline. The marker file records which sessions were swapped.

Randomness comes only from ``numpy.random.Generator`` objects seeded by ``np.random.SeedSequence`` keys
derived from ``SynthConfig.seed``; the same config writes byte-identical files, and global RNG state is
never touched. :func:`cue_table` returns the latent cues of every utterance from the same draws, without
synthesising audio.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmark.data.records import DEFAULT_CLASS_MAP, GENDERS, SAMPLE_RATE

MARKER = "GEMO_SYNTHETIC.json"
# Bump whenever the generated files change, so cached copies of an older generator are not reused.
# 2: three evaluators whose agreement follows each utterance's cue margin, and the speaker's self-rating
GENERATOR_VERSION = 2
DEFAULT_SIZE = 600
CACHE_ENV = "GEMO_CACHE"
MAX_SIZE = 100_000

SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"

# IEMOCAP's 4-class raw counts (hap and exc are written separately and merged by the class map).
FOUR_CLASS_COUNTS: Mapping[str, int] = {"neu": 1708, "hap": 595, "exc": 1041, "ang": 1103, "sad": 1084}
# Relative shares of the labels the default class map drops, added on top of the 4-class utterances.
EXTRA_SHARES: Mapping[str, int] = {"fru": 45, "xxx": 38, "sur": 8, "fea": 5, "oth": 2, "dis": 2}

# How annotators spell each raw label on their own lines; the Categorical/ files say "Neutral state".
CATEGORY_WORDS: Mapping[str, str] = {
    "neu": "Neutral",
    "hap": "Happiness",
    "exc": "Excited",
    "ang": "Anger",
    "sad": "Sadness",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
# Mean (valence, activation, dominance) ratings per raw label, on IEMOCAP's 1..5 scale.
VAD_MEANS: Mapping[str, tuple[float, float, float]] = {
    "neu": (3.0, 2.3, 2.6),
    "hap": (3.9, 3.0, 3.0),
    "exc": (3.8, 3.6, 3.4),
    "ang": (1.9, 3.7, 3.8),
    "sad": (2.0, 2.2, 2.3),
    "fru": (2.0, 3.2, 3.3),
    "sur": (3.4, 3.6, 3.0),
    "fea": (2.1, 3.4, 2.4),
    "dis": (1.8, 3.0, 3.2),
    "oth": (2.8, 2.8, 2.8),
    "xxx": (2.7, 2.9, 2.9),
}

# Scenario names per session, in the order they are used; each scenario is recorded twice, once with the
# female and once with the male actor wearing the mocap markers (Ses01F_impro01 and Ses01M_impro01).
_SCENARIOS: tuple[str, ...] = (
    "impro01",
    "script01_1",
    "impro02",
    "script01_2",
    "impro03",
    "script02_1",
    "impro04",
    "script02_2",
    "impro05",
    "script03_1",
    "impro06",
    "script03_2",
    "impro07",
    "script01_3",
    "impro08",
)
# Session 5 of the release names one take of the first script with a trailing letter.
_SESSION5_RENAMES: Mapping[str, str] = {"Ses05M_script01_1": "Ses05M_script01_1b"}
# Target number of utterances per dialog when splitting a session.
_DIALOG_SIZE = 20


@dataclass(frozen=True)
class Profile:
    """Prosodic shifts of one emotion, relative to the speaker's baseline.

    Attributes:
        f0_st: F0 level, semitones above the speaker's baseline.
        range_st: F0 range, standard deviation of the syllable accents in semitones.
        energy_db: level of the voiced parts, dB above the speaker's loudness.
        rate: factor on the speaker's speaking rate.
        tilt_db: added to the speaker's harmonic tilt in dB/octave (positive = flatter, pressed voice).
        breath_db: added to the speaker's aspiration-to-voice ratio in dB (positive = breathier).
    """

    f0_st: float
    range_st: float
    energy_db: float
    rate: float
    tilt_db: float
    breath_db: float


@dataclass(frozen=True)
class Baseline:
    """The prosodic baseline of a speaker (what the control corpus swaps between genders).

    Attributes:
        f0_hz: F0 at the neutral level.
        loudness_db: RMS level of neutral voiced speech, dBFS.
        rate: syllables per second.
        tilt_db: harmonic tilt, dB per octave (negative).
        breath_db: aspiration noise relative to the harmonic part, dB.
    """

    f0_hz: float
    loudness_db: float
    rate: float
    tilt_db: float
    breath_db: float


EMOTION_PROFILES: Mapping[str, Profile] = {
    "neu": Profile(0.0, 1.5, 0.0, 1.00, 0.0, 0.0),
    "hap": Profile(5.0, 2.4, 2.5, 1.04, 0.5, 1.0),
    "exc": Profile(5.5, 2.5, 3.0, 1.05, 0.8, 0.5),
    "ang": Profile(4.5, 1.8, 3.5, 1.05, 2.0, -2.0),
    "sad": Profile(-2.5, 1.2, -2.0, 0.93, -1.0, 2.0),
    "fru": Profile(2.0, 1.6, 2.0, 1.02, 1.2, -1.0),
    "sur": Profile(6.0, 2.8, 2.0, 1.00, 0.5, 1.0),
    "fea": Profile(4.0, 2.2, 0.5, 1.06, 0.0, 2.5),
    "dis": Profile(-0.5, 1.6, 0.5, 0.97, 0.5, 0.0),
    "oth": Profile(0.0, 1.5, 0.0, 1.00, 0.0, 0.0),
}
# "xxx" (no annotator agreement) utterances blend two of these profiles.
_XXX_POOL: tuple[str, ...] = ("neu", "hap", "ang", "sad", "fru")

GENDER_BASELINES: Mapping[str, Baseline] = {
    "F": Baseline(f0_hz=195.0, loudness_db=-29.0, rate=4.6, tilt_db=-7.0, breath_db=-24.0),
    "M": Baseline(f0_hz=125.0, loudness_db=-28.0, rate=4.4, tilt_db=-5.0, breath_db=-28.0),
}
FORMANT_SCALES: Mapping[str, float] = {"F": 1.17, "M": 1.0}
# Per-speaker jitter (standard deviations): F0 in semitones, rate as a log factor, the rest in dB.
SPEAKER_JITTER = Baseline(f0_hz=0.8, loudness_db=1.5, rate=0.06, tilt_db=0.8, breath_db=1.5)
_FORMANT_JITTER = 0.03
# Per-utterance variation of every cue at difficulty 1 (standard deviations; range and rate as log factors).
UTTERANCE_SPREAD: Mapping[str, float] = {
    "f0_st": 1.5,
    "range": 0.3,
    "energy_db": 2.5,
    "rate": 0.08,
    "tilt_db": 1.5,
    "breath_db": 3.0,
}

# Vowel formants (F1, F2, F3) in Hz for a male vocal tract; other speakers scale them.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [300.0, 870.0, 2240.0],  # u
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
        [660.0, 1720.0, 2410.0],  # ae
        [490.0, 1350.0, 1690.0],  # er
    ]
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_HOP = 80  # 5 ms: harmonic amplitudes are held per hop
_HARMONIC_TOP = 5500.0  # no harmonic above this; aspiration and fricative noise fill the band above
_HARMONIC_TAPER = 1000.0
_NOISE_FLOOR_DB = -62.0

# Seed-sequence keys of the independent random streams.
_STREAM_LAYOUT, _STREAM_SPEAKERS, _STREAM_SWAP, _STREAM_UTTERANCES = 0, 1, 2, 3
_UTT_CUES, _UTT_SIGNAL, _UTT_ANNOTATION = 0, 1, 2


@dataclass(frozen=True)
class SynthConfig:
    """What the embedded corpus is generated from; equal configs give byte-identical trees.

    Attributes:
        seed: the only source of randomness.
        size: number of 4-class utterances (neu, hap, exc, ang, sad) in the corpus.
        control: the control twin: prosodic baselines decoupled from gender in 2 or 3 sessions.
        difficulty: scale on the per-utterance variation of every cue (1.0 = the documented spread; the
            default 0.7 is calibrated so a tiny random-init preset reaches a held-out UAR of about 0.6).
        extra_fraction: utterances with labels the default class map drops (fru, xxx, ...), as a
            fraction of ``size``, added on top.
        mean_duration: mean utterance length in seconds (gamma distributed, then clipped).
        min_duration: shortest utterance, seconds.
        max_duration: longest utterance, seconds.
    """

    seed: int = 0
    size: int = DEFAULT_SIZE
    control: bool = False
    difficulty: float = 0.7
    extra_fraction: float = 0.15
    mean_duration: float = 2.5
    min_duration: float = 1.0
    max_duration: float = 6.0

    def __post_init__(self) -> None:
        for name in ("seed", "size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"SynthConfig.{name} must be an int, got {value!r}")
        if self.seed < 0:
            raise ValueError(f"SynthConfig.seed must be >= 0, got {self.seed}")
        if not 50 <= self.size <= MAX_SIZE:
            raise ValueError(f"SynthConfig.size must be in [50, {MAX_SIZE}], got {self.size}")
        if not isinstance(self.control, bool):
            raise ValueError(f"SynthConfig.control must be a bool, got {self.control!r}")
        for name in ("difficulty", "extra_fraction", "mean_duration", "min_duration", "max_duration"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"SynthConfig.{name} must be a finite number, got {value!r}")
        if not 0 < self.difficulty <= 10:
            raise ValueError(f"SynthConfig.difficulty must be in (0, 10], got {self.difficulty}")
        if not 0 <= self.extra_fraction <= 1:
            raise ValueError(f"SynthConfig.extra_fraction must be in [0, 1], got {self.extra_fraction}")
        if self.min_duration < 0.5:
            raise ValueError(f"SynthConfig.min_duration must be >= 0.5 s, got {self.min_duration}")
        if not self.min_duration < self.max_duration <= 30:
            raise ValueError(f"SynthConfig.max_duration must be in (min_duration, 30] s, got {self.max_duration}")
        if not self.min_duration <= self.mean_duration <= self.max_duration:
            raise ValueError(
                f"SynthConfig.mean_duration must lie in [min_duration, max_duration], got {self.mean_duration}"
            )


# --------------------------------------------------------------------------- the plan (no audio)


@dataclass(frozen=True)
class Speaker:
    """One speaker of the corpus.

    Attributes:
        id: ``Ses01F`` style id.
        session: 1..5.
        gender: ``"F"`` or ``"M"``.
        formant_scale: vocal-tract scale (stays with the gender in the control corpus).
        baseline: the prosodic baseline this speaker uses in this corpus.
        swapped: whether the baseline is the other gender's (control corpus only).
    """

    id: str
    session: int
    gender: str
    formant_scale: float
    baseline: Baseline
    swapped: bool


@dataclass(frozen=True)
class _Cues:
    f0_rel_st: float
    range_st: float
    energy_db: float
    rate: float
    tilt_db: float
    breath_db: float
    duration: float


@dataclass(frozen=True)
class _Utt:
    index: int
    id: str
    session: int
    dialog: str
    gender: str
    raw_label: str
    cues: _Cues
    start: float

    @property
    def frames(self) -> int:
        return round(self.cues.duration * SAMPLE_RATE)

    @property
    def end(self) -> float:
        return self.start + self.frames / SAMPLE_RATE


@dataclass(frozen=True)
class _Plan:
    config: SynthConfig
    speakers: Mapping[str, Speaker]
    swapped_sessions: tuple[int, ...]
    utterances: tuple[_Utt, ...]

    def dialogs(self) -> dict[str, list[_Utt]]:
        out: dict[str, list[_Utt]] = {}
        for utt in self.utterances:
            out.setdefault(utt.dialog, []).append(utt)
        return out


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for one named stream of ``seed`` (no shared or global state)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def label_counts(config: SynthConfig) -> dict[str, int]:
    """How many utterances of each raw label the corpus of ``config`` holds (4-class ones first)."""
    counts = _apportion(FOUR_CLASS_COUNTS, config.size)
    n_extra = round(config.extra_fraction * config.size)
    counts.update(_apportion(EXTRA_SHARES, n_extra))
    return {label: n for label, n in counts.items() if n > 0}


def _apportion(shares: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` in proportion to ``shares`` (largest remainder; ties broken by order)."""
    weight = sum(shares.values())
    exact = {k: total * v / weight for k, v in shares.items()}
    out = {k: math.floor(x) for k, x in exact.items()}
    by_remainder = sorted(shares, key=lambda k: -(exact[k] - out[k]))
    for k in by_remainder[: total - sum(out.values())]:
        out[k] += 1
    return out


def _session_labels(config: SynthConfig, rng: np.random.Generator) -> dict[int, list[str]]:
    """Deal every label over the sessions so each gets its share (within one), then shuffle each session."""
    per_session: dict[int, list[str]] = {s: [] for s in SESSIONS}
    offset = 0
    for label, n in label_counts(config).items():
        for i in range(n):
            per_session[SESSIONS[(offset + i) % len(SESSIONS)]].append(label)
        offset += n
    return {s: [labels[i] for i in rng.permutation(len(labels))] for s, labels in per_session.items()}


def _dialog_names(session: int, n_utterances: int) -> list[str]:
    """Dialog names of a session: scenarios taken in order, each recorded with F then M wearing the markers."""
    n_scenarios = min(len(_SCENARIOS), max(2, round(n_utterances / (2 * _DIALOG_SIZE))))
    names = [f"Ses{session:02d}{mocap}_{scenario}" for scenario in _SCENARIOS[:n_scenarios] for mocap in GENDERS]
    return [_SESSION5_RENAMES.get(name, name) for name in names]


def _speakers(config: SynthConfig) -> tuple[dict[str, Speaker], tuple[int, ...]]:
    """Every speaker with its baseline, and the sessions whose baselines the control corpus swaps."""
    rng = _rng(config.seed, _STREAM_SPEAKERS)
    drawn: dict[tuple[int, str], tuple[float, Baseline]] = {}
    for session in SESSIONS:
        for gender in GENDERS:
            typical = GENDER_BASELINES[gender]
            z = rng.standard_normal(6)
            baseline = Baseline(
                f0_hz=typical.f0_hz * 2 ** (SPEAKER_JITTER.f0_hz * z[0] / 12),
                loudness_db=typical.loudness_db + SPEAKER_JITTER.loudness_db * z[1],
                rate=typical.rate * math.exp(SPEAKER_JITTER.rate * z[2]),
                tilt_db=typical.tilt_db + SPEAKER_JITTER.tilt_db * z[3],
                breath_db=typical.breath_db + SPEAKER_JITTER.breath_db * z[4],
            )
            drawn[session, gender] = (FORMANT_SCALES[gender] * (1 + _FORMANT_JITTER * z[5]), baseline)
    # Drawn whatever `control` says, so the main and control corpora share every other draw.
    swap_rng = _rng(config.seed, _STREAM_SWAP)
    n_swap = int(swap_rng.integers(2, 4))
    swap = tuple(sorted(int(s) for s in swap_rng.choice(SESSIONS, size=n_swap, replace=False)))
    swapped_sessions = swap if config.control else ()
    speakers = {}
    for (session, gender), (scale, _) in drawn.items():
        swapped = session in swapped_sessions
        other = "M" if gender == "F" else "F"
        baseline = drawn[session, other if swapped else gender][1]
        sid = f"Ses{session:02d}{gender}"
        speakers[sid] = Speaker(sid, session, gender, scale, baseline, swapped)
    return speakers, swapped_sessions


def _profile(raw_label: str, rng: np.random.Generator) -> Profile:
    if raw_label != "xxx":
        return EMOTION_PROFILES[raw_label]
    a, b = (EMOTION_PROFILES[_XXX_POOL[i]] for i in rng.choice(len(_XXX_POOL), size=2, replace=False))
    return Profile(*((x + y) / 2 for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True)))


def _draw_cues(config: SynthConfig, raw_label: str, speaker: Speaker, rng: np.random.Generator) -> _Cues:
    """The latent cues of one utterance: emotion shift + per-utterance variation, on the speaker's baseline."""
    z = rng.standard_normal(6)
    profile = _profile(raw_label, rng)
    spread = {k: v * config.difficulty for k, v in UTTERANCE_SPREAD.items()}
    base = speaker.baseline
    # Gamma with shape 4 has a coefficient of variation of 0.5: most turns near the mean, a long tail.
    duration = float(np.clip(rng.gamma(4.0, config.mean_duration / 4.0), config.min_duration, config.max_duration))
    return _Cues(
        f0_rel_st=profile.f0_st + spread["f0_st"] * z[0],
        range_st=profile.range_st * math.exp(spread["range"] * z[1]),
        energy_db=base.loudness_db + profile.energy_db + spread["energy_db"] * z[2],
        rate=base.rate * profile.rate * math.exp(spread["rate"] * z[3]),
        tilt_db=min(base.tilt_db + profile.tilt_db + spread["tilt_db"] * z[4], -1.0),
        breath_db=base.breath_db + profile.breath_db + spread["breath_db"] * z[5],
        duration=duration,
    )


def _plan(config: SynthConfig) -> _Plan:
    """Everything about the corpus except the audio samples and annotation text: ids, labels, cues, times."""
    speakers, swapped_sessions = _speakers(config)
    layout_rng = _rng(config.seed, _STREAM_LAYOUT)
    utterances: list[_Utt] = []
    for session, labels in _session_labels(config, layout_rng).items():
        names = _dialog_names(session, len(labels))
        for dialog, chunk in zip(names, np.array_split(np.arange(len(labels)), len(names)), strict=True):
            first = dialog[5]  # the mocap letter: that actor speaks the first turn
            turns = {"F": 0, "M": 0}
            t = float(layout_rng.uniform(1.0, 8.0))
            for k, i in enumerate(chunk):
                gender = first if k % 2 == 0 else ("M" if first == "F" else "F")
                index = len(utterances)
                cues_rng = _rng(config.seed, _STREAM_UTTERANCES, index, _UTT_CUES)
                cues = _draw_cues(config, labels[i], speakers[f"Ses{session:02d}{gender}"], cues_rng)
                utt = _Utt(
                    index=index,
                    id=f"{dialog}_{gender}{turns[gender]:03d}",
                    session=session,
                    dialog=dialog,
                    gender=gender,
                    raw_label=labels[i],
                    cues=cues,
                    start=round(t, 4),
                )
                utterances.append(utt)
                turns[gender] += 1
                t = utt.end + float(layout_rng.uniform(0.2, 2.5))
    return _Plan(config, speakers, swapped_sessions, tuple(utterances))


def cue_table(config: SynthConfig = SynthConfig()) -> list[dict[str, Any]]:
    """The latent cues of every utterance of the corpus of ``config``, computed without synthesising audio.

    Returns:
        One dict per utterance, in corpus order, with keys ``id``, ``session``, ``dialog``, ``speaker``,
        ``gender``, ``raw_label``, ``emotion`` (class code under the default class map, None for labels it
        drops), ``f0_hz`` (utterance F0 level), ``f0_baseline_hz`` (the speaker's baseline in this corpus),
        ``f0_semitones_rel`` (level relative to that baseline), ``f0_range_st``, ``energy_db`` (RMS of the
        voiced parts, dBFS), ``rate`` (syllables per second), ``tilt`` (dB/octave), ``breathiness``
        (aspiration relative to voice, dB), ``formant_scale``, ``swapped``, ``duration`` (seconds) and
        ``cue_margin`` (what the evaluators' agreement follows, see the module docstring; None for ``xxx``).
    """
    plan = _plan(config)
    rows = []
    for utt in plan.utterances:
        speaker = plan.speakers[f"Ses{utt.session:02d}{utt.gender}"]
        c = utt.cues
        rows.append(
            {
                "id": utt.id,
                "session": utt.session,
                "dialog": utt.dialog,
                "speaker": speaker.id,
                "gender": utt.gender,
                "raw_label": utt.raw_label,
                "emotion": DEFAULT_CLASS_MAP.get(utt.raw_label),
                "f0_hz": speaker.baseline.f0_hz * 2 ** (c.f0_rel_st / 12),
                "f0_baseline_hz": speaker.baseline.f0_hz,
                "f0_semitones_rel": c.f0_rel_st,
                "f0_range_st": c.range_st,
                "energy_db": c.energy_db,
                "rate": c.rate,
                "tilt": c.tilt_db,
                "breathiness": c.breath_db,
                "formant_scale": speaker.formant_scale,
                "swapped": speaker.swapped,
                "duration": utt.frames / SAMPLE_RATE,
                "cue_margin": None if utt.raw_label == "xxx" else _cue_margin(config, utt, speaker)[0],
            }
        )
    return rows


# --------------------------------------------------------------------------- the audio


# scipy.signal is imported where audio is generated: reading a study or a corpus needs none of it.
@functools.cache
def _butter(order: int, cutoff: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    from scipy import signal

    b, a = signal.butter(order, cutoff, btype=kind, fs=SAMPLE_RATE)
    return b, a


def _aspiration_filter() -> tuple[np.ndarray, np.ndarray]:
    return _butter(2, 1200.0, "highpass")


def _fricative_filter() -> tuple[np.ndarray, np.ndarray]:
    return _butter(2, 3000.0, "highpass")


def _floor_filter() -> tuple[np.ndarray, np.ndarray]:
    return _butter(1, 2000.0, "lowpass")


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _formant_gain(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Magnitude of a cascade of 2-pole resonances (unit gain at 0 Hz) at ``freqs`` [frames, harmonics]."""
    f = freqs[:, :, None]
    fc = formants[:, None, :]
    b2 = (bandwidths[:, None, :] / 2) ** 2
    gain = (fc**2 + b2) / np.sqrt(((f - fc) ** 2 + b2) * ((f + fc) ** 2 + b2))
    return gain.prod(axis=2)


def _render(utt: _Utt, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """Synthesise one utterance as float32 samples in [-1, 1]."""
    from scipy import signal

    c = utt.cues
    sr = SAMPLE_RATE
    n = utt.frames
    n_frames = -(-n // _HOP)
    ts = np.arange(n_frames * _HOP) / sr
    duration = n / sr

    # Syllables: voiced stretches of 80-250 ms on a rhythm set by the speaking rate, with short gaps
    # and occasional pauses. Arrays are drawn at a fixed size so the stream does not depend on the cut.
    m = math.ceil(duration * 12) + 2
    periods = rng.lognormal(0.0, 0.25, m) / c.rate
    voiced = np.clip(periods * rng.uniform(0.55, 0.8, m), 0.08, 0.25)
    gaps = np.maximum(periods - voiced, 0.03)
    pauses = np.where(rng.random(m) < 0.12, rng.uniform(0.15, 0.45, m), 0.0)
    lead = rng.uniform(0.04, 0.2)
    vowels = rng.integers(len(_VOWELS), size=m)
    accents = rng.standard_normal(m)
    glides = rng.standard_normal(m)
    stress_db = rng.normal(0.0, 2.0, m)
    attack = rng.uniform(0.012, 0.03, m)
    decay = rng.uniform(0.03, 0.07, m)
    fricative = rng.random(m) < 0.4
    fricative_len = rng.uniform(0.03, 0.08, m)
    bandwidth_jitter = rng.uniform(0.9, 1.2, (len(_VOWELS), 3))
    floor_db = _NOISE_FLOOR_DB + rng.normal(0.0, 3.0)
    white = rng.standard_normal(ts.size)
    floor = rng.standard_normal(ts.size)

    starts = lead + np.concatenate([[0.0], np.cumsum(voiced + gaps + pauses)[:-1]])
    ends = starts + voiced
    n_syl = max(1, int(np.searchsorted(ends, duration - 0.04, side="right")))
    starts, ends = starts[:n_syl], ends[:n_syl]

    # Per-sample syllable index, position in it, and the energy envelope (raised-cosine attack and decay).
    idx = np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, n_syl - 1)
    pos = ts - starts[idx]
    inside = (ts >= starts[idx]) & (ts < ends[idx])
    env = inside * _raised_cosine(pos / attack[idx]) * _raised_cosine((ends[idx] - ts) / decay[idx])

    # F0 contour in semitones over the baseline: level + declination + per-syllable accent and glide.
    frac = np.clip(pos / voiced[idx], 0.0, 1.0)
    st = c.f0_rel_st + 1.5 * (0.5 - ts / duration) + c.range_st * (accents[idx] + 0.5 * glides[idx] * (frac - 0.5))
    f0 = speaker.baseline.f0_hz * 2 ** (st / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr

    # Harmonic amplitudes per 5 ms hop: tilt, formant envelope of the syllable's vowel, syllable stress.
    centre = np.arange(n_frames) * _HOP + _HOP // 2
    f0_frames = f0[centre]
    syl_frames = idx[centre]
    n_harm = int(_HARMONIC_TOP // f0_frames.min())
    k = np.arange(1, n_harm + 1)
    freqs = f0_frames[:, None] * k[None, :]
    formants = _VOWELS[vowels[syl_frames]] * speaker.formant_scale
    bandwidths = (_BANDWIDTHS * bandwidth_jitter)[vowels[syl_frames]]
    amps = 10 ** ((c.tilt_db * np.log2(k))[None, :] / 20 + stress_db[syl_frames][:, None] / 20)
    amps = amps * _formant_gain(freqs, formants, bandwidths)
    amps *= np.clip((_HARMONIC_TOP - freqs) / _HARMONIC_TAPER, 0.0, 1.0)
    amps = amps.astype(np.float32)

    # Sum of harmonics by the recurrence z_k = z_{k-1} * e^{i phase}: no sine per harmonic and sample.
    base = np.exp(1j * phase).astype(np.complex64).reshape(n_frames, _HOP)
    z = base.copy()
    harmonic = amps[:, :1] * z.imag
    for j in range(1, n_harm):
        z *= base
        harmonic += amps[:, j : j + 1] * z.imag
    voice = harmonic.ravel().astype(np.float64) * env

    level = 10 ** (c.energy_db / 20)
    loud = env > 0.5
    voice *= level / max(float(np.sqrt(np.mean(voice[loud] ** 2))), 1e-12)

    # Aspiration: high-passed noise, pitch-synchronously modulated, following the voiced envelope.
    aspiration = signal.lfilter(*_aspiration_filter(), white) * (1 + 0.5 * np.cos(phase)) * env
    aspiration *= level * 10 ** (c.breath_db / 20) / max(float(np.sqrt(np.mean(aspiration[loud] ** 2))), 1e-12)

    # Fricative bursts in some gaps, just before the next syllable's onset.
    nxt = np.searchsorted(starts, ts, side="left")
    has_next = nxt < n_syl
    nxt = np.minimum(nxt, n_syl - 1)
    ahead = starts[nxt] - ts
    burst = has_next & fricative[nxt] & (ahead > 0) & (ahead < fricative_len[nxt])
    fric_env = burst * np.sin(np.pi * np.clip(ahead / fricative_len[nxt], 0.0, 1.0))
    fric = signal.lfilter(*_fricative_filter(), white[::-1]) * fric_env * level * 10 ** (-14 / 20)

    floor = signal.lfilter(*_floor_filter(), floor)
    floor *= 10 ** (floor_db / 20) / float(np.sqrt(np.mean(floor**2)))

    out = (voice + aspiration + fric + floor)[:n]
    peak = float(np.max(np.abs(out)))
    if peak > 0.95:
        out *= 0.95 / peak
    return out.astype(np.float32)


# --------------------------------------------------------------------------- the text files


def _vad(raw_label: str, rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """One annotator's integer (val, act, dom) and the consensus (mean of two annotators)."""
    mean = np.array(VAD_MEANS[raw_label])
    ratings = np.clip(np.rint(mean + rng.normal(0.0, 0.6, (2, 3))), 1, 5).astype(int)
    shown = (int(ratings[0, 0]), int(ratings[0, 1]), int(ratings[0, 2]))
    mean_v, mean_a, mean_d = (float(x) for x in ratings.mean(axis=0))
    return shown, (mean_v, mean_a, mean_d)


# Agreement of the three evaluators: P(all three give the consensus) = sigmoid((margin - centre) / scale).
AGREEMENT_CENTRE, AGREEMENT_SCALE = 4.0, 2.5
EVALUATORS = 3
_FOUR_CLASS_RAW: tuple[str, ...] = tuple(FOUR_CLASS_COUNTS)


def _deviation(cues: _Cues, profile: Profile, base: Baseline, spread: Mapping[str, float]) -> np.ndarray:
    """The cues' distance from ``profile`` on the speaker's baseline, per cue, in units of the spread."""
    return np.array(
        [
            (cues.f0_rel_st - profile.f0_st) / spread["f0_st"],
            math.log(cues.range_st / profile.range_st) / spread["range"],
            (cues.energy_db - base.loudness_db - profile.energy_db) / spread["energy_db"],
            math.log(cues.rate / (base.rate * profile.rate)) / spread["rate"],
            (cues.tilt_db - base.tilt_db - profile.tilt_db) / spread["tilt_db"],
            (cues.breath_db - base.breath_db - profile.breath_db) / spread["breath_db"],
        ]
    )


def _cue_margin(config: SynthConfig, utt: _Utt, speaker: Speaker) -> tuple[float, str]:
    """(margin, nearest other raw label): how much nearer the cues are to their own class than to another.

    Squared distances over the six cues in units of the per-utterance spread, on the speaker's baseline;
    the other labels are the 4-class ones of another class (``exc`` is not another class to ``hap``).
    """
    spread = {k: v * config.difficulty for k, v in UTTERANCE_SPREAD.items()}
    own_class = DEFAULT_CLASS_MAP.get(utt.raw_label, utt.raw_label)
    dist = {
        raw: float(np.sum(_deviation(utt.cues, EMOTION_PROFILES[raw], speaker.baseline, spread) ** 2))
        for raw in {utt.raw_label, *_FOUR_CLASS_RAW}
        if raw in EMOTION_PROFILES
    }
    others = [raw for raw in _FOUR_CLASS_RAW if DEFAULT_CLASS_MAP[raw] != own_class]
    nearest = min(others, key=lambda raw: dist[raw])
    return dist[nearest] - dist[utt.raw_label], nearest


def _votes(config: SynthConfig, utt: _Utt, speaker: Speaker, rng: np.random.Generator) -> list[list[str]]:
    """The evaluators' category words; ``xxx`` means no two agree."""
    words = [w for w in CATEGORY_WORDS.values() if w != "Other"]
    if utt.raw_label == "xxx":
        return [[words[i]] for i in rng.choice(len(words), size=EVALUATORS, replace=False)]
    word = CATEGORY_WORDS[utt.raw_label]
    margin, nearest = _cue_margin(config, utt, speaker)
    unanimous = rng.random() < 1 / (1 + math.exp(-(margin - AGREEMENT_CENTRE) / AGREEMENT_SCALE))
    dissenter = -1 if unanimous else int(rng.integers(EVALUATORS))
    votes = [[CATEGORY_WORDS[nearest]] if i == dissenter else [word] for i in range(EVALUATORS)]
    # an agreeing evaluator sometimes names a second category too
    second = next(i for i in range(EVALUATORS) if i != dissenter)
    if rng.random() < 0.3:
        votes[second].append(str(rng.choice([w for w in words if w != word])))
    return votes


@dataclass(frozen=True)
class _Annotation:
    vad: tuple[float, float, float]
    attributes: tuple[int, int, int]
    votes: list[list[str]]  # one list of category words per evaluator
    self_vote: str  # the speaker's own rating


def _annotate(config: SynthConfig, utt: _Utt, speaker: Speaker) -> _Annotation:
    rng = _rng(config.seed, _STREAM_UTTERANCES, utt.index, _UTT_ANNOTATION)
    attributes, vad = _vad(utt.raw_label, rng)
    votes = _votes(config, utt, speaker, rng)
    self_vote = CATEGORY_WORDS.get(utt.raw_label, votes[0][0])
    return _Annotation(vad, attributes, votes, self_vote)


def _label_file_text(utts: list[_Utt], notes: Mapping[str, _Annotation]) -> str:
    lines = [HEADER, ""]
    for utt in utts:
        a = notes[utt.id]
        v, ac, d = a.vad
        val, act, dom = a.attributes
        lines += [
            f"[{utt.start:.4f} - {utt.end:.4f}]\t{utt.id}\t{utt.raw_label}\t[{v:.4f}, {ac:.4f}, {d:.4f}]",
            *(f"C-E{i}:\t" + " ".join(f"{w};" for w in words) + "\t()" for i, words in enumerate(a.votes, 1)),
            f"C-{utt.gender}1:\t{a.self_vote};\t()",  # the speaker's self-rating, not an evaluator's
            f"A-E3:\tval {val}; act {act}; dom  {dom};\t()",
            "",
        ]
    return "\n".join(lines)


def _write_dialog_text(emo_dir: Path, dialog: str, utts: list[_Utt], notes: Mapping[str, _Annotation]) -> None:
    (emo_dir / f"{dialog}.txt").write_text(_label_file_text(utts, notes), encoding="utf-8")
    # Files in other formats next to the labels, as in the release; a reader must not take them as labels.
    cat_lines = []
    for utt in utts:
        word = notes[utt.id].votes[0][0]
        cat_lines.append(f"{utt.id} :{'Neutral state' if word == 'Neutral' else word}; ()\n")
    (emo_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text("".join(cat_lines), encoding="utf-8")
    atr_lines = []
    for utt in utts:
        val, act, dom = notes[utt.id].attributes
        atr_lines.append(f"{utt.id} :act {act}; val {val}; dom {dom}; ()\n")
    (emo_dir / "Attribute" / f"{dialog}_atr.txt").write_text("".join(atr_lines), encoding="utf-8")


# --------------------------------------------------------------------------- writing the tree


def marker_content(config: SynthConfig) -> dict[str, Any]:
    """What :func:`write_corpus` writes to ``GEMO_SYNTHETIC.json`` for ``config``."""
    plan_speakers, swapped = _speakers(config)
    return {
        "generator": "gemo-bench synthetic",
        "version": GENERATOR_VERSION,
        **dataclasses.asdict(config),
        "sample_rate": SAMPLE_RATE,
        "swapped_sessions": list(swapped),
        "label_counts": label_counts(config),
        "speakers": {
            sid: {"gender": s.gender, "f0_baseline_hz": round(s.baseline.f0_hz, 2), "swapped": s.swapped}
            for sid, s in plan_speakers.items()
        },
    }


def _write_tree(root: Path, config: SynthConfig) -> None:
    """Write the whole corpus into the existing, empty folder ``root``; the marker goes last."""
    plan = _plan(config)
    for dialog, utts in plan.dialogs().items():
        session_dir = root / f"Session{utts[0].session}"
        emo_dir = session_dir / "dialog" / "EmoEvaluation"
        for sub in ("Categorical", "Attribute"):
            (emo_dir / sub).mkdir(parents=True, exist_ok=True)
        wav_dir = session_dir / "sentences" / "wav" / dialog
        wav_dir.mkdir(parents=True, exist_ok=True)
        notes = {utt.id: _annotate(config, utt, plan.speakers[f"Ses{utt.session:02d}{utt.gender}"]) for utt in utts}
        _write_dialog_text(emo_dir, dialog, utts, notes)
        for utt in utts:
            speaker = plan.speakers[f"Ses{utt.session:02d}{utt.gender}"]
            samples = _render(utt, speaker, _rng(config.seed, _STREAM_UTTERANCES, utt.index, _UTT_SIGNAL))
            sf.write(wav_dir / f"{utt.id}.wav", samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    marker = json.dumps(marker_content(config), indent=2) + "\n"
    (root / MARKER).write_text(marker, encoding="utf-8")


def _write_temp(parent: Path, name: str, config: SynthConfig) -> Path:
    """Write the corpus into a fresh hidden sibling folder of ``parent / name`` and return it."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent))
    try:
        _write_tree(tmp, config)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def write_corpus(out: str | Path, config: SynthConfig = SynthConfig()) -> Path:
    """Write the embedded corpus of ``config`` as an IEMOCAP tree rooted at ``out``.

    The tree is written into a temporary sibling folder and renamed into place at the end, so an
    interrupted run leaves no half-written ``out``.

    Args:
        out: the root to create; it must not exist, or be an empty folder.
        config: what to generate.

    Returns:
        ``out`` as a Path.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    out = Path(out).expanduser()
    _refuse_existing(out)
    tmp = _write_temp(out.parent, out.name, config)
    try:
        _refuse_existing(out)  # it may have appeared while writing
        os.replace(tmp, out)  # an empty folder at `out` is replaced atomically on POSIX
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _refuse_existing(out: Path) -> None:
    if out.is_dir() and not any(out.iterdir()):
        return
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{out}: already exists and is not an empty folder; refusing to write a corpus there")


# --------------------------------------------------------------------------- the cache


def default_cache_dir() -> Path:
    """``$GEMO_CACHE`` when set, else ``~/.cache/gemo-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gemo-bench").expanduser()


def cache_name(config: SynthConfig) -> str:
    """Folder name of ``config``'s cached copy: ``v2-seed0-size600`` (+ ``-control``, + a knob digest).

    Generation knobs other than seed, size and control only appear, as a short digest, when they differ
    from their defaults.
    """
    name = f"v{GENERATOR_VERSION}-seed{config.seed}-size{config.size}{'-control' if config.control else ''}"
    knobs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    changed = {k: v for k, v in knobs.items() if k not in ("seed", "size", "control") and v != defaults[k]}
    if changed:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:10]
        name += f"-k{digest}"
    return name


def _is_complete(root: Path, config: SynthConfig) -> bool:
    marker = root / MARKER
    if not marker.is_file():
        return False
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content == json.loads(json.dumps(marker_content(config)))


def embedded_corpus(config: SynthConfig = SynthConfig(), cache_dir: str | Path | None = None) -> Path:
    """The root of a cached copy of the embedded corpus of ``config``, generated on first use.

    Safe for concurrent callers: each generates into its own temporary folder and renames it into place;
    a caller whose rename loses the race deletes its copy and uses the winner's. A cached folder without
    a matching marker file (an interrupted or foreign folder) is moved aside and regenerated.

    Args:
        config: what to generate.
        cache_dir: where the ``synthetic/`` cache lives; None means :func:`default_cache_dir`.

    Returns:
        ``<cache_dir>/synthetic/<cache_name(config)>``.
    """
    parent = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "synthetic"
    root = parent / cache_name(config)
    if _is_complete(root, config):
        return root
    if root.exists() or root.is_symlink():
        _discard(root, config)
        if _is_complete(root, config):
            return root
    tmp = _write_temp(parent, root.name, config)
    try:
        os.rename(tmp, root)
    except OSError:
        # Another caller got there first (its rename made `root` a non-empty folder).
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_complete(root, config):
            raise
    return root


def _discard(root: Path, config: SynthConfig) -> None:
    """Move an incomplete ``root`` aside (atomically) and delete it; another caller may do the same."""
    trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.stale-", dir=root.parent))
    moved = trash / root.name
    try:
        with contextlib.suppress(FileNotFoundError):  # someone else moved it first
            os.rename(root, moved)
            if _is_complete(moved, config):
                # Another caller finished it between our check and the move: put it back.
                with contextlib.suppress(OSError):
                    os.rename(moved, root)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
