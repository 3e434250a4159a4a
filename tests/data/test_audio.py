"""Audio I/O: resampling, downmixing, and the files that must be refused with the file named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.data.audio import AudioError, audio_info, load_audio
from benchmark.data.records import SAMPLE_RATE


def _noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    return wave[:, 0] if channels == 1 else wave


def _write(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, wave, rate, subtype=subtype)
    return path


def test_16k_mono_is_returned_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.wav", _noise(4000), SAMPLE_RATE)
    wave = load_audio(path)
    expected, _ = sf.read(path, dtype="float32")
    assert wave.dtype == np.float32
    np.testing.assert_array_equal(wave, expected)
    assert audio_info(path).notes == ()


@pytest.mark.parametrize("rate", [44_100, 48_000, 22_050])
@pytest.mark.parametrize("frames", [44_100, 12_345])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int, frames: int) -> None:
    path = _write(tmp_path / "a.wav", _noise(frames), rate)
    wave = load_audio(path)
    assert abs(len(wave) - frames * SAMPLE_RATE / rate) <= 1
    info = audio_info(path)
    assert info.sample_rate == rate
    assert info.duration == pytest.approx(frames / rate)
    assert f"resampled {rate} Hz -> {SAMPLE_RATE} Hz" in info.notes


def test_resampling_keeps_a_tone(tmp_path: Path) -> None:
    rate, seconds, freq = 48_000, 0.5, 440.0
    t = np.arange(int(rate * seconds)) / rate
    path = _write(tmp_path / "tone.wav", (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    wave = load_audio(path)
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(wave)
    assert peak_hz == pytest.approx(freq, abs=2 * SAMPLE_RATE / len(wave))


def test_load_audio_honours_another_target_rate(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.wav", _noise(16_000), SAMPLE_RATE)
    assert abs(len(load_audio(path, sample_rate=8_000)) - 8_000) <= 1


def test_stereo_is_downmixed_to_the_mean(tmp_path: Path) -> None:
    path = _write(tmp_path / "stereo.wav", _noise(3000, channels=2), SAMPLE_RATE)
    stored, _ = sf.read(path, dtype="float32", always_2d=True)
    wave = load_audio(path)
    np.testing.assert_allclose(wave, stored.mean(axis=1), atol=1e-7)
    info = audio_info(path)
    assert info.channels == 2
    assert info.notes == ("downmixed 2 channels -> mono",)


def test_stereo_44k_notes_both_conversions(tmp_path: Path) -> None:
    path = _write(tmp_path / "stereo.wav", _noise(4410, channels=2), 44_100)
    assert audio_info(path).notes == ("resampled 44100 Hz -> 16000 Hz", "downmixed 2 channels -> mono")
    assert abs(len(load_audio(path)) - 1600) <= 1


def test_truncated_file_gives_the_frames_that_exist(tmp_path: Path) -> None:
    # libsndfile trusts the file size over a header that claims more data: a WAV cut in half reads as
    # the frames that survived, identical to the start of the original, and its header info agrees.
    full = _write(tmp_path / "full.wav", _noise(16_000), SAMPLE_RATE)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    original = load_audio(full)
    wave = load_audio(cut)
    assert 0 < len(wave) < len(original)
    assert abs(len(wave) - len(original) / 2) <= 30  # minus the header's share of the bytes
    np.testing.assert_array_equal(wave, original[: len(wave)])
    assert audio_info(cut).frames == len(wave)


def test_file_cut_inside_its_header_is_an_error_naming_it(tmp_path: Path) -> None:
    full = _write(tmp_path / "full.wav", _noise(1600), SAMPLE_RATE)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:20])
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=re.escape(str(cut))):
            read(cut)


def test_non_audio_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=re.escape(str(path)) + ".*not a readable audio file"):
            read(path)


def test_empty_wav_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    assert sf.info(path).frames == 0
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=re.escape(str(path)) + ".*no samples"):
            read(path)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.wav"
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=re.escape(str(path)) + ".*not found"):
            read(path)


def test_a_folder_given_for_a_file_is_an_error_saying_so(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=re.escape(f"{folder}: a folder, not an audio file (name its files")):
            read(folder)


def test_non_finite_samples_are_refused(tmp_path: Path) -> None:
    wave = _noise(1000)
    wave[500] = np.nan
    path = _write(tmp_path / "nan.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=re.escape(str(path)) + ".*non-finite"):
        load_audio(path)
