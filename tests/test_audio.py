"""One audio file from a run (`-o`) and each clip in other formats (`--format`): written by
PyAV, read back by libsndfile (soundfile), a decoder that shares no code with FFmpeg."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest
import soundfile

import kaggletts
from kaggletts.audio import ENCODINGS, LINE_PAUSE_SECONDS, RequestedAudio, join, line_ranges

FORMATS = [".wav", ".mp3", ".flac", ".ogg"]
# The lossless formats keep every sample; MP3 and Opus carry their encoder delay in the
# file, which a gapless decoder such as libsndfile strips, give or take a frame's rounding.
TOLERANCE = {".wav": 1e-4, ".flac": 1e-4, ".mp3": 0.03, ".ogg": 0.03}


def tone(path: Path, seconds: float, rate: int, amplitude: int, channels: int = 1) -> Path:
    """A 16-bit WAV of a 440 Hz sine at `amplitude`."""
    samples = array(
        "h",
        (
            int(amplitude * math.sin(2 * math.pi * 440 * i / rate))
            for i in range(int(seconds * rate))
            for _ in range(channels)
        ),
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()


def loudness(samples, start: float, end: float, rate: int) -> float:
    """The RMS of the decoded samples between two times, of full scale."""
    part = samples[int(start * rate) : int(end * rate)]
    return math.sqrt(sum(float(s) ** 2 for s in part) / max(len(part), 1))


@pytest.mark.parametrize("suffix", FORMATS)
def test_clips_of_different_rates_and_channels_join_in_order_with_pauses(tmp_path, suffix):
    clips = [
        tone(tmp_path / "a.wav", 1.0, 22050, 16000),
        tone(tmp_path / "b.wav", 0.6, 24000, 4000, channels=2),
        tone(tmp_path / "c.wav", 0.8, 16000, 1000),
    ]
    joined = tmp_path / f"joined{suffix}"
    written = join(clips, joined)

    decoded, rate = soundfile.read(str(joined), dtype="float32", always_2d=False)
    expected = 1.0 + 0.6 + 0.8 + 2 * LINE_PAUSE_SECONDS
    assert decoded.ndim == 1, "the first clip is mono, so the file is"
    assert len(decoded) / rate == pytest.approx(expected, abs=TOLERANCE[suffix])
    assert written == pytest.approx(expected, abs=1e-3)
    # Each clip where it belongs, loud, quiet, quieter, with silence between them.
    pause = LINE_PAUSE_SECONDS
    first, second, third = (
        loudness(decoded, 0.1, 0.9, rate),
        loudness(decoded, 1.0 + pause + 0.1, 1.6 + pause - 0.1, rate),
        loudness(decoded, 1.6 + 2 * pause + 0.1, expected - 0.1, rate),
    )
    gaps = [
        loudness(decoded, 1.0 + 0.05, 1.0 + pause - 0.05, rate),
        loudness(decoded, 1.6 + pause + 0.05, 1.6 + 2 * pause - 0.05, rate),
    ]
    assert first > 2.5 * second > 2.5 * 2 * third > 0
    assert max(gaps) < third / 10


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_stereo_first_clip_makes_a_stereo_file(tmp_path, suffix):
    clips = [
        tone(tmp_path / "stereo.wav", 0.5, 44100, 8000, channels=2),
        tone(tmp_path / "mono.wav", 0.5, 48000, 8000),
    ]
    joined = tmp_path / f"joined{suffix}"
    join(clips, joined)
    info = soundfile.info(str(joined))
    assert info.channels == 2
    assert info.frames / info.samplerate == pytest.approx(
        1.0 + LINE_PAUSE_SECONDS, abs=TOLERANCE[suffix]
    )


def test_a_clip_that_cannot_be_read_leaves_neither_the_file_nor_a_temporary(tmp_path):
    good = tone(tmp_path / "good.wav", 0.5, 22050, 8000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    joined = tmp_path / "joined.mp3"
    with pytest.raises(kaggletts.RunFailed, match="cannot write .*joined.mp3"):
        join([good, broken], joined)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav", "good.wav"]


def test_an_unknown_extension_or_format_is_refused_naming_those_accepted(tmp_path):
    with pytest.raises(kaggletts.UsageError) as refused:
        RequestedAudio.check(tmp_path / "hello.aac")
    assert str(refused.value).endswith("(.wav, .mp3, .flac, .ogg)")
    with pytest.raises(kaggletts.UsageError, match="no audio format 'aac'.*mp3, flac, ogg"):
        RequestedAudio.check(None, ["aac"])
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(kaggletts.UsageError, match="is a folder"):
        RequestedAudio.check(tmp_path / "folder.wav")


def test_clip_formats_are_taken_once_each_and_wav_is_the_clips_own(tmp_path):
    assert RequestedAudio.check(None, "MP3").clip_encodings == (ENCODINGS[".mp3"],)
    asked = RequestedAudio.check(tmp_path / "out.FLAC", ["ogg", "wav", "mp3", "ogg"])
    assert asked.clip_encodings == (ENCODINGS[".ogg"], ENCODINGS[".mp3"])
    assert asked.joined == tmp_path / "out.FLAC"


def test_clips_join_without_a_pause_when_asked(tmp_path):
    clips = [tone(tmp_path / f"{n}.wav", 0.25, 16000, 8000) for n in range(3)]
    assert join(clips, tmp_path / "tight.wav", pause_seconds=0) == pytest.approx(0.75)
    assert soundfile.info(str(tmp_path / "tight.wav")).frames == 3 * 4000


def test_line_numbers_read_as_ranges():
    assert line_ranges([9, 2, 5, 6, 7]) == "2, 5-7, 9"
    assert line_ranges([4]) == "4"


def test_cli_hello_there_as_one_mp3_an_independent_decoder_reads_at_its_length(
    run_cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    ran = run_cli("run", "espeak", "--text", "Hello there.", "-o", "hello.mp3")
    assert ran.code == 0, ran.output
    [clip] = (tmp_path / "kaggletts-output").rglob("001-*.wav")
    info = soundfile.info("hello.mp3")
    assert info.format == "MP3" and info.channels == 1
    frames = len(soundfile.read("hello.mp3")[0])
    assert frames / info.samplerate == pytest.approx(wav_seconds(clip), abs=TOLERANCE[".mp3"])
    assert "wrote hello.mp3: 1 line" in ran.stderr


def test_cli_joins_a_batch_and_gives_each_clip_in_other_formats(run_cli, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("The first line.\nA second, longer line of the batch.\nThe end.\n")
    joined = tmp_path / "book.flac"
    ran = run_cli(
        "run",
        "espeak",
        "-f",
        str(lines),
        "--out",
        str(tmp_path / "jobs"),
        "-o",
        str(joined),
        "--format",
        "ogg",
        "--format",
        "MP3",
    )
    assert ran.code == 0, ran.output
    clips = sorted((tmp_path / "jobs").rglob("*.wav"))
    assert len(clips) == 3
    expected = sum(map(wav_seconds, clips)) + 2 * LINE_PAUSE_SECONDS
    decoded, rate = soundfile.read(str(joined))
    assert len(decoded) / rate == pytest.approx(expected, abs=TOLERANCE[".flac"])
    for clip in clips:
        for suffix in (".ogg", ".mp3"):
            beside = soundfile.read(str(clip.with_suffix(suffix)))
            assert len(beside[0]) / beside[1] == pytest.approx(
                wav_seconds(clip), abs=TOLERANCE[suffix]
            )


def test_cli_refuses_a_bad_extension_before_anything_runs(run_cli, tmp_path):
    ran = run_cli(
        "run",
        "espeak",
        "--text",
        "Hi.",
        "--out",
        str(tmp_path / "jobs"),
        "-o",
        str(tmp_path / "hello.aac"),
    )
    assert ran.code == 2
    assert ran.stderr.strip().splitlines() == [
        f"error: cannot write {str(tmp_path / 'hello.aac')!r}: its extension names no audio "
        "format kaggletts writes (.wav, .mp3, .flac, .ogg)"
    ]
    assert not (tmp_path / "jobs").exists()


def test_cli_refuses_an_audio_file_name_as_the_job_folder(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = run_cli("run", "espeak", "--text", "Hi.", "--out", "hello.wav")
    assert ran.code == 2
    assert "-o hello.wav writes the clips as one audio file" in ran.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_a_line_missing_joins_what_was_made_and_names_the_missing(
    standins, monkeypatch, tmp_path, caplog
):
    texts = ["First line.", "The broken line.", "Third line."]
    standins.use(monkeypatch, tmp_path / "calls.jsonl", fault="fail-text-broken")
    joined = tmp_path / "partial.ogg"
    with pytest.raises(kaggletts.Incomplete) as ended:
        kaggletts.execute(
            "qwen",
            {"utterances": texts, "batch_size": 1},
            backend="local",
            output_dir=tmp_path / "out",
            output=joined,
        )
    made = ended.value.result.audio
    assert [p.name for p in made] == ["001-first-line.wav", "003-third-line.wav"]
    decoded, rate = soundfile.read(str(joined))
    expected = sum(map(wav_seconds, made)) + LINE_PAUSE_SECONDS
    assert len(decoded) / rate == pytest.approx(expected, abs=TOLERANCE[".ogg"])
    assert f"{joined} lacks line 2, not spoken" in caplog.text


def test_a_kaggle_run_writes_the_joined_file_once_its_clips_are_downloaded(emulator, tmp_path):
    from helpers import run_kaggle

    joined = tmp_path / "from-kaggle.wav"
    result = run_kaggle(
        emulator,
        tmp_path / "out",
        {"utterances": ["One on Kaggle.", "Two on Kaggle."]},
        output=joined,
    )
    decoded, rate = soundfile.read(str(joined))
    expected = sum(map(wav_seconds, result.audio)) + LINE_PAUSE_SECONDS
    assert len(decoded) / rate == pytest.approx(expected, abs=TOLERANCE[".wav"])
