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
import importlib.util
import json
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
# The line ledger, in the working folder: its name sorts before every clip's ("0-" before
# "001-"), since Kaggle lists and downloads only the first 500 outputs of a session.
LEDGER_FILE = "0-kaggletts-ledger.jsonl"
# The version of the records written here (each clip's, the run's, every ledger entry's),
# as kaggletts.records reads them: raise it when a field changes its meaning or goes.
RECORD_SCHEMA = 1


# Volta and later: Kaggle's T4 is 7.5; a P100 (6.0) has no kernels in current PyTorch builds.
MIN_COMPUTE_CAPABILITY = (7, 0)
# "cpu" tells a GPU notebook on Kaggle that it is meant to run on the CPU.
DEVICE_SWITCH = "KAGGLETTS_DEVICE"
PROBE_SECONDS = 5.0


class MachineUnfit(RuntimeError):
    """This machine cannot run the notebook: said before anything is installed or downloaded."""


def gpu_compute_capabilities():
    """Each NVIDIA GPU's compute capability as nvidia-smi reads it through NVML, which leaves
    CUDA unstarted (worker processes are forked later); empty without a driver."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    capabilities = []
    for line in listed.split():
        major, _, minor = line.partition(".")
        if major.isdigit() and minor.isdigit():
            capabilities.append((int(major), int(minor)))
    return capabilities


def index_reachable():
    """Whether the package index answers a TCP connection within PROBE_SECONDS."""
    import socket
    from urllib.parse import urlsplit

    index = urlsplit(os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple")
    try:
        socket.create_connection((index.hostname, index.port or 443), PROBE_SECONDS).close()
    except OSError:
        return False
    return True


def check_machine(modules):
    """Stop before installing or downloading anything where the run could only fail or
    crawl. On Kaggle (KAGGLE_KERNEL_RUN_TYPE is set) a GPU of compute capability 7.0 or more
    must be there, unless KAGGLETTS_DEVICE=cpu says the run is meant for the CPU; elsewhere a
    machine without one runs on its CPU. When one of `modules` is missing, the package index
    must answer: the notebook pip-installs it (and then downloads its weights, so an image
    with the package but no internet is not caught here)."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and os.environ.get(DEVICE_SWITCH) != "cpu":
        found = gpu_compute_capabilities()
        if not any(capability >= MIN_COMPUTE_CAPABILITY for capability in found):
            seen = ", ".join(f"{major}.{minor}" for major, minor in found) or "no GPU at all"
            raise MachineUnfit(
                f"this notebook needs a GPU of compute capability 7.0 or more (a T4: push "
                f"with machine shape NvidiaTeslaT4), and this machine has {seen}; "
                f"{DEVICE_SWITCH}=cpu runs it on the CPU, very slowly")
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing and not index_reachable():
        raise MachineUnfit(
            f"this notebook needs the internet to install {', '.join(missing)} and download "
            f"its model, and the package index did not answer "
            f"within {PROBE_SECONDS:g} s: push it with enable_internet true (Kaggle: a "
            "phone-verified account)")


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
    versions: dict[str, str | None] = {}
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    data = path.read_bytes()
    return {
        "schema": RECORD_SCHEMA,
        "text": utterance["text"],
        "file": os.path.relpath(path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "duration": len(samples) / sample_rate,
        "sample_rate": sample_rate,
        "rms": round(rms, 6),
        "synthesis_seconds": round(synthesis_seconds, 4),
        "settings": {k: v for k, v in utterance.items() if k not in ("text", "retry")},
    }


class Ledger:
    """The run's line ledger: one JSON line for each line spoken (its clip's record) or
    failed (the reason), then one for the run, each flushed and fsynced before the next
    line starts, so that whatever ends the session, what was made is on record in a file
    of its own (kaggletts reads it, not the executed notebook)."""

    def __init__(self, path=LEDGER_FILE):
        self.path = Path(path)

    def add(self, kind, **fields):
        entry = {"schema": RECORD_SCHEMA, "kind": kind, **fields}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return entry


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
    pieces: list[str] = []
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


def duration_problem(text, seconds, seconds_per_character):
    """What is wrong with a generation far longer than its text (a runaway: a wrong ref_text
    can babble until max_new_tokens and still pass the NaN and silence checks) or far
    shorter (cut off); None when its length is plausible."""
    shortest, longest = duration_bounds(text, seconds_per_character)
    if seconds > longest:
        return (f"ran away: {seconds:.1f}s of audio for {len(text)} characters, at most "
                f"{longest:.1f}s expected")
    if seconds < shortest:
        return (f"was cut off: {seconds:.1f}s of audio for {len(text)} characters, at least "
                f"{shortest:.1f}s expected")
    return None


def audio_problem(text, outcome, seconds_per_character):
    """Why a generation of `text` is unusable, or None."""
    wav, sample_rate, _ = outcome
    if not usable_audio(wav):
        return "NaN or silent audio"
    return duration_problem(text, len(wav) / sample_rate, seconds_per_character)


@dataclass(frozen=True)
class Piece:
    """One generation's worth of a line: the line's place in the batch (0-based), which of
    its pieces this is, the line's settings, the text to speak, and the line's number in
    its job (what messages call it)."""

    line: int
    part: int
    utterance: dict
    text: str
    number: int = 0


@dataclass
class Made:
    """What became of a piece: its outcome (samples, rate, how they were made), or why it
    failed; the seconds it took, and what went wrong on the way to a good outcome."""

    piece: Piece
    outcome: tuple | None = None
    seconds: float = 0.0
    failure: str | None = None
    warnings: tuple = ()
    device: str | None = None


class BatchStopped(RuntimeError):
    """No later line can be made in this process (the model cannot load, the device is
    gone): the batch ends here, with what it made kept."""


def ends_the_session(error):
    """A CUDA error poisons the process: every later call fails the same way (and a worker
    that cannot use CUDA hands the batch back to the notebook's own process)."""
    text = str(error)
    return any(sign in text for sign in ("device-side assert", "CUDA error",
                                         "CUDA in forked subprocess"))


def plan_work(batch, max_characters, batch_size, numbers=()):
    """Every line's pieces as units of work, in the order of their first line. With
    `batch_size` 1 each piece is a unit, in input order. Otherwise pieces with the same
    settings (one call speaks them together) are sorted by length, so a unit's members end
    near the same step, and cut into units of at most `batch_size`."""
    numbers = list(numbers) or list(range(1, len(batch) + 1))
    pieces = [Piece(line, part, utterance, text, numbers[line])
              for line, utterance in enumerate(batch)
              for part, text in enumerate(split_text(utterance["text"], max_characters))]
    if batch_size <= 1:
        return [[piece] for piece in pieces]
    groups: dict[tuple, list[Piece]] = {}
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
    loads = [0] * workers
    shares: list[list[list[Piece]]] = [[] for _ in range(workers)]
    for unit in sorted(units, key=expected_cost, reverse=True):
        least = loads.index(min(loads))
        shares[least].append(unit)
        loads[least] += expected_cost(unit)
    return [sorted(share, key=first_line) for share in shares]


def out_of_memory(error):
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def speak_alone(piece, speak, seconds_per_character):
    """A piece in a call of its own. One that raises or comes out unusable is made once
    more, with `retry` 1 in its utterance (the notebook's `speak` moves to its next seed);
    after a second failure the Made says why, and the batch goes on without it. Out of
    memory and errors that end the session are raised."""
    reasons: list[str] = []
    for retry in (0, 1):
        utterance = {**piece.utterance, "retry": retry} if retry else piece.utterance
        started = time.perf_counter()
        try:
            outcome = speak(utterance, piece.text)
        except Exception as error:
            if out_of_memory(error) or ends_the_session(error):
                raise
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = audio_problem(piece.text, outcome, seconds_per_character)
            if reason is None:
                warnings = tuple(f"made again after: {earlier}" for earlier in reasons)
                return Made(piece, outcome, time.perf_counter() - started, warnings=warnings)
        reasons.append(reason)
        again = "; once more with the next seed" if not retry else ""
        print(f"line {piece.number} {reason}{again}", flush=True)
    return Made(piece, failure="; then ".join(reasons))


def speak_unit(unit, speak, speak_together, seconds_per_character):
    """A Made for every piece of `unit`: together in one call when the notebook can, else
    one by one. A failed call (other than out of memory, which the caller handles) or an
    unusable clip from it has those pieces spoken alone, so a bad line fails alone."""
    if speak_together is None or len(unit) == 1:
        return [speak_alone(piece, speak, seconds_per_character) for piece in unit]
    started = time.perf_counter()
    try:
        outcomes = speak_together(unit)
    except Exception as error:
        if out_of_memory(error) or ends_the_session(error):
            raise
        print(f"{len(unit)} lines together failed ({type(error).__name__}: {error}): "
              "each alone", flush=True)
        return speak_unit(unit, speak, None, seconds_per_character)
    share = (time.perf_counter() - started) / len(unit)  # each piece's part of the call
    return [Made(piece, outcome, share)
            if audio_problem(piece.text, outcome, seconds_per_character) is None
            else speak_alone(piece, speak, seconds_per_character)
            for piece, outcome in zip(unit, outcomes, strict=True)]


# Lines failing alike before anything was made: the model, not the lines, is at fault.
FAILURES_BEFORE_STOPPING = 3


def speak_units(units, speak, speak_together, deadline, seconds_per_character):
    """Speak `units` in order on this process's model, yielding a Made per piece; start no
    unit after `deadline`. Out of memory halves the unit, and no later one is bigger; the
    same failure on the first lines stops the batch (BatchStopped)."""
    fits = max(map(len, units), default=1)
    todo = list(units)
    made_any = False
    alike: list[str] = []  # the failures in a row, while they are the same
    while todo:
        if deadline and time.time() >= deadline:
            return
        unit = todo.pop(0)
        if len(unit) > fits:
            todo[:0] = [unit[start:start + fits] for start in range(0, len(unit), fits)]
            continue
        try:
            made = speak_unit(unit, speak, speak_together, seconds_per_character)
        except Exception as error:
            if not out_of_memory(error) or len(unit) == 1:
                raise BatchStopped(f"{type(error).__name__}: {error}") from error
            fits = len(unit) // 2
            print(f"out of memory with {len(unit)} lines together: {fits} at most from here",
                  flush=True)
            todo.insert(0, unit)
            continue
        yield from made
        for each in made:
            if each.failure is None:
                made_any, alike = True, []
            elif alike and alike[-1] != each.failure:
                alike = [each.failure]
            else:
                alike.append(each.failure)
        if not made_any and len(alike) >= FAILURES_BEFORE_STOPPING:
            raise BatchStopped(f"{len(alike)} lines in a row failed alike: {alike[-1]}")


def work_share(device, share, speak, speak_together, deadline, seconds_per_character, results,
               cpu_threads):
    """A worker process: its share of the units on `device`, each Made sent to the parent
    as it is made, then "done", or "failed" with the error."""
    import numpy as np

    if device.startswith("cuda:"):  # its GPU becomes its cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_device(int(device.removeprefix("cuda:")))
    elif "torch" in sys.modules:  # CPU workers share the cores rather than each taking all
        sys.modules["torch"].set_num_threads(cpu_threads)
    try:
        for made in speak_units(share, speak, speak_together, deadline, seconds_per_character):
            if made.outcome is not None:
                wav, rate, made_with = made.outcome
                made.outcome = (np.asarray(wav, np.float32), rate, made_with)
            results.put(("made", device, made))
        results.put(("done", device, None))
    except BaseException as error:
        results.put(("failed", device, f"{type(error).__name__}: {error}"))


def visible_device(index):
    """How CUDA_VISIBLE_DEVICES names this process's `index`-th GPU (cuda:index): the entry
    of the parent's own list where the session already restricts or names its devices
    ("2,3", "GPU-<uuid>,..."), else the index itself."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return str(index)
    return [name.strip() for name in visible.split(",")][index]


class CudaLostInFork(RuntimeError):
    """The workers could not use CUDA: it was initialised in this process before they were
    forked (counting GPUs does that where NVML is missing)."""


def speak_in_workers(devices, shares, speak, speak_together, deadline, seconds_per_character):
    """Yield a Made for each piece from one forked process per device. Forked,
    so each inherits the notebook's functions and settings; the parent has loaded no model
    and has not initialised CUDA (a forked child could not use it then)."""
    import multiprocessing
    import queue

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    on_cpu = sum(1 for device in devices if not device.startswith("cuda:"))
    cpu_threads = max(1, (os.cpu_count() or 1) // max(on_cpu, 1))
    processes = [context.Process(target=work_share, daemon=True,
                                 args=(device, share, speak, speak_together, deadline,
                                       seconds_per_character, results, cpu_threads))
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
                raise BatchStopped(f"{payload} (on {device})")
            if kind == "done":
                running -= 1
            else:
                made_any = True
                payload.device = device
                yield payload
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


def speak_everywhere(devices, units, speak, speak_together, deadline, seconds_per_character):
    """A Made for every piece: on the one device in this process, or dealt to one forked
    worker per device. Workers that cannot use CUDA leave the whole batch to this process's
    first device: slower, but no session is lost to it."""
    if len(devices) > 1:
        try:
            yield from speak_in_workers(devices, deal(units, len(devices)), speak,
                                        speak_together, deadline, seconds_per_character)
            return
        except CudaLostInFork as error:
            print(f"the worker processes cannot use CUDA ({error}): every line on "
                  f"{devices[0]} in this process instead", flush=True)
    for made in speak_units(units, speak, speak_together, deadline, seconds_per_character):
        made.device = devices[0]
        yield made


def speak_batch(batch, speak, out_dir, deadline, max_characters, seconds_per_character,
                speak_together=None, batch_size=1, devices=(None,), numbers=(), total=0):
    """Speak every line, write each as soon as all its pieces are done, and put it in the
    line ledger at once: its clip's record, or why it failed. Start no new work after
    `deadline` (Unix time, 0: none). `speak(utterance, text)` returns float samples, their
    rate and what the record should say about how they were made (precision, seed...);
    `speak_together(pieces)` (optional) returns the same for several pieces with the same
    settings in one call, at most `batch_size` at once. A line longer than `max_characters`
    is spoken in pieces joined by a short pause. With several `devices` (labels such as
    cuda:0, cuda:1) each gets a process with its own model and a share of the work dealt by
    expected length, and each clip names the device that made it. `numbers` are the lines'
    numbers in their job (default 1, 2, ...) and `total` the job's line count (default this
    batch's): clip names and the ledger use them, so a job's lines keep their names in
    whichever session they are made. A bad line is retried once, then recorded as failed;
    only an error that leaves no later line possible stops the batch, and that too ends
    normally, with its reason in the run's record.
    Returns the clips spoken, in input order, and how far the batch got."""
    started = time.perf_counter()
    numbers = list(numbers) or list(range(1, len(batch) + 1))
    if len(numbers) != len(batch):
        raise ValueError(f"{len(numbers)} line numbers for {len(batch)} lines")
    total = total or len(batch)
    ledger = Ledger()
    units = plan_work(batch, max_characters, batch_size if speak_together else 1, numbers)
    parts_of: dict[int, int] = {}
    for unit in units:
        for piece in unit:
            parts_of[piece.line] = parts_of.get(piece.line, 0) + 1
    pieces_of: dict[int, dict[int, Made]] = {}
    clips: dict[int, dict] = {}
    failed: dict[int, dict] = {}
    used: set = set()
    stopped = None
    made = speak_everywhere(devices, units, speak, speak_together, deadline,
                            seconds_per_character)
    try:
        for each in made:
            used.add(each.device)
            line = each.piece.line
            pieces_of.setdefault(line, {})[each.piece.part] = each
            if len(pieces_of[line]) < parts_of[line]:
                continue
            parts = [pieces_of[line][part] for part in range(parts_of[line])]
            utterance = batch[line]
            reasons = [part.failure for part in parts if part.failure]
            if reasons:
                failed[line] = ledger.add("line", line=numbers[line], status="failed",
                                          text=utterance["text"], reason="; ".join(reasons),
                                          settings=write_settings(utterance))
                print(f"[{len(clips) + len(failed)}/{len(batch)}] (failed) line "
                      f"{numbers[line]}: {failed[line]['reason']}", flush=True)
                continue
            clip = write_line(parts, utterance,
                              clip_path(out_dir, numbers[line], utterance, total))
            clips[line] = clip
            ledger.add("line", line=numbers[line], status="spoken", **clip)
            print(f"[{len(clips) + len(failed)}/{len(batch)}] {clip['file']} "
                  f"{clip['duration']:.1f}s", flush=True)
    except Exception as error:
        stopped = str(error) if isinstance(error, BatchStopped) else (
            f"{type(error).__name__}: {error}")
        print(f"the batch stopped: {stopped}", flush=True)
    reached = len(clips) + len(failed)
    if reached < len(batch) and stopped is None:
        print(f"deadline reached: {reached} of {len(batch)} lines done", flush=True)
    return [clips[line] for line in sorted(clips)], {
        "stopped_at_deadline": reached < len(batch) and stopped is None,
        "stopped": stopped, "lines_done": len(clips), "lines_failed": len(failed),
        "lines_total": len(batch), "devices": [d for d in devices if d and d in used] or None,
        "batch_size": batch_size if speak_together else 1,
        "synthesis_seconds": round(time.perf_counter() - started, 3)}


def write_settings(utterance):
    return {k: v for k, v in utterance.items() if k not in ("text", "retry")}


def write_line(parts, utterance, path):
    """Join a line's pieces with a short pause, write its WAV, and return its clip record:
    how its last piece was made, each piece's own when there are several, and what went
    wrong on the way."""
    import numpy as np

    sample_rate = parts[0].outcome[1]
    audio: list = []
    for part in parts:
        audio += [np.zeros(int(PAUSE_SECONDS * sample_rate), np.float32)] if audio else []
        audio.append(np.asarray(part.outcome[0], dtype=np.float32))
    clip = write_clip(path, float_to_pcm16(np.concatenate(audio)), sample_rate, utterance,
                      sum(part.seconds for part in parts))
    clip.update(parts[-1].outcome[2])  # how the line ended; each piece's own is in `pieces`
    if parts[-1].device:
        clip["device"] = parts[-1].device
    warnings = [warning for part in parts for warning in part.warnings]
    if warnings:
        clip["warnings"] = warnings
    if len(parts) > 1:
        clip["pieces"] = [{"text": part.piece.text,
                           "duration": len(part.outcome[0]) / part.outcome[1],
                           **part.outcome[2], **({"device": part.device} if part.device else {})}
                          for part in parts]
    return clip


def record(clips, **run):
    """Put the run's record last in the ledger, and glue what the library returns into the
    executed notebook as its summary, with what the run cost: Kaggle charges a session's
    whole time against the GPU quota, whatever its GPUs do."""
    import scrapbook

    run["schema"] = RECORD_SCHEMA
    run["total_seconds"] = round(time.perf_counter() - RUN_STARTED, 3)
    audio_seconds = sum(clip["duration"] for clip in clips)
    run["audio_seconds"] = round(audio_seconds, 3)
    run["characters"] = characters_of(clips)
    run["session_seconds_per_audio_minute"] = (
        round(run["total_seconds"] * 60 / audio_seconds, 3) if audio_seconds else None)
    Ledger().add("run", **run)
    scrapbook.glue("clips", clips, encoder="json")
    scrapbook.glue("run", run, encoder="json")
    clip_count = f"{len(clips)} clip{'' if len(clips) == 1 else 's'}"
    print(f"done: {clip_count} in {run['total_seconds']:.1f}s", flush=True)
