"""Audiobook assembly and the book plan.

Assembly: a synthetic book of an hour (10 chapters of 10 s clips, 24 kHz mono 16-bit WAVs
as Qwen3-TTS writes them: harmonic tones under a syllable-rate envelope with
noise, each clip at its own level between -32 and -14 dBFS, so that levelling has work to
do), no TTS involved. kaggletts: `kaggletts.audiobook.assemble.assemble` as `kaggletts book`
calls it - per chapter the clips joined with pauses, loudness-normalised (pyloudnorm),
peak-limited, room tone added, measured against ACX's figures, written as an MP3 (96 kbit/s)
and streamed into one M4B (AAC 64 kbit/s) with a chapter mark per chapter.
Baseline: what a careful user does without kaggletts, with the system's ffmpeg CLI through
subprocesses: per chapter the concat demuxer over the clips and silence WAVs for the same
pauses, ffmpeg's own `loudnorm` filter (EBU R128, single pass, I=-20 LUFS, TP=-4 dBTP, as
kaggletts' targets) into a chapter WAV and an MP3 (96 kbit/s, title tag); then the chapter
WAVs through the concat demuxer with an ffmetadata file of chapter marks into one M4B (AAC
64 kbit/s). The baseline checks nothing against ACX and adds no room tone; it needs the
ffmpeg command (Debian's ffmpeg), which kaggletts itself does not.
Each side runs in a child process of its own, in the same invocation, once (2 shared
cores); wall time is turned into hours of audio per minute, and peak memory is the child's
maximum resident set (for the baseline, the largest ffmpeg process's). The ratio of speed is
kaggletts / baseline (bigger is better), of memory baseline / kaggletts.

Plan: `kaggletts book NOVEL --dry-run` for a 90,000-word novel (30 chapters), with the
qwen notebook (Qwen3-TTS 1.7B, its default) and the chatterbox notebook, on the GPU a
Kaggle push gets (T4 x2): audio hours from ACX's words per finished hour; session hours,
sessions and weeks from the figures kaggletts' cost preview uses, whose source each row
names. The goal: the novel fits in 4 weeks of the free GPU quota.
Run as a script to print a table: `python benchmarks/audiobook.py [HOURS]`."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from common import check, print_table, row

RATE = 24_000
CLIP_SECONDS = 10
CHAPTERS = 10
# Goals: a 10-hour book assembled in under 15 minutes (0.67 h of audio a minute); no slower
# than the careful user's ffmpeg script, which does less (no ACX check, no room tone); memory
# bounded by a chapter, not the book.
SPEED_GOAL = 0.67
RATIO_GOAL = 1.0
MEMORY_GOAL_MB = 512
QUOTA_WEEKS_GOAL = 4
NOVEL_WORDS = 90_000


def clip_samples(number: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(number)
    t = np.arange(CLIP_SECONDS * RATE) / RATE
    pitch = rng.uniform(90, 220)
    voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3, 4))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    words = (np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    signal = syllables * words * (voice + 0.3 * rng.standard_normal(len(t)))
    level = 10 ** (rng.uniform(-32, -14) / 20)
    signal *= level / max(float(np.sqrt(np.mean(signal**2))), 1e-9)
    return np.clip(signal, -1, 1)


def write_wav(path: Path, samples: Any) -> None:
    import numpy as np

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((samples * 32767).astype(np.int16).tobytes())


def synthetic_book(root: Path, hours: float) -> Any:
    """The clips and the book map (paragraphs of four lines), in `root`."""
    from kaggletts.audiobook.plan import BookMap, ChapterLines

    per_chapter = round(hours * 3600 / CLIP_SECONDS / CHAPTERS)
    clips = root / "clips"
    clips.mkdir()
    chapters = []
    for chapter in range(CHAPTERS):
        first = chapter * per_chapter + 1
        last = first + per_chapter - 1
        for line in range(first, last + 1):
            write_wav(clips / f"{line:05d}.wav", clip_samples(line))
        ends = tuple(n for n in range(first, last + 1) if (n - first + 1) % 4 == 0 or n == last)
        chapters.append(ChapterLines(f"Chapter {chapter + 1}", first, last, ends))
    book = BookMap("A Synthetic Book", "Bench Mark", "en", tuple(chapters))
    book.write(root)
    return book


def assemble_with_kaggletts(root: Path) -> None:
    from kaggletts.audiobook.assemble import assemble
    from kaggletts.audiobook.plan import BookMap

    book = BookMap.read(root)
    clips = {n: root / "clips" / f"{n:05d}.wav" for c in book.chapters for n in c.numbers}
    assemble(book, clips, root / "kaggletts", "book.m4b")


def assemble_with_ffmpeg(root: Path) -> None:
    """The careful user's script: ffmpeg's concat demuxer, loudnorm and chapter metadata."""
    import numpy as np

    from kaggletts.audiobook.assemble import Pauses
    from kaggletts.audiobook.plan import BookMap

    book = BookMap.read(root)
    pauses = Pauses()
    out = root / "ffmpeg"
    out.mkdir()
    silences: dict[float, Path] = {}
    for seconds in (pauses.head, pauses.sentence, pauses.paragraph, pauses.tail):
        silences[seconds] = out / f"silence-{seconds:g}.wav"
        write_wav(silences[seconds], np.zeros(round(seconds * RATE)))
    ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    chapter_wavs, metadata, start = [], [";FFMETADATA1", f"title={book.title}"], 0.0
    for number, chapter in enumerate(book.chapters, 1):
        parts = [silences[pauses.head]]
        for line in chapter.numbers:
            parts.append(root / "clips" / f"{line:05d}.wav")
            if line != chapter.last:
                ends = line in chapter.paragraph_ends
                parts.append(silences[pauses.paragraph if ends else pauses.sentence])
        parts.append(silences[pauses.tail])
        listing = out / f"chapter-{number}.txt"
        listing.write_text("".join(f"file '{part}'\n" for part in parts))
        wav, mp3 = out / f"chapter-{number}.wav", out / f"chapter-{number}.mp3"
        subprocess.run(
            [*ffmpeg, "-f", "concat", "-safe", "0", "-i", str(listing),
             "-af", "loudnorm=I=-20:TP=-4:LRA=11", "-ar", str(RATE),
             "-c:a", "pcm_s16le", str(wav),
             "-af", "loudnorm=I=-20:TP=-4:LRA=11", "-ar", str(RATE),
             "-c:a", "libmp3lame", "-b:a", "96k", "-metadata", f"title={chapter.title}",
             str(mp3)],
            check=True,
        )
        with wave.open(str(wav)) as made:
            seconds = made.getnframes() / made.getframerate()
        metadata += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(start * 1000)}",
                     f"END={round((start + seconds) * 1000)}", f"title={chapter.title}"]
        start += seconds
        chapter_wavs.append(wav)
    listing = out / "book.txt"
    listing.write_text("".join(f"file '{wav}'\n" for wav in chapter_wavs))
    (out / "chapters.txt").write_text("\n".join(metadata) + "\n")
    subprocess.run(
        [*ffmpeg, "-f", "concat", "-safe", "0", "-i", str(listing),
         "-i", str(out / "chapters.txt"), "-map_metadata", "1", "-map_chapters", "1",
         "-c:a", "aac", "-b:a", "64k", "-f", "mp4", str(out / "book.m4b")],
        check=True,
    )


def child(side: str, root: Path) -> None:
    """One side's assembly, then its wall time and peak memory as JSON on stdout."""
    started = time.perf_counter()
    (assemble_with_kaggletts if side == "kaggletts" else assemble_with_ffmpeg)(root)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": max(own if side == "kaggletts"
                                                        else children, 0) / 1024}))


def measured(side: str, root: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", side, str(root)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def book_seconds(folder: Path) -> float:
    from mutagen.mp4 import MP4

    info = MP4(str(folder / "book.m4b")).info
    assert info is not None
    return float(info.length)


def plan_rows(root: Path) -> list[dict[str, Any]]:
    from kaggletts.audiobook import plan
    from kaggletts.words import counted

    sentence = "The night was long and the road was empty, so she kept on walking. "  # 14 words
    chapter = "\n\n".join(sentence * 5 for _ in range(round(NOVEL_WORDS / 30 / 70)))
    novel = root / "novel.txt"
    novel.write_text("\n\n".join(f"Chapter {n}\n\n{chapter}" for n in range(1, 31)))
    rows = []
    for notebook, name in (("qwen", "Qwen3-TTS 1.7B"), ("chatterbox", "Chatterbox")):
        started = time.perf_counter()
        made = plan(novel, notebook, output_dir=root / "no-history")
        seconds = time.perf_counter() - started
        rows.append(check(
            f"plan: {made.words:,}-word novel, {name} on T4 x2 (--dry-run, {seconds:.1f} s)",
            f"{made.session_hours:.0f} h GPU, {counted(made.sessions, 'session')}, "
            f"{counted(made.quota_weeks, 'week')}",
            f"at most {QUOTA_WEEKS_GOAL} weeks", made.quota_weeks <= QUOTA_WEEKS_GOAL,
            unit="quota weeks",
            note=f"{made.lines:,} lines, about {made.audio_hours:.1f} h of audio "
                 f"({made.audio_source}); session figures: {made.session_source}; weeks of "
                 "Kaggle's 30 h GPU quota, sessions of at most 12 h and "
                 f"{made.lines_per_session} lines"))
    return rows


def run(hours: float = 1.0) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="kaggletts-bench-book-") as tmp:
        root = Path(tmp)
        synthetic_book(root, hours)
        ours = measured("kaggletts", root)
        baseline = measured("ffmpeg", root)
        ours_hours = book_seconds(root / "kaggletts") / 3600
        baseline_hours = book_seconds(root / "ffmpeg") / 3600
        speed = ours_hours / (ours["seconds"] / 60)
        baseline_speed = baseline_hours / (baseline["seconds"] / 60)
        rows = [
            row(f"assembly speed, {hours:g} h synthetic book (h of audio per min)", speed,
                baseline_speed, RATIO_GOAL, lower_is_better=False, unit="h/min",
                note=f"kaggletts {ours['seconds']:.1f} s, baseline (ffmpeg CLI) "
                     f"{baseline['seconds']:.1f} s for {ours_hours:.2f} h of audio, "
                     f"{CHAPTERS} chapters"),
            check(f"assembly speed, {hours:g} h synthetic book, absolute", round(speed, 2),
                  f"at least {SPEED_GOAL} h/min (10 h in 15 min)", speed >= SPEED_GOAL,
                  baseline=round(baseline_speed, 2), unit="h/min"),
            check(f"assembly peak memory, {hours:g} h synthetic book",
                  round(ours["peak_mb"]), f"at most {MEMORY_GOAL_MB} MB",
                  ours["peak_mb"] <= MEMORY_GOAL_MB, baseline=round(baseline["peak_mb"]),
                  ratio=round(baseline["peak_mb"] / ours["peak_mb"], 2), unit="MB",
                  note="peak resident set of the assembling process (kaggletts: Python with "
                       "numpy, scipy, pyloudnorm and PyAV, one chapter of float samples at a "
                       "time); baseline: the largest ffmpeg process's"),
        ]
        return rows + plan_rows(root)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], Path(sys.argv[3]))
    else:
        print_table(run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
