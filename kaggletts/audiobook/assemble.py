"""A spoken book's clips made into audiobook files, one chapter at a time (a chapter's
samples, held once and worked on in place a block at a time, are the most ever in memory):
joined in order with pauses, loudness-normalised (ITU-R BS.1770, pyloudnorm's K-weighting
and gates), peaks limited, room tone at head and tail, checked against ACX's
requirements; written as one MP3 per chapter (ID3 tags), optionally a WAV per chapter, and
one M4B with a chapter mark per chapter and the book's title, author and cover. Every file
is written by kaggletts/audio.py's encoder.

Edits are cheap: each file's inputs (its clips' sha256s in order, the pauses, its title and
tags, the encoders' and levelling's settings) are kept as a fingerprint beside it, in the
book folder's FINGERPRINT_FOLDER, and a chapter whose fingerprint is unchanged is not
written again; nor is the M4B when no chapter, tag or the cover changed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaggletts.audio import ENCODINGS, LINE_PAUSE_SECONDS, M4B, Encoder, audio_shape, encoding_into
from kaggletts.audiobook.plan import BookMap, ChapterLines
from kaggletts.errors import RunFailed
from kaggletts.kernel.support import clip_path

if TYPE_CHECKING:
    from av.container.core import Chapter

log = logging.getLogger("kaggletts")

# ACX's audio submission requirements (ACX, "Audio Submission Requirements"): each file's
# RMS between -23 and -18 dBFS, peaks at most -3 dBFS, a noise floor at most -60 dBFS,
# 0.5 to 1 s of room tone at its head and 1 to 5 s at its tail.
ACX_RMS = (-23.0, -18.0)
ACX_PEAK = -3.0
ACX_NOISE_FLOOR = -60.0
ACX_HEAD = (0.5, 1.0)
ACX_TAIL = (1.0, 5.0)
# Aimed at with a margin: speech loudness (BS.1770, which gates out the pauses), then the
# whole file's RMS in the middle of ACX's range, and peaks limited below -3 dBFS with room
# for an MP3 or AAC encoder's overshoot.
TARGET_LUFS = -20.0
TARGET_RMS = -20.5
PEAK_CEILING = -4.0
# Room tone: quiet noise rather than digital silence, which ACX reviewers reject as
# unnatural, far below the noise floor's limit.
ROOM_TONE_DBFS = -72.0
# What counts as speech when the head and tail are measured: a 10 ms window this loud.
SPEECH_DBFS = -50.0
NOISE_WINDOW_SECONDS = 0.5
# Where the book folder keeps each file's fingerprint: `<file name>.json`.
FINGERPRINT_FOLDER = ".kaggletts"
# Samples worked on at once while a chapter is levelled and measured (10 s at 24 kHz).
BLOCK_SAMPLES = 1 << 18


@dataclass(frozen=True)
class Pauses:
    """Seconds of room tone between two lines of a paragraph, between paragraphs, at the
    head of each chapter and at its tail (which is the pause between chapters)."""

    sentence: float = LINE_PAUSE_SECONDS
    paragraph: float = 1.0
    head: float = 0.75
    tail: float = 2.0


@dataclass(frozen=True)
class AcxCheck:
    """A chapter file's figures measured as ACX measures them, and what fails; `loudness`
    (ITU-R BS.1770 integrated loudness, LUFS) is shown beside them, not checked."""

    rms: float
    peak: float
    noise_floor: float
    head: float
    tail: float
    loudness: float = -math.inf

    def failures(self) -> dict[str, str]:
        """Each failing figure's name (as in to_dict, without its unit) and what is wrong."""
        found = {
            "rms": _outside("RMS", self.rms, ACX_RMS, "dB", "dBFS"),
            "head": _outside("room tone at the head", self.head, ACX_HEAD, "s", "s"),
            "tail": _outside("room tone at the tail", self.tail, ACX_TAIL, "s", "s"),
        }
        if self.peak > ACX_PEAK:
            found["peak"] = (
                f"peak {self.peak:.1f} dBFS is {self.peak - ACX_PEAK:.1f} dB above "
                f"ACX's {ACX_PEAK:g} dBFS"
            )
        if self.noise_floor > ACX_NOISE_FLOOR:
            found["noise_floor"] = (
                f"noise floor {self.noise_floor:.1f} dBFS is "
                f"{self.noise_floor - ACX_NOISE_FLOOR:.1f} dB above ACX's "
                f"{ACX_NOISE_FLOOR:g} dBFS"
            )
        order = ("rms", "peak", "noise_floor", "head", "tail")
        return {name: found[name] for name in order if found.get(name)}

    @property
    def problems(self) -> list[str]:
        return list(self.failures().values())

    @property
    def passed(self) -> bool:
        return not self.problems

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AcxCheck:
        loudness = data["loudness_lufs"]
        return cls(
            data["rms_dbfs"],
            data["peak_dbfs"],
            data["noise_floor_dbfs"],
            data["head_seconds"],
            data["tail_seconds"],
            -math.inf if loudness is None else loudness,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "loudness_lufs": round(self.loudness, 2) if math.isfinite(self.loudness) else None,
            "rms_dbfs": round(self.rms, 2),
            "peak_dbfs": round(self.peak, 2),
            "noise_floor_dbfs": round(self.noise_floor, 2),
            "head_seconds": round(self.head, 3),
            "tail_seconds": round(self.tail, 3),
            "problems": self.problems,
        }


def _outside(name: str, value: float, bounds: tuple[float, float], by: str, unit: str) -> str:
    low, high = bounds
    allowed = f"ACX's {low:g}..{high:g} {unit}"
    if value < low:
        return f"{name} {value:.2f} {unit} is {low - value:.2f} {by} below {allowed}"
    if value > high:
        return f"{name} {value:.2f} {unit} is {value - high:.2f} {by} above {allowed}"
    return ""


@dataclass(frozen=True)
class ChapterAudio:
    title: str
    mp3: Path
    wav: Path | None
    seconds: float
    check: AcxCheck

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "file": str(self.mp3),
            "wav": str(self.wav) if self.wav else None,
            "duration": round(self.seconds, 3),
            "acx": self.check.to_dict(),
        }


def assemble(
    book: BookMap,
    clips: Mapping[int, Path],
    folder: Path,
    m4b_name: str,
    cover: bytes | None = None,
    pauses: Pauses = Pauses(),
    wav: bool = False,
) -> tuple[Path, list[ChapterAudio]]:
    """Write the book's files into `folder`; `clips` maps each line number to its clip.
    Returns the M4B's path and each chapter's audio. Files whose inputs are those they were
    last written from are kept as they are."""
    import av

    rate = audio_shape(clips[book.chapters[0].first])[0]
    m4b = folder / m4b_name
    tags = {
        "title": book.title,
        "album": book.title,
        "artist": book.author,
        "album_artist": book.author,
        "genre": "Audiobook",
        "language": book.language,
    }
    tags = {name: value for name, value in tags.items() if value}
    prints = [
        _chapter_fingerprint(number, book, chapter, clips, rate, tags, pauses, wav)
        for number, chapter in enumerate(book.chapters, 1)
    ]
    kept = [
        _kept_chapter(folder, number, book, chapter, fingerprint, wav)
        for number, (chapter, fingerprint) in enumerate(zip(book.chapters, prints, strict=True), 1)
    ]
    book_print = _fingerprint(
        {
            "chapters": prints,
            "tags": tags,
            "cover": hashlib.sha256(cover or b"").hexdigest(),
            "encoding": asdict(M4B),
        }
    )
    if all(kept) and _stored_fingerprint(m4b).get("fingerprint") == book_print and m4b.exists():
        log.info("%s and its chapters are unchanged: not written again", m4b.name)
        return m4b, [chapter for chapter in kept if chapter]
    chapters: list[ChapterAudio] = []
    marks: list[Chapter] = []
    position = 0
    try:
        with encoding_into(m4b, M4B, rate, metadata=tags) as book_encoder:
            cover_stream = _cover_stream(book_encoder, cover)
            for number, chapter in enumerate(book.chapters, 1):
                samples = chapter_samples(chapter, clips, rate, pauses)
                made = kept[number - 1]
                if made is None:
                    made = _write_chapter(folder, number, book, chapter, samples, rate, tags, wav)
                    _store_fingerprint(made.mp3, prints[number - 1], made)
                state = "unchanged, not written again" if kept[number - 1] else "written"
                chapters.append(made)
                log.info(
                    "chapter %d/%d, %s: %.1f min, %s, %s",
                    number,
                    len(book.chapters),
                    chapter.title,
                    made.seconds / 60,
                    "ACX ok" if made.check.passed else "fails ACX's check",
                    state,
                )
                book_encoder.samples_of(samples, rate)
                marks.append(
                    {
                        "id": number,
                        "start": position,
                        "end": position + len(samples),
                        "time_base": Fraction(1, rate),
                        "metadata": {"title": chapter.title},
                    }
                )
                position += len(samples)
            if cover_stream is not None:
                stream, packet = cover_stream
                packet.stream = stream
                book_encoder.container.mux(packet)
            book_encoder.container.set_chapters(marks)
        _store_fingerprint(m4b, book_print)
    except (OSError, av.FFmpegError) as error:
        raise RunFailed(f"cannot write the audiobook in {folder}: {error}") from None
    return m4b, chapters


def _chapter_fingerprint(
    number: int,
    book: BookMap,
    chapter: ChapterLines,
    clips: Mapping[int, Path],
    rate: int,
    tags: dict[str, str],
    pauses: Pauses,
    wav: bool,
) -> str:
    """Everything a chapter's files are made from: its clips' contents in order, where its
    paragraphs end, its place, title and tags, the pauses, the levelling and the encoders."""
    clip_sums = []
    for line in chapter.numbers:
        with clips[line].open("rb") as clip:
            clip_sums.append(hashlib.file_digest(clip, "sha256").hexdigest())
    return _fingerprint(
        {
            "clips": clip_sums,
            "paragraph_ends": [end - chapter.first for end in chapter.paragraph_ends],
            "number": number,
            "of": len(book.chapters),
            "title": chapter.title,
            "tags": tags,
            "rate": rate,
            "pauses": asdict(pauses),
            "levels": [TARGET_LUFS, TARGET_RMS, PEAK_CEILING, ROOM_TONE_DBFS],
            "encodings": [asdict(ENCODINGS[".mp3"])] + ([asdict(ENCODINGS[".wav"])] if wav else []),
        }
    )


def _fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _fingerprint_path(file: Path) -> Path:
    return file.parent / FINGERPRINT_FOLDER / f"{file.name}.json"


def _stored_fingerprint(file: Path) -> dict[str, Any]:
    """What was stored when `file` was last written; {} when nothing readable was."""
    try:
        stored = json.loads(_fingerprint_path(file).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _store_fingerprint(file: Path, fingerprint: str, chapter: ChapterAudio | None = None) -> None:
    path = _fingerprint_path(file)
    path.parent.mkdir(exist_ok=True)
    stored: dict[str, Any] = {"fingerprint": fingerprint}
    if chapter is not None:
        stored |= {"seconds": chapter.seconds, "acx": chapter.check.to_dict()}
    path.write_text(json.dumps(stored), "utf-8")


def _kept_chapter(
    folder: Path, number: int, book: BookMap, chapter: ChapterLines, fingerprint: str, wav: bool
) -> ChapterAudio | None:
    """The chapter's files as last written, if they were written from the same inputs and
    are all still there; None when they are to be written."""
    mp3, wav_path = _chapter_files(folder, number, book, chapter)
    stored = _stored_fingerprint(mp3)
    if stored.get("fingerprint") != fingerprint or not mp3.exists():
        return None
    if wav and not wav_path.exists():
        return None
    try:
        check = AcxCheck.from_dict(stored["acx"])
        seconds = float(stored["seconds"])
    except (KeyError, TypeError, ValueError):
        return None
    return ChapterAudio(chapter.title, mp3, wav_path if wav else None, seconds, check)


def _chapter_files(
    folder: Path, number: int, book: BookMap, chapter: ChapterLines
) -> tuple[Path, Path]:
    name = clip_path(folder, number, {"text": chapter.title}, len(book.chapters))
    return name.with_suffix(".mp3"), name.with_suffix(".wav")


def _cover_stream(encoder: Encoder, cover: bytes | None) -> tuple[Any, Any] | None:
    """The cover as the M4B's attached picture: a stream copied from the picture as it is
    (JPEG or PNG, not encoded again), added before the first packet is written."""
    import av

    if not cover:
        return None
    try:
        source = av.open(io.BytesIO(cover), "r")
        packet = next(source.demux(source.streams.video[0]))
    except (av.FFmpegError, IndexError, StopIteration):
        return None  # a cover FFmpeg cannot read: the book goes without one
    stream = encoder.container.add_stream_from_template(source.streams.video[0])
    stream.disposition = av.stream.Disposition.attached_pic
    return stream, packet


def _write_chapter(
    folder: Path,
    number: int,
    book: BookMap,
    chapter: ChapterLines,
    samples: Any,
    rate: int,
    tags: dict[str, str],
    wav: bool,
) -> ChapterAudio:
    mp3, wav_file = _chapter_files(folder, number, book, chapter)
    chapter_tags = {**tags, "title": chapter.title, "track": f"{number}/{len(book.chapters)}"}
    with encoding_into(mp3, ENCODINGS[".mp3"], rate, metadata=chapter_tags) as encoder:
        encoder.samples_of(samples, rate)
    wav_path = None
    if wav:
        wav_path = wav_file
        with encoding_into(wav_path, ENCODINGS[".wav"], rate) as encoder:
            encoder.samples_of(samples, rate)
    return ChapterAudio(chapter.title, mp3, wav_path, len(samples) / rate, measure(samples, rate))


def chapter_samples(
    chapter: ChapterLines, clips: Mapping[int, Path], rate: int, pauses: Pauses
) -> Any:
    """The chapter as float32 samples at `rate`: its clips in order with their pauses,
    loudness-normalised, peaks limited, room tone at head and tail and in every pause. The
    samples are one array, levelled in place a block at a time, so that a chapter costs
    about its own size in memory and not a multiple of it."""
    import numpy as np

    gaps = [round(pauses.head * rate)]
    for number in chapter.numbers:
        if number != chapter.last:
            pause = pauses.paragraph if number in chapter.paragraph_ends else pauses.sentence
            gaps.append(round(pause * rate))
    gaps.append(round(pauses.tail * rate))
    room = sum(gaps) + sum(_estimated_length(clips[number], rate) for number in chapter.numbers)
    samples = np.zeros(room, np.float32)
    end = gaps[0]
    for number, gap in zip(chapter.numbers, gaps[1:], strict=True):
        samples, end = _decoded_into(samples, end, clips[number], rate)
        samples, end = _placed(samples, end, np.zeros(gap, np.float32))
    samples = samples[:end]
    _level(samples, rate)
    _add_room_tone(samples)
    return samples


def _estimated_length(clip: Path, rate: int) -> int:
    """A clip's length in samples at `rate` as its container states it, with room for a
    decoder's or resampler's few extra samples; 0 when it states none."""
    import av

    with av.open(str(clip)) as source:
        stream = source.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif source.duration is not None:
            seconds = source.duration / av.time_base
        else:
            return 0
    return math.ceil(seconds * rate) + 2048


def _decoded_into(samples: Any, end: int, clip: Path, rate: int) -> tuple[Any, int]:
    """The clip decoded in mono float at `rate` into `samples` from `end` on; returns the
    array (a larger one only if the clip was longer than estimated) and the new end."""
    import av

    resampler = av.AudioResampler("flt", "mono", rate)
    with av.open(str(clip)) as source:
        for frame in source.decode(source.streams.audio[0]):
            for converted in resampler.resample(frame):
                samples, end = _placed(samples, end, converted.to_ndarray()[0])
    for converted in resampler.resample(None):
        samples, end = _placed(samples, end, converted.to_ndarray()[0])
    return samples, end


def _placed(samples: Any, end: int, part: Any) -> tuple[Any, int]:
    import numpy as np

    if end + len(part) > len(samples):
        grown = np.zeros(max(end + len(part), len(samples) * 5 // 4), np.float32)
        grown[:end] = samples[:end]
        samples = grown
    samples[end : end + len(part)] = part
    return samples, end + len(part)


def _blocks(length: int, size: int = BLOCK_SAMPLES) -> Iterator[slice]:
    return (slice(start, min(start + size, length)) for start in range(0, length, size))


def _level(samples: Any, rate: int) -> None:
    """At TARGET_LUFS of speech loudness, peaks limited; then, while the whole file's RMS
    (pauses included, as ACX measures it) is outside ACX's range with a 0.5 dB margin,
    brought to TARGET_RMS and limited again (limiting lowers the RMS a little each time).
    In place."""
    import numpy as np

    loudness = _integrated_loudness(samples, rate)
    if not math.isfinite(loudness):
        return  # too short or silent to measure: left as spoken
    samples *= np.float32(10 ** ((TARGET_LUFS - loudness) / 20))
    _limit(samples, rate)
    for _ in range(3):
        rms = _dbfs(_rms(samples))
        if ACX_RMS[0] + 0.5 <= rms <= ACX_RMS[1] - 0.5:
            break
        samples *= np.float32(10 ** ((TARGET_RMS - rms) / 20))
        _limit(samples, rate)


def _limit(samples: Any, rate: int) -> None:
    """Peaks brought under PEAK_CEILING by a smooth gain, in place a block at a time: each
    sample's needed gain, the least of it over 10 ms around, averaged over 5 ms (an average
    of minima taken over wider windows never exceeds the gain a sample needs). Each block's
    gain is worked out with a window's worth of the unlimited samples on either side, so the
    blocks join as one gain over the whole array would."""
    import numpy as np
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = np.float32(10 ** (PEAK_CEILING / 20))
    window = max(3, rate // 100) | 1
    previous = samples[:0].copy()  # the unlimited samples just before the block
    for block in _blocks(len(samples), max(BLOCK_SAMPLES, window)):
        following = samples[block.stop : block.stop + window]
        around = np.concatenate([previous, samples[block], following])
        inside = slice(len(previous), len(previous) + block.stop - block.start)
        previous = samples[max(block.start, block.stop - window) : block.stop].copy()
        magnitude = np.abs(around)
        if magnitude.max(initial=0.0) <= ceiling:
            continue
        needed = np.minimum(np.float32(1), ceiling / np.maximum(magnitude, 1e-12))
        gain = uniform_filter1d(minimum_filter1d(needed, window), window // 2 | 1)
        samples[block] *= np.minimum(gain[inside], needed[inside])


def _add_room_tone(samples: Any) -> None:
    """Quiet noise added over the whole chapter, a block at a time; seeded by the length,
    so that the same clips give the same file."""
    import numpy as np

    noise = np.random.default_rng(len(samples))
    level = np.float32(10 ** (ROOM_TONE_DBFS / 20))
    tone = np.empty(min(BLOCK_SAMPLES, len(samples)), np.float32)
    for block in _blocks(len(samples)):
        part = tone[: block.stop - block.start]
        noise.standard_normal(out=part, dtype=np.float32)
        part *= level
        samples[block] += part


def measure(samples: Any, rate: int) -> AcxCheck:
    """RMS and peak over the file, the noise floor as the quietest half second's RMS, the
    room tone at head and tail as the time before the first and after the last 10 ms of
    speech, and the integrated loudness; a block at a time."""
    import numpy as np

    window = max(1, rate // 100)
    count = len(samples) // window
    per_block = max(1, BLOCK_SAMPLES // window)
    levels = np.empty(count, np.float32)
    for block in _blocks(count, per_block):
        windows = samples[block.start * window : block.stop * window].reshape(-1, window)
        levels[block] = np.sqrt(np.mean(np.square(windows), axis=1))
    speech = np.flatnonzero(levels > 10 ** (SPEECH_DBFS / 20))
    head = speech[0] * window / rate if len(speech) else len(samples) / rate
    tail = (count - 1 - speech[-1]) * window / rate if len(speech) else len(samples) / rate
    per_noise = round(NOISE_WINDOW_SECONDS * rate / window)
    quiet = min(
        (
            _rms(levels[start : start + per_noise])
            for start in range(0, max(1, count - per_noise + 1), max(1, per_noise // 2))
        ),
        default=0.0,
    )
    peak = max(
        (float(np.abs(samples[block]).max()) for block in _blocks(len(samples))), default=0.0
    )
    return AcxCheck(
        _dbfs(_rms(samples)),
        _dbfs(peak),
        _dbfs(quiet),
        float(head),
        float(tail),
        _integrated_loudness(samples, rate),
    )


def _integrated_loudness(samples: Any, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness of mono samples as pyloudnorm measures it (its
    K-weighting filters; 400 ms blocks overlapping by 75%; the -70 LUFS and relative -10 LU
    gates), a block of samples at a time: pyloudnorm's own meter filters a float64 copy of
    the whole. Block energies are sums of 100 ms steps' energies. -inf for a file shorter
    than a 400 ms block or silent."""
    import numpy as np
    from pyloudnorm.iirfilter import IIRfilter
    from scipy.signal import lfilter

    if len(samples) < 0.4 * rate:
        return -math.inf
    stages = [
        IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, rate, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"),
    ]
    states = [np.zeros(max(len(stage.a), len(stage.b)) - 1) for stage in stages]
    # As pyloudnorm counts blocks: the last may run past the end, its missing part silent.
    blocks = int(np.round((len(samples) / rate - 0.4) / 0.1)) + 1
    edges = np.minimum(np.arange(blocks + 4) * rate // 10, len(samples))
    steps = np.zeros(blocks + 3)
    per_block = max(1, BLOCK_SAMPLES * 10 // rate)
    for block in _blocks(blocks + 3, per_block):
        start, stop = int(edges[block.start]), int(edges[block.stop])
        weighted = samples[start:stop].astype(np.float64)
        for number, stage in enumerate(stages):
            weighted, states[number] = lfilter(stage.b, stage.a, weighted, zi=states[number])
            weighted *= stage.passband_gain
        energy = np.concatenate([[0.0], np.cumsum(np.square(weighted))])
        steps[block] = (
            energy[edges[block.start + 1 : block.stop + 1] - start]
            - energy[edges[block.start : block.stop] - start]
        )
    powers = np.convolve(steps, np.ones(4), "valid") / (0.4 * rate)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(powers)
    audible = powers[levels >= -70.0]
    if not len(audible):
        return -math.inf
    relative = -0.691 + 10 * math.log10(float(audible.mean())) - 10
    gated = powers[(levels > relative) & (levels > -70.0)]
    return -0.691 + 10 * math.log10(float(gated.mean())) if len(gated) else -math.inf


def _rms(samples: Any) -> float:
    import numpy as np

    if not len(samples):
        return 0.0
    total = sum(
        float(np.sum(np.square(samples[block], dtype=np.float64)))
        for block in _blocks(len(samples))
    )
    return math.sqrt(total / len(samples))


def _dbfs(level: float) -> float:
    return 20 * math.log10(level) if level > 0 else -math.inf
