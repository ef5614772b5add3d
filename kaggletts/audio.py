"""Clips joined into one audio file, and clips given in another format beside their WAVs:
the one encoder of kaggletts (PyAV's FFmpeg), which `run -o` and an audiobook's assembly
(kaggletts/audiobook/assemble.py) both write through. PyAV is imported only when audio is
written, so that `kaggletts --help` stays fast."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Any, Literal

from kaggletts.errors import RunFailed, UsageError
from kaggletts.words import counted

if TYPE_CHECKING:
    import av

    from kaggletts.result import Result

log = logging.getLogger("kaggletts")

# The silence between two lines in a joined file: a breath, longer than the 0.3 s the
# notebooks leave between the pieces of one long line.
LINE_PAUSE_SECONDS = 0.5


# The encoders kaggletts uses, all in the PyAV wheels.
AudioEncoder = Literal["pcm_s16le", "libmp3lame", "flac", "libopus", "aac"]


@dataclass(frozen=True)
class Encoding:
    """How one kind of audio file is written: FFmpeg's container and encoder, the sample
    format the encoder takes, and the bit rate of a lossy one."""

    suffix: str
    container: str
    codec: AudioEncoder
    sample_format: str = "s16"
    bit_rate: int | None = None
    # Samples per frame for an encoder that takes no other size (AAC: 1024); None: any.
    frame_size: int | None = None


# .ogg holds Opus: the PyAV wheels carry no libvorbis, and FFmpeg's own Vorbis encoder is
# experimental and stereo only. Ogg Opus is speech's better codec besides, and browsers,
# VLC, Android and libsndfile all play it.
ENCODINGS = {
    encoding.suffix: encoding
    for encoding in (
        Encoding(".wav", "wav", "pcm_s16le"),
        Encoding(".mp3", "mp3", "libmp3lame", "s16p", 96_000),
        Encoding(".flac", "flac", "flac"),
        Encoding(".ogg", "ogg", "libopus", bit_rate=64_000),
    )
}
SUFFIXES = ", ".join(ENCODINGS)
# An audiobook: AAC in an MP4 container (FFmpeg's "mp4" muxer, which, unlike "ipod", takes
# a cover picture), chapter marks in it. Only the audiobook's assembly writes it.
M4B = Encoding(".m4b", "mp4", "aac", "fltp", 64_000, frame_size=1024)
FORMAT_NAMES = [suffix.removeprefix(".") for suffix in ENCODINGS]


def encoding_for(path: str | os.PathLike[str]) -> Encoding:
    """The encoding a file's extension names, or a UsageError naming those accepted."""
    suffix = Path(path).suffix.lower()
    if suffix not in ENCODINGS:
        raise UsageError(
            f"cannot write {os.fspath(path)!r}: its extension names no audio format "
            f"kaggletts writes ({SUFFIXES})"
        )
    return ENCODINGS[suffix]


def encoding_named(name: str) -> Encoding:
    """The encoding of a format named without its dot (mp3), or a UsageError."""
    found = ENCODINGS.get(f".{name.lower().lstrip('.')}")
    if found is None:
        raise UsageError(f"no audio format {name!r}: kaggletts writes {', '.join(FORMAT_NAMES)}")
    return found


@dataclass(frozen=True)
class RequestedAudio:
    """The audio a run is asked for besides its WAV clips: one file of them all joined
    (`-o`), and each clip in other formats (`--format`). Checked before the run starts;
    written once it ends, from whatever clips it made."""

    joined: Path | None = None
    clip_encodings: tuple[Encoding, ...] = ()

    @classmethod
    def check(
        cls, joined: str | os.PathLike[str] | None, clip_formats: str | Sequence[str] = ()
    ) -> RequestedAudio:
        if isinstance(clip_formats, str):
            clip_formats = [clip_formats]
        named = map(encoding_named, clip_formats)
        # The clips are WAVs already.
        encodings = tuple(dict.fromkeys(e for e in named if e.suffix != ".wav"))
        path = None if joined is None else Path(joined)
        if path is not None:
            encoding_for(path)
            if path.is_dir():
                raise UsageError(f"cannot write {str(path)!r}: it is a folder")
        return cls(path, encodings)

    def write(self, result: Result) -> None:
        for encoding in self.clip_encodings:
            for clip in result.audio:
                convert(clip, encoding)
            log.info("each clip is also in %s beside its WAV", encoding.suffix)
        if self.joined is None or not result.audio:
            return
        seconds = join(result.audio, self.joined)
        log.info("wrote %s: %s, %.1f s", self.joined, counted(len(result.audio), "line"), seconds)
        if result.missing:
            missing = line_ranges(line.number for line in result.missing)
            log.warning(
                "%s lacks %s %s, not spoken; running the same request again speaks only "
                "those and writes the file whole",
                self.joined,
                "line" if len(result.missing) == 1 else "lines",
                missing,
            )


def join(
    clips: Sequence[Path], destination: Path, pause_seconds: float = LINE_PAUSE_SECONDS
) -> float:
    """Write the clips, in order with `pause_seconds` of silence between them, as one file
    in the format its extension names; returns its length in seconds. Clips of another
    sample rate or channel count than the first are converted to the first's (at a rate
    the format allows). The file appears whole or not at all."""
    import av

    if not clips:
        raise UsageError(f"cannot write {destination}: there are no clips to join")
    encoding = encoding_for(destination)
    try:
        with encoding_into(destination, encoding, *audio_shape(clips[0])) as encoder:
            for number, clip in enumerate(clips):
                if number and pause_seconds > 0:
                    encoder.silence(pause_seconds)
                encoder.clip(clip)
        return encoder.seconds
    except (OSError, av.FFmpegError) as error:
        raise RunFailed(f"cannot write {destination}: {error}") from None


def convert(clip: Path, encoding: Encoding) -> Path:
    """The clip written beside itself in another format (same name, the format's suffix)."""
    destination = clip.with_suffix(encoding.suffix)
    join([clip], destination)
    return destination


def audio_shape(clip: Path) -> tuple[int, int]:
    """A clip's sample rate and channel count."""
    import av

    with av.open(str(clip)) as source:
        shape = source.streams.audio[0].codec_context
        return shape.sample_rate, shape.channels


@contextmanager
def encoding_into(
    destination: Path,
    encoding: Encoding,
    source_rate: int,
    source_channels: int = 1,
    metadata: dict[str, str] | None = None,
) -> Iterator[Encoder]:
    """An encoder writing a temporary file beside `destination`, renamed to it once the
    encoder is flushed; removed if anything fails. The temporary name is not mkstemp's,
    whose file only its owner may read: the file gets the permissions any other gets.
    `metadata` (title, artist, ...) become the file's tags (ID3 in an MP3)."""
    import av

    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{token_hex(6)}.tmp")
    try:
        with av.open(str(temporary), "w", format=encoding.container) as container:
            container.metadata.update(metadata or {})
            encoder = Encoder(container, encoding, source_rate, source_channels)
            yield encoder
            encoder.flush()
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


class Encoder:
    """One audio stream being encoded at the source's rate (or the nearest the encoder
    takes), in mono, or in stereo for a source of two or more channels; frames are
    numbered by the samples before them."""

    def __init__(
        self,
        container: av.container.OutputContainer,
        encoding: Encoding,
        source_rate: int,
        source_channels: int = 1,
    ):
        import av

        # An encoder that takes only some rates (MP3: up to 48 kHz, Opus: 8 to 48 kHz)
        # gets the lowest one at or above the clips', else its highest.
        rates = sorted(av.Codec(encoding.codec, "w").audio_rates or [source_rate])
        self.rate = next((rate for rate in rates if rate >= source_rate), rates[-1])
        self.layout = "mono" if source_channels == 1 else "stereo"
        self.sample_format = encoding.sample_format
        self.container = container
        self.stream = container.add_stream(
            encoding.codec, rate=self.rate, layout=self.layout, format=self.sample_format
        )
        if encoding.bit_rate:
            self.stream.codec_context.bit_rate = encoding.bit_rate
        # An encoder of fixed-size frames gets them cut from a queue of whatever arrives.
        self.queue = av.AudioFifo() if encoding.frame_size else None
        self.frame_size = encoding.frame_size or 0
        self.samples = 0

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    def clip(self, path: Path) -> None:
        import av

        resampler = av.AudioResampler(self.sample_format, self.layout, self.rate)
        with av.open(str(path)) as source:
            for frame in source.decode(source.streams.audio[0]):
                for converted in resampler.resample(frame):
                    self._encode(converted)
        for converted in resampler.resample(None):
            self._encode(converted)

    def samples_of(self, mono: Any, rate: int) -> None:
        """Float samples (a 1-D numpy array, full scale 1.0) at `rate`, in mono; passed on
        a second at a time, so that no copy of a long array is made."""
        import av

        resampler = av.AudioResampler(self.sample_format, self.layout, self.rate)
        for start in range(0, len(mono), rate):
            part = mono[start : start + rate].astype("float32")[None, :]
            frame = av.AudioFrame.from_ndarray(part, "flt", "mono")
            frame.sample_rate = rate
            for converted in resampler.resample(frame):
                self._encode(converted)
        for converted in resampler.resample(None):
            self._encode(converted)

    def silence(self, seconds: float) -> None:
        import av

        frame = av.AudioFrame(self.sample_format, self.layout, round(seconds * self.rate))
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = self.rate
        self._encode(frame)

    def flush(self) -> None:
        self._encode(None)

    def _encode(self, frame: av.AudioFrame | None) -> None:
        """Encode a frame (None: the end), through the queue for a fixed-frame encoder."""
        if self.queue is None:
            self._encode_now(frame)
            return
        if frame is not None:
            frame.pts = None  # numbered as it leaves the queue
            self.queue.write(frame)
        while self.queue.samples >= self.frame_size:
            self._encode_now(self.queue.read(self.frame_size))
        if frame is None:
            if self.queue.samples:
                self._encode_now(self.queue.read())
            self._encode_now(None)

    def _encode_now(self, frame: av.AudioFrame | None) -> None:
        if frame is not None:
            frame.pts = self.samples
            frame.time_base = Fraction(1, self.rate)
            self.samples += frame.samples
        for packet in self.stream.encode(frame):
            self.container.mux(packet)


def line_ranges(numbers: Iterable[int]) -> str:
    """Line numbers as a person reads them: 2, 5-7, 9."""
    ranges: list[list[int]] = []
    for number in sorted(numbers):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in ranges)
