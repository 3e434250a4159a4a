"""Audio I/O: every waveform enters the suite through :func:`load_audio` (soundfile + soxr)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from benchmark.data.records import SAMPLE_RATE


class AudioError(ValueError):
    """A WAV file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, plus what loading it will do to it."""

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def notes(self) -> tuple[str, ...]:
        """Conversions :func:`load_audio` applies (resampling, downmixing), for reports."""
        out = []
        if self.sample_rate != SAMPLE_RATE:
            out.append(f"resampled {self.sample_rate} Hz -> {SAMPLE_RATE} Hz")
        if self.channels != 1:
            out.append(f"downmixed {self.channels} channels -> mono")
        return tuple(out)


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header; raise :class:`AudioError` naming the file if it is missing, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if info.frames <= 0:
        raise AudioError(f"{path}: audio file holds no samples")
    return AudioInfo(path=path, sample_rate=int(info.samplerate), channels=int(info.channels), frames=int(info.frames))


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load a file as a mono float32 waveform at ``sample_rate``.

    Multi-channel files are averaged to mono; other rates are resampled with soxr (high quality).

    Raises:
        AudioError: the file is missing, unreadable, truncated, empty or holds non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file holds no samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
        if len(wave) == 0:
            raise AudioError(f"{path}: too short to resample ({data.shape[0]} frames at {rate} Hz)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: audio holds non-finite samples")
    return np.ascontiguousarray(wave, dtype=np.float32)
