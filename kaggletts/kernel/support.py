# The support code every kaggletts notebook runs in its `support` cell.
#
# Kaggle runs a notebook as one self-contained file, so this module's text is written into
# each notebook's support cell by `nox -s sync` (kaggletts.kernel.sync): edit it here, never
# in a notebook. The package imports it too, so batching, naming, splitting and the inputs
# search are one implementation on both sides. Only the standard library is imported at the
# top: a kernel runs this before it has installed anything.
import hashlib
import importlib
import importlib.metadata
import math
import os
import re
import subprocess
import sys
import time
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

RUN_STARTED = time.perf_counter()
if __name__ == "__main__":  # in a notebook's kernel; the package's import leaves it alone
    # transformers 5 calls torch.cuda.is_available() as it is imported, which by default
    # starts the CUDA driver (cudaGetDeviceCount), and a worker forked after that cannot use
    # its GPU. PyTorch's switch makes the check ask NVML instead, which leaves CUDA alone
    # (vLLM sets it for the same reason); worker_devices counts GPUs the same way.
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
# Kaggle mounts datasets here; local and emulated runs move it with this variable.
INPUT_ROOT = Path(os.environ.get("KAGGLETTS_INPUT_ROOT", "/kaggle/input"))
SILENCE_RMS = 1e-3


def ensure_package(module, *requirements):
    """Import `module`, pip-installing `requirements` only when the import fails."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"installing {' '.join(requirements)}", flush=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *requirements], check=True)
        importlib.invalidate_caches()
        return importlib.import_module(module)


def canonical_name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions():
    """Every installed distribution with a module this kernel has imported, with its version.
    pip must leave these alone: files replaced under a running process break its next imports
    (`numpy.dtype size changed`)."""
    from packaging.version import InvalidVersion, Version  # ipykernel needs packaging

    owners = importlib.metadata.packages_distributions()
    held = {}
    for module in {name.partition(".")[0] for name in list(sys.modules)}:
        # Private modules such as setuptools' _distutils_hack are run once by .pth files at
        # start-up; holding their distribution would protect nothing.
        if module.startswith("_"):
            continue
        for distribution in owners.get(module, ()):
            try:
                version = importlib.metadata.version(distribution)
                Version(version)
            except (importlib.metadata.PackageNotFoundError, InvalidVersion):
                continue
            held[canonical_name(distribution)] = version
    return held


def install_package(requirement, needs):
    """pip-install `requirement` without its declared dependencies, then only `needs`: the
    distributions its code imports, each as the package declares it (a bare name) or as given.
    Every distribution the kernel has already imported stays at its version (a constraints
    file holds it) and the package's own pins on those are set aside. Says what it did."""
    import tempfile

    from packaging.requirements import Requirement

    held = imported_distributions()
    constraints = Path(tempfile.mkdtemp()) / "imported.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in held.items()))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", str(constraints)]
    subprocess.run([*pip, "--no-deps", requirement], check=True)
    package = Requirement(requirement).name
    declared = {}
    for line in importlib.metadata.requires(package) or []:
        dependency = Requirement(line)
        if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
            declared[canonical_name(dependency.name)] = dependency
    wanted, kept = [], []
    for need in map(Requirement, needs):
        name = canonical_name(need.name)
        asked = need if need.specifier else declared.get(name, need)
        asked.marker = None  # already evaluated for this interpreter
        if name in held:
            kept.append(f"{name} {held[name]} (asked: {asked})")
        else:
            wanted.append(str(asked))
    if wanted:
        # pip then warns that the package's declared pins are unmet: expected, see above.
        subprocess.run([*pip, *wanted], check=True)
    importlib.invalidate_caches()
    needed = {canonical_name(Requirement(need).name) for need in needs}
    print(f"installed {requirement} without its dependencies, then: {', '.join(wanted)}",
          flush=True)
    print(f"kept as the kernel imported them: {'; '.join(kept) or 'none'}", flush=True)
    left_out = ", ".join(sorted(set(declared) - needed)) or "none"
    print(f"left out (declared, never imported): {left_out}", flush=True)


def package_versions(*names):
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def batch_items(text, utterances):
    """What a parameter set speaks, in order: `text` first (a batch of one), then
    `utterances` (strings, or mappings with `text` and per-line settings)."""
    return ([text] if text else []) + list(utterances)


def line_text(item):
    """The text of a batch item or a clip record."""
    return item if isinstance(item, str) else str(item.get("text", ""))


def characters_of(items):
    """What runs are costed by: the characters of every line's text."""
    return sum(len(line_text(item)) for item in items)


def build_batch(text, utterances, defaults):
    """Every utterance as a dict of its settings: the defaults, then its own overrides."""
    items = batch_items(text, utterances)
    if not items:
        raise ValueError("nothing to speak: set `text` or `utterances`")
    batch = []
    for number, item in enumerate(items, 1):
        overrides = {"text": item} if isinstance(item, str) else dict(item)
        unknown = set(overrides) - set(defaults) - {"text", "name"}
        if unknown:
            raise ValueError(f"utterance {number}: unknown settings {sorted(unknown)}")
        if not str(overrides.get("text", "")).strip():
            raise ValueError(f"utterance {number} has no text")
        batch.append({**defaults, **overrides})
    return batch


def clip_path(out_dir, number, utterance, total):
    """A safe, predictable file name: the position, as wide as the batch needs so names
    sort in order, then a slug of the name or text that keeps accented letters and is cut
    at a word boundary."""
    import unicodedata

    words = unicodedata.normalize("NFC", utterance.get("name") or utterance["text"]).lower()
    slug = re.sub(r"[\W_]+", "-", words).strip("-")
    if len(slug) > 40:
        slug = slug[:41].rsplit("-", 1)[0] if "-" in slug[:41] else slug[:40]
    width = max(3, len(str(total)))
    return Path(out_dir) / f"{number:0{width}d}-{slug or 'utterance'}.wav"


def find_under(root, path):
    """The first file under `root` whose path ends with the relative `path`, or None."""
    given = Path(path)
    if given.is_absolute() or not Path(root).is_dir():
        return None
    for match in sorted(Path(root).rglob(given.name)):
        if match.is_file() and match.as_posix().endswith(given.as_posix()):
            return match
    return None


def find_input(path):
    """A reference file as given, or under the Kaggle inputs root when relative."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    found = find_under(INPUT_ROOT, candidate)
    if found is None:
        raise FileNotFoundError(f"{path} is neither a file here nor under {INPUT_ROOT}")
    return found


def write_clip(path, pcm16, sample_rate, utterance, synthesis_seconds):
    """Write 16-bit mono PCM and return the record the library reads back."""
    samples = array("h", pcm16)
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1)) / 32768
    if rms < SILENCE_RMS:
        raise RuntimeError(f"silent audio (RMS {rms:.2e}) for: {utterance['text']!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    data = path.read_bytes()
    return {
        "text": utterance["text"],
        "file": os.path.relpath(path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "duration": len(samples) / sample_rate,
        "sample_rate": sample_rate,
        "rms": round(rms, 6),
        "synthesis_seconds": round(synthesis_seconds, 4),
        "settings": {k: v for k, v in utterance.items() if k != "text"},
    }


def float_to_pcm16(wav):
    """Float samples in [-1, 1] as 16-bit PCM bytes (what the stdlib `wave` reads)."""
    import numpy as np

    samples = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    return np.rint(samples * 32767).astype("<i2").tobytes()


def usable_audio(wav):
    """False for NaN or near-silent audio, the failure modes of half precision."""
    import numpy as np

    wav = np.asarray(wav, dtype=np.float64)
    return bool(np.isfinite(wav).all()) and float(np.sqrt(np.mean(wav**2))) >= SILENCE_RMS


PAUSE_SECONDS = 0.3  # the silence between the pieces of a line spoken in several generations
DURATION_SLACK_SECONDS = 2.0  # leading and trailing silence a short line may carry
# Characters that take about a syllable each (CJK, kana, hangul), against alphabetic ones.
WIDE_CHARACTER = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")
BOUNDARIES = (r"(?<=[.!?;\u3002\uff01\uff1f\uff1b])\s*", r"(?<=[,:\u3001\uff0c\uff1a])\s*", r"\s+")


def split_text(text, limit, boundaries=BOUNDARIES):
    """`text` in pieces of at most `limit` characters, cut after sentences, then clauses,
    then words (a word longer than `limit` is cut where it must); short neighbours rejoin."""
    if len(text) <= limit:
        return [text.strip()]
    if not boundaries:
        return [text[start:start + limit] for start in range(0, len(text), limit)]
    pieces = []
    for part in filter(str.strip, re.split(boundaries[0], text)):
        for small in split_text(part, limit, boundaries[1:]):
            if pieces and len(pieces[-1]) + 1 + len(small) <= limit:
                pieces[-1] += " " + small
            else:
                pieces.append(small)
    return pieces


def duration_bounds(text, seconds_per_character):
    """The shortest and longest plausible speech for `text`, from the notebook's
    `{"alphabetic": (low, high), "wide": (low, high)}` seconds per letter or digit."""
    letters = [c for c in text if c.isalnum()]
    wide = sum(1 for c in letters if WIDE_CHARACTER.match(c))
    counts = {"alphabetic": len(letters) - wide, "wide": wide}
    shortest = sum(counts[kind] * low for kind, (low, _) in seconds_per_character.items())
    longest = sum(counts[kind] * high for kind, (_, high) in seconds_per_character.items())
    return shortest, longest + DURATION_SLACK_SECONDS


def check_duration(number, text, seconds, seconds_per_character):
    """Fail a generation far longer than its text (a runaway: a wrong ref_text can babble
    until max_new_tokens and still pass the NaN and silence checks) or far shorter (cut off)."""
    shortest, longest = duration_bounds(text, seconds_per_character)
    if seconds > longest:
        raise RuntimeError(f"line {number} ran away: {seconds:.1f}s of audio for {len(text)} "
                           f"characters, at most {longest:.1f}s expected: {text!r}")
    if seconds < shortest:
        raise RuntimeError(f"line {number} was cut off: {seconds:.1f}s of audio for {len(text)} "
                           f"characters, at least {shortest:.1f}s expected: {text!r}")


@dataclass(frozen=True)
class Piece:
    """One generation's worth of a line: the line's place in the batch (0-based), which of
    its pieces this is, the line's settings and the text to speak."""

    line: int
    part: int
    utterance: dict
    text: str


def plan_work(batch, max_characters, batch_size):
    """Every line's pieces as units of work, in the order of their first line. With
    `batch_size` 1 each piece is a unit, in input order. Otherwise pieces with the same
    settings (one call speaks them together) are sorted by length, so a unit's members end
    near the same step, and cut into units of at most `batch_size`."""
    pieces = [Piece(line, part, utterance, text)
              for line, utterance in enumerate(batch)
              for part, text in enumerate(split_text(utterance["text"], max_characters))]
    if batch_size <= 1:
        return [[piece] for piece in pieces]
    groups = {}
    for piece in pieces:
        settings = sorted((k, repr(v)) for k, v in piece.utterance.items()
                          if k not in ("text", "name"))
        groups.setdefault(tuple(settings), []).append(piece)
    units = []
    for members in groups.values():
        members.sort(key=lambda piece: len(piece.text))
        units += [members[start:start + batch_size] for start in range(0, len(members), batch_size)]
    return sorted(units, key=first_line)


def first_line(unit):
    return min(piece.line for piece in unit)


def expected_cost(unit):
    """A unit's expected time in characters: a call runs until its longest piece is done."""
    return max(len(piece.text) for piece in unit)


def deal(units, workers):
    """The units dealt to `workers` so that their expected loads come out even (the longest
    first, each to the least loaded); each worker then speaks its share in input order."""
    loads, shares = [0] * workers, [[] for _ in range(workers)]
    for unit in sorted(units, key=expected_cost, reverse=True):
        least = loads.index(min(loads))
        shares[least].append(unit)
        loads[least] += expected_cost(unit)
    return [sorted(share, key=first_line) for share in shares]


def out_of_memory(error):
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def speak_unit(unit, speak, speak_together):
    """[(piece, (samples, rate, made_with), seconds)] for every piece of `unit`: together in
    one call when the notebook can, else one by one. A failed call (other than out of
    memory, which the caller handles) or an unusable clip from it has those pieces spoken
    alone through `speak`, so a bad line fails alone, not its batch."""
    if speak_together is None or len(unit) == 1:
        made = []
        for piece in unit:
            started = time.perf_counter()
            made.append((piece, speak(piece.utterance, piece.text), time.perf_counter() - started))
        return made
    started = time.perf_counter()
    try:
        outcomes = speak_together(unit)
    except Exception as error:
        if out_of_memory(error):
            raise
        print(f"{len(unit)} lines together failed ({type(error).__name__}: {error}): "
              "each alone", flush=True)
        return speak_unit(unit, speak, None)
    share = (time.perf_counter() - started) / len(unit)  # each piece's part of the call
    made = []
    for piece, outcome in zip(unit, outcomes, strict=True):
        made += ([(piece, outcome, share)] if usable_audio(outcome[0])
                 else speak_unit([piece], speak, None))
    return made


def speak_units(units, speak, speak_together, deadline):
    """Speak `units` in order on this process's model, yielding what speak_unit makes; start
    no unit after `deadline`. Out of memory halves the unit, and no later one is bigger."""
    fits = max(map(len, units), default=1)
    todo = list(units)
    while todo:
        if deadline and time.time() >= deadline:
            return
        unit = todo.pop(0)
        if len(unit) > fits:
            todo[:0] = [unit[start:start + fits] for start in range(0, len(unit), fits)]
            continue
        try:
            made = speak_unit(unit, speak, speak_together)
        except Exception as error:
            if not out_of_memory(error) or len(unit) == 1:
                raise
            fits = len(unit) // 2
            print(f"out of memory with {len(unit)} lines together: {fits} at most from here",
                  flush=True)
            todo.insert(0, unit)
            continue
        yield from made


def work_share(device, share, speak, speak_together, deadline, results, cpu_threads):
    """A worker process: its share of the units on `device`, each piece sent to the parent
    as it is made, then "done", or "failed" with the error."""
    import numpy as np

    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:")  # its GPU is cuda:0
    elif "torch" in sys.modules:  # CPU workers share the cores rather than each taking all
        sys.modules["torch"].set_num_threads(cpu_threads)
    try:
        for piece, (wav, rate, made_with), seconds in speak_units(share, speak, speak_together,
                                                                   deadline):
            results.put(("made", device, (piece, (np.asarray(wav, np.float32), rate, made_with),
                                          seconds)))
        results.put(("done", device, None))
    except BaseException as error:
        results.put(("failed", device, f"{type(error).__name__}: {error}"))


class CudaLostInFork(RuntimeError):
    """The workers could not use CUDA: it was initialised in this process before they were
    forked (counting GPUs does that where NVML is missing)."""


def speak_in_workers(devices, shares, speak, speak_together, deadline):
    """Yield (device, piece, outcome, seconds) from one forked process per device. Forked,
    so each inherits the notebook's functions and settings; the parent has loaded no model
    and has not initialised CUDA (a forked child could not use it then)."""
    import multiprocessing
    import queue

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    on_cpu = sum(1 for device in devices if not device.startswith("cuda:"))
    cpu_threads = max(1, (os.cpu_count() or 1) // max(on_cpu, 1))
    processes = [context.Process(target=work_share, daemon=True,
                                 args=(device, share, speak, speak_together, deadline, results,
                                       cpu_threads))
                 for device, share in zip(devices, shares, strict=True)]
    for process in processes:
        process.start()
    running, made_any = len(processes), False
    try:
        while running:
            try:
                kind, device, payload = results.get(timeout=1.0)
            except queue.Empty:
                ended = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if ended:
                    raise RuntimeError(f"a worker process died (exit code {ended[0]})") from None
                continue
            if kind == "failed":
                if "CUDA in forked subprocess" in payload and not made_any:
                    raise CudaLostInFork(payload)
                raise RuntimeError(f"{payload} (on {device})")
            if kind == "done":
                running -= 1
            else:
                made_any = True
                yield (device, *payload)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def worker_devices(requested):
    """One label per model replica: every GPU visible (at most `requested` when above 0),
    else `requested` CPU workers (0: one). GPUs are counted through NVML, which leaves CUDA
    uninitialised here so that the workers can still be forked."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus:
        return [f"cuda:{index}" for index in range(min(gpus, requested or gpus))]
    workers = requested or 1
    return ["cpu"] if workers == 1 else [f"cpu:{index}" for index in range(workers)]


def speak_everywhere(devices, units, speak, speak_together, deadline):
    """(device, piece, outcome, seconds) for every unit: on the one device in this process,
    or dealt to one forked worker per device. Workers that cannot use CUDA leave the whole
    batch to this process's first device: slower, but no session is lost to it."""
    if len(devices) > 1:
        try:
            yield from speak_in_workers(devices, deal(units, len(devices)), speak,
                                        speak_together, deadline)
            return
        except CudaLostInFork as error:
            print(f"the worker processes cannot use CUDA ({error}): every line on "
                  f"{devices[0]} in this process instead", flush=True)
    for outcome in speak_units(units, speak, speak_together, deadline):
        yield (devices[0], *outcome)


def speak_batch(batch, speak, out_dir, deadline, max_characters, seconds_per_character,
                speak_together=None, batch_size=1, devices=(None,)):
    """Speak every line and write each as soon as all its pieces are done; start no new
    work after `deadline` (Unix time, 0: none). `speak(utterance, text)` returns float
    samples, their rate and what the record should say about how they were made (precision,
    seed...); `speak_together(pieces)` (optional) returns the same for several pieces with
    the same settings in one call, at most `batch_size` at once. A line longer than
    `max_characters` is spoken in pieces joined by a short pause. With several `devices`
    (labels such as cuda:0, cuda:1) each gets a process with its own model and a share of
    the work dealt by expected length, and each clip names the device that made it.
    Returns the clips in input order and how far the batch got."""
    import numpy as np

    started = time.perf_counter()
    units = plan_work(batch, max_characters, batch_size if speak_together else 1)
    made = speak_everywhere(devices, units, speak, speak_together, deadline)
    parts_of = {}
    for unit in units:
        for piece in unit:
            parts_of[piece.line] = parts_of.get(piece.line, 0) + 1
    pieces_of, clips = {}, {}
    used = set()
    for device, piece, (wav, sample_rate, made_with), seconds in made:
        used.add(device)
        number = piece.line + 1
        if not usable_audio(wav):
            raise RuntimeError(f"NaN or silent audio for line {number}: {piece.text!r}")
        check_duration(number, piece.text, len(wav) / sample_rate, seconds_per_character)
        made_with = {**made_with, **({"device": device} if device else {})}
        pieces_of.setdefault(piece.line, {})[piece.part] = (piece.text, wav, made_with, seconds)
        if len(pieces_of[piece.line]) < parts_of[piece.line]:
            continue
        parts = [pieces_of[piece.line][part] for part in range(parts_of[piece.line])]
        audio = []
        for _, samples, _, _ in parts:
            audio += [np.zeros(int(PAUSE_SECONDS * sample_rate), np.float32)] if audio else []
            audio.append(np.asarray(samples, dtype=np.float32))
        utterance = batch[piece.line]
        path = clip_path(out_dir, number, utterance, len(batch))
        clip = write_clip(path, float_to_pcm16(np.concatenate(audio)), sample_rate, utterance,
                          sum(part[3] for part in parts))
        clip.update(parts[-1][2])  # how the line ended; each piece's own is in `pieces`
        if len(parts) > 1:
            clip["pieces"] = [{"text": text, "duration": len(samples) / sample_rate, **how}
                              for text, samples, how, _ in parts]
        clips[piece.line] = clip
        print(f"[{len(clips)}/{len(batch)}] {clip['file']} {clip['duration']:.1f}s", flush=True)
    if len(clips) < len(batch):
        print(f"deadline reached: {len(clips)} of {len(batch)} lines spoken", flush=True)
    return [clips[line] for line in sorted(clips)], {
        "stopped_at_deadline": len(clips) < len(batch), "lines_done": len(clips),
        "lines_total": len(batch), "devices": [d for d in devices if d and d in used] or None,
        "batch_size": batch_size if speak_together else 1,
        "synthesis_seconds": round(time.perf_counter() - started, 3)}


def record(clips, **run):
    """Glue what the library returns into the executed notebook, with what the run cost:
    Kaggle charges a session's whole time against the GPU quota, whatever its GPUs do."""
    import scrapbook

    run["total_seconds"] = round(time.perf_counter() - RUN_STARTED, 3)
    audio_seconds = sum(clip["duration"] for clip in clips)
    run["audio_seconds"] = round(audio_seconds, 3)
    run["characters"] = characters_of(clips)
    run["session_seconds_per_audio_minute"] = (
        round(run["total_seconds"] * 60 / audio_seconds, 3) if audio_seconds else None)
    scrapbook.glue("clips", clips, encoder="json")
    scrapbook.glue("run", run, encoder="json")
    print(f"done: {len(clips)} clips in {run['total_seconds']:.1f}s", flush=True)
