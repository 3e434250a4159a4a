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


class AudioConversionWarning(UserWarning):
    """Files that are not 16 kHz mono: usable, but resampled or downmixed each time they are loaded."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, plus what loading it will do to it."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    declared_frames: int | None = None  # what a WAV header's data chunk promises; None if not a WAV

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def truncated(self) -> bool:
        """The file holds fewer frames than its header declares: a copy cut short.

        libsndfile reads such a file without complaint (the frames that survive), so only the header tells.
        """
        return self.declared_frames is not None and self.frames < self.declared_frames

    @property
    def notes(self) -> tuple[str, ...]:
        """Conversions :func:`load_audio` applies (resampling, downmixing), for reports."""
        out = []
        if self.sample_rate != SAMPLE_RATE:
            out.append(f"resampled {self.sample_rate} Hz -> {SAMPLE_RATE} Hz")
        if self.channels != 1:
            out.append(f"downmixed {self.channels} channels -> mono")
        return tuple(out)


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        raise AudioError(f"{path}: a folder, not an audio file (name its files, e.g. {path / '*.wav'})")
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header; raise :class:`AudioError` naming the file if it is missing, unreadable or empty."""
    path = Path(path)
    _check_is_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if info.frames <= 0:
        raise AudioError(f"{path}: audio file holds no samples")
    return AudioInfo(
        path=path,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        declared_frames=_declared_wav_frames(path),
    )


def _declared_wav_frames(path: Path) -> int | None:
    """Frames the ``data`` chunk of a RIFF/WAVE header declares; None for other formats or streamed sizes."""
    block_align = 0
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                # 0 and 0xFFFFFFFF: a writer that did not know the length (a stream); nothing to compare
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            if name == b"fmt ":
                block_align = int.from_bytes(f.read(size)[12:14], "little")
                f.seek(size & 1, 1)
            else:
                f.seek(size + (size & 1), 1)  # chunks are padded to an even length
    return None


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load a file as a mono float32 waveform at ``sample_rate``.

    Multi-channel files are averaged to mono; other rates are resampled with soxr (high quality).

    Raises:
        AudioError: the file is missing, unreadable, truncated, empty or holds non-finite samples.
    """
    path = Path(path)
    _check_is_file(path)
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
