"""The `kaggletts` command: a thin layer over the Python API.

Exit codes: 0 done, 1 the run failed, 2 bad input, 3 the run goes on (or its outputs
wait) on Kaggle unwatched, or once the GPU quota refreshes, 130 interrupted. Errors print
one line on stderr, never a traceback. The Kaggle backend and the doctor are imported by
the commands that use them, so that `kaggletts --help` stays fast (tests/test_local_backend.py
says what start-up may load)."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import textwrap
import time
import webbrowser
from pathlib import Path
from typing import Any

import click

from kaggletts import api, cost, environment, parameters
from kaggletts.api import default_backend, run_job
from kaggletts.audio import ENCODINGS, FORMAT_NAMES
from kaggletts.backends import get_backend
from kaggletts.cache import LineCache
from kaggletts.cost import summary
from kaggletts.durations import parse_duration
from kaggletts.errors import DamagedResult, Incomplete, KaggleTTSError, UsageError
from kaggletts.finish import write_result_page
from kaggletts.jobs import Job, JobState, batch_lines, find_job, list_jobs
from kaggletts.kernel.support import characters_of
from kaggletts.layout import PAGE_FILE
from kaggletts.notebook import find_notebook, notebook_names
from kaggletts.progress import for_terminal
from kaggletts.result import Result
from kaggletts.settings import KEYS, default_text, load_settings, nearest_pyproject, user_file
from kaggletts.voicelist import voices as voices_of
from kaggletts.words import counted

log = logging.getLogger("kaggletts")


class LazyGroup(click.Group):
    """Subcommands named here as `module:attribute`, imported when first needed."""
    lazy_commands = {
        "book": (
            "kaggletts.audiobook.cli:book",
            "Speak a .txt, .md or .epub book and make it an audiobook: M4B, MP3s.",
        ),
        "emulator": (
            "kaggletts.emulator.cli:emulator",
            "Serve a local Kaggle emulator that really runs pushed notebooks.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return super().get_command(ctx, name)
        module_name, attribute = self.lazy_commands[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, with the lazy commands' help taken from the table above."""
        rows = [
            (name, self.commands[name].get_short_help_str(formatter.width - 20))
            for name in super().list_commands(ctx)
        ]
        rows += [(name, help_text) for name, (_, help_text) in self.lazy_commands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup)
@click.version_option(package_name="kaggletts")
@click.option("-v", "--verbose", is_flag=True, help="Also show papermill's and the kernel's logs.")
def cli(verbose: bool) -> None:
    """Run open text-to-speech notebooks (Qwen3-TTS, Chatterbox, eSpeak NG) on Kaggle's
    free GPUs or on this machine, with validated parameters and verified audio."""
    if sys.stderr.isatty():

        handler: logging.Handler = for_terminal(sys.stderr)
    else:
        handler = logging.StreamHandler(sys.stderr)
        # A line per downloaded file says little in a log; a terminal draws them as a bar.
        logging.getLogger("kaggletts.download").setLevel(
            logging.DEBUG if verbose else logging.WARNING
        )
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        logging.getLogger("papermill").setLevel(logging.INFO)


class Duration(click.ParamType):
    """Seconds, or a text such as 10m or 2h."""
    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:

        if isinstance(value, float):
            return value
        try:
            return parse_duration(value, param.opts[0] if param else "duration")
        except KaggleTTSError as error:
            self.fail(str(error), param, ctx)


output_option = click.option(
    "--out", "output_dir", metavar="DIR", help="Output folder [default: ./kaggletts-output]."
)


def kaggle_options(command: Any) -> Any:
    """Options of the Kaggle backend, shared by `run` and `attach`."""
    options = [
        click.option(
            "--shards",
            type=click.IntRange(1, 64),
            help="Split the batch over this many Kaggle sessions.",
        ),
        click.option(
            "--timeout",
            type=Duration(),
            metavar="DURATION",
            help="The run's time budget: the notebook starts no line after it; a session "
            "Kaggle still runs 10 minutes past its limit has its kernel deleted, a local "
            "run still going 10 minutes past it is stopped.",
        ),
        click.option(
            "--keep-kernels",
            is_flag=True,
            default=None,
            help="Keep the job's kernels on Kaggle after its result is downloaded.",
        ),
        click.option(
            "--machine-shape",
            metavar="SHAPE",
            help="Kaggle accelerator [default: NvidiaTeslaT4 for GPU notebooks].",
        ),
        click.option(
            "--endpoint",
            metavar="URL",
            help="Kaggle API endpoint, e.g. a `kaggletts emulator` URL.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# --- Settings: the command line over pyproject.toml, the user file and KAGGLETTS_* ----------


# Options every backend takes; the other Kaggle options are refused for a local run.
SHARED_OPTIONS = ("endpoint", "timeout")


def refuse_kaggle_only(backend: str, kaggle: dict[str, Any]) -> None:
    """Kaggle options given for a local run are refused rather than ignored (settings from
    files are not: they apply whenever the backend is Kaggle)."""
    given = [
        f"--{name.replace('_', '-')}"
        for name, value in kaggle.items()
        if value and name not in SHARED_OPTIONS
    ]
    if backend != "kaggle" and given:

        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} only {verb} to --backend kaggle")


# What each option of a run means nothing to `attach` for: it collects a run as pushed.
FIXED_WHEN_PUSHED = {
    "shards": "the batch was split when it was pushed",
    "timeout": "the run's deadline was set when it was pushed",
    "machine_shape": "the accelerator was chosen when the run was pushed",
}


def refuse_for_attach(kaggle: dict[str, Any]) -> None:
    for name, why in FIXED_WHEN_PUSHED.items():
        if kaggle.get(name) is not None:

            raise UsageError(
                f"--{name.replace('_', '-')} means nothing to attach, which collects a run: "
                f"{why}"
            )


def command_settings(output_dir: str | None, kaggle: dict[str, Any]) -> Any:
    """The settings in effect here, under the options given on the command line."""
    given = {"output_dir": output_dir, **{f"kaggle.{name}": v for name, v in kaggle.items()}}
    return load_settings().overridden(given, "command line")


def output_folder(output_dir: str | None) -> str | None:
    """--out, else the output folder the settings name (None: jobs' own default)."""
    return output_dir or load_settings().output_dir


def report(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    key: result.to_dict()[key]
                    for key in ("job_id", "status", "audio", "scraps", "notebook", "missing")
                }
            )
        )
        return

    seconds = sum(t for t in result.timings.values() if isinstance(t, int | float))
    origin = "stored result" if result.cached else f"{result.backend} run in {seconds:.1f}s"
    click.echo(
        f"{counted(len(result.audio), 'clip')}, {result.audio_seconds:.1f}s of audio ({origin}) in "
        f"{result.directory}"
    )

    cost = summary(result)
    if cost:
        click.echo(f"cost: {cost}")
    reused = sum(1 for clip in result.clips if clip.reused)
    if reused:
        click.echo(f"{reused} of them taken from the line cache, not spoken again")
    shown = 10
    for line in result.missing[:shown]:
        click.echo(f"missing: line {line.number} ({line.text[:40]!r}): {line.reason}", err=True)
    if len(result.missing) > shown:
        click.echo(f"missing: {len(result.missing) - shown} more, listed on the page", err=True)


yes_option = click.option("--yes", is_flag=True, help="Go ahead without asking.")


def confirmed(yes: bool, question: str) -> bool:
    """--yes, or the user's yes on a terminal. Without a terminal to ask on, a step that
    cannot be undone is refused rather than taken unasked."""

    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: no terminal to ask on; add --yes to go ahead")
    return click.confirm(question, default=False, err=True)


@cli.command()
@click.argument("notebook")
@click.option(
    "-p",
    "--param",
    "pairs",
    multiple=True,
    type=(str, str),
    metavar="NAME VALUE",
    help="A parameter. A text parameter takes the argument exactly as typed; others are "
    "read as YAML (3, true, [a, b]). Repeatable.",
)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    metavar="FILE",
    help="A YAML parameter file, a .txt file (one line per utterance, verbatim) or - for "
    "such text on stdin; a shipped example by name (espeak-demo). Later files and -p win. "
    "Repeatable.",
)
@click.option("--text", metavar="TEXT", help="One line to speak, exactly as typed.")
@click.option(
    "--backend",
    type=click.Choice(["local", "kaggle"]),
    help="Where the notebook runs [default: kaggle for GPU notebooks, else local].",
)
@output_option
@click.option(
    "-o",
    "--output",
    "output_file",
    metavar="FILE",
    help="Also write the clips joined in line order, a short pause between them, as this "
    "one file; its extension names the format: .wav, .mp3, .flac or .ogg (Opus).",
)
@click.option(
    "--format",
    "clip_formats",
    multiple=True,
    type=click.Choice(FORMAT_NAMES, case_sensitive=False),
    help="Also give each clip in this format, beside its WAV. Repeatable.",
)
@click.option("--force", is_flag=True, help="Run again even if this request has a stored result.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Speak every line, even those the line cache holds from earlier requests.",
)
@click.option(
    "--verify", is_flag=True, help="Check a stored result's clips by sha256 before it is returned."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@kaggle_options
@click.option(
    "--ask-above",
    "ask_above",
    type=Duration(),
    metavar="DURATION",
    help="Ask before pushing a GPU notebook whose estimated session time is above this "
    "[default: 1h]; without a terminal such a push is refused unless --yes.",
)
@yes_option
def run(
    notebook: str,
    pairs: tuple[tuple[str, str], ...],
    files: tuple[str, ...],
    text: str | None,
    backend: str | None,
    output_dir: str | None,
    output_file: str | None,
    clip_formats: tuple[str, ...],
    force: bool,
    no_cache: bool,
    verify: bool,
    as_json: bool,
    yes: bool,
    **kaggle: Any,
) -> None:
    """Run NOTEBOOK (espeak, qwen, chatterbox or a path) with parameters. A batch that ends
    with lines missing exits 4; running the same command again speaks only those."""

    if output_dir and Path(output_dir).suffix.lower() in ENCODINGS:
        raise UsageError(
            f"--out {output_dir} names the folder jobs are kept in; -o {output_dir} writes "
            "the clips as one audio file"
        )
    if text is not None:
        pairs = (("text", text), *pairs)
    sources: list[str | parameters.ParameterSet] = [
        *files, parameters.from_cli_pairs(list(pairs))
    ]
    try:
        result = api.execute(
            notebook, sources, force=force, cache=not no_cache, verify=verify,
            output=output_file, formats=clip_formats,
            **execute_options(notebook, backend, output_dir, yes, kaggle),
        )
    except Incomplete as partial:
        report(partial.result, as_json)
        raise
    report(result, as_json)


def execute_options(
    notebook: str, backend: str | None, output_dir: str | None, yes: bool, kaggle: dict[str, Any]
) -> dict[str, Any]:
    """What `execute` takes from a run's options (`run`'s, `book`'s): the settings under
    them, the backend, and that backend's own options."""

    settings = command_settings(output_dir, kaggle)
    backend = backend or settings.backend or api.default_backend(find_notebook(notebook))
    refuse_kaggle_only(backend, kaggle)
    options: dict[str, Any] = (
        {"confirm": lambda question: confirmed(yes, question)}
        if backend == "kaggle"
        # Kaggle's options come from the settings; a local run takes only its timeout.
        else {"timeout": kaggle["timeout"]} if kaggle["timeout"] else {}
    )
    return {"backend": backend, "settings": settings, **options}


@cli.command()
@click.option("--clear", is_flag=True, help="Remove every clip the cache holds.")
def cache(clear: bool) -> None:
    """The line cache: every verified clip, reused by any later request that asks for the
    same line with the same notebook and settings."""

    lines = LineCache()
    if clear:
        click.echo(f"removed {counted(lines.clear(), 'clip')} from {lines.directory}")
        return
    stats = lines.stats()
    click.echo(
        f"{counted(stats.clips, 'clip')}, {stats.bytes / 1e6:.1f} MB of "
        f"{stats.max_bytes / 1e9:.0f} GB at most, in {stats.directory}"
    )


@cli.command()
@output_option
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def jobs(output_dir: str | None, as_json: bool) -> None:
    """List recorded jobs, newest first."""


    found = list_jobs(output_dir)
    if as_json:
        documents = [{**j.record.to_dict(), "directory": str(j.directory)} for j in found]
        click.echo(json.dumps(documents, indent=2))
        return
    # The same request run with two --out folders is two rows with one id: the folder
    # tells them apart.
    folders = [_shown_folder(job.directory.parent.parent) for job in found]
    width = max(map(len, ["FOLDER", *folders]))
    click.echo(
        f"{'JOB':<16}  {'NOTEBOOK':<10} {'BACKEND':<7} {'STATE':<11} {'LINES':>5}  "
        f"{'CREATED':<16}  {'FOLDER':<{width}}  FIRST LINE"
    )
    for job, folder in zip(found, folders, strict=True):
        record = job.record
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created))
        lines = record.lines
        first = lines[0] if lines and isinstance(lines[0], str) else (lines or [{}])[0]
        words = first if isinstance(first, str) else str(first.get("text", ""))
        click.echo(
            f"{record.job_id:<16}  {record.notebook:<10} {record.backend:<7} "
            f"{record.state.value:<11} {len(lines):>5}  {created:<16}  {folder:<{width}}  "
            f"{_first_words(words)}"
        )


def _shown_folder(folder: Path) -> str:
    """An output folder as short as it is clear: under this folder relative, under the
    home folder from ~."""
    for base, shown in ((Path.cwd(), "."), (Path.home(), "~")):
        if folder.is_relative_to(base):
            return str(Path(shown) / folder.relative_to(base))
    return str(folder)


def _first_words(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rsplit(" ", 1)[0] + "…"


@cli.command()
@click.argument("job_id", required=False)
@output_option
def status(job_id: str | None, output_dir: str | None) -> None:
    """Show a job's record (the latest job's without JOB_ID); for Kaggle jobs, each
    session's live state."""

    job = find_job(job_id, output_folder(output_dir))
    record = job.read_record()
    assert record is not None  # find_job found it
    click.echo(f"job {job.id}: {job.spec.name} on {job.backend}, {record.state.value}")
    if record.error:
        click.echo(f"  error: {record.error}")
    if record.state is JobState.COMPLETE:
        try:
            stored = Result.read(job.directory)
        except DamagedResult as damage:
            click.echo(f"  result: none usable: {damage}; running the request again remakes it")
        else:
            if stored is None:
                click.echo("  result: none stored; running the request again makes it")
    if job.backend == "kaggle" and record.state is not JobState.COMPLETE:
        from kaggletts.backends.kaggle.records import RunStore

        run = RunStore(job).load()
        if run is None:
            return
        from kaggletts.backends.kaggle import KaggleBackend

        remote = KaggleBackend(endpoint=run.endpoint).remote()
        for shard in run.shards:
            live = remote.status(shard.slug) if shard.state.value in ("pushing", "pushed") else None
            on_kaggle = f" (on Kaggle: {live.state.lower()})" if live else ""
            click.echo(f"  {run.account}/{shard.slug}: {shard.state.value}{on_kaggle}")


@cli.command()
@click.argument("job_id", required=False)
@output_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@kaggle_options
def attach(job_id: str | None, output_dir: str | None, as_json: bool, **kaggle: Any) -> None:
    """Pick a job (the latest without JOB_ID) up where it stopped: wait for its run,
    download, verify. Never pushes a run that failed or was cancelled again."""

    refuse_for_attach(kaggle)
    job = find_job(job_id, output_folder(output_dir))
    refuse_kaggle_only(job.backend, kaggle)
    # A job is picked up where it ran unless another endpoint is named.
    kaggle["endpoint"] = kaggle["endpoint"] or job.identity.get("endpoint")
    settings = command_settings(None, kaggle)
    runner = get_backend(job.backend, **settings.backend_options(job.backend))
    report(run_job(job, runner, attach=True), as_json)


@cli.command()
@click.argument("job_id")
@output_option
@yes_option
def cancel(job_id: str, output_dir: str | None, yes: bool) -> None:
    """Stop a Kaggle job by deleting the kernels of its sessions that may still run (Kaggle
    tells no session id, so deleting is the stop that works); asks first (--yes skips)."""
    from kaggletts.backends.kaggle import KaggleBackend
    from kaggletts.backends.kaggle.records import RunStore

    job = find_job(job_id, output_folder(output_dir))
    if job.backend != "kaggle":
        raise UsageError(f"job {job.id} ran locally; there is nothing to cancel on Kaggle")
    run = RunStore(job).load()
    running = run.may_run() if run else []
    if not running:
        click.echo(f"nothing of job {job.id} runs on Kaggle")
        return
    assert run is not None
    click.echo(
        f"cancelling job {job.id} deletes {'kernel' if len(running) == 1 else 'kernels'} "
        f"{', '.join(f'{run.account}/{s.slug}' for s in running)} on Kaggle, which stops "
        "their sessions. Lines they spoke are lost unless Kaggle lists a running or "
        "cancelled session's outputs (not known: kaggletts takes whatever is listed first); "
        "running the request again speaks every line not kept."
    )
    if not confirmed(yes, f"Delete {counted(len(running), 'kernel')}?"):
        click.echo("nothing was deleted")
        return
    for done in KaggleBackend(endpoint=job.identity.get("endpoint")).stop(job):
        click.echo(done)


@cli.command()
@output_option
@yes_option
@click.option(
    "--endpoint", metavar="URL", help="Kaggle API endpoint, e.g. a `kaggletts emulator` URL."
)
def clean(output_dir: str | None, yes: bool, endpoint: str | None) -> None:
    """Delete the Kaggle kernels kaggletts made for jobs that are over (finished, failed,
    or past their time limits), found from the job records; never any other kernel. Only
    lists them unless --yes is given."""
    from kaggletts.backends.kaggle import KaggleBackend

    settings = command_settings(None, {"endpoint": endpoint})
    backend = KaggleBackend(**settings.backend_options("kaggle"))
    remote = backend.remote()
    found = 0
    for recorded in list_jobs(output_folder(output_dir)):
        if recorded.record.backend != "kaggle":
            continue
        job = Job.from_record(recorded.directory)
        slugs, kept_because = backend.leftover_kernels(job)
        if kept_because and not kept_because.startswith("run as"):
            click.echo(f"kept job {job.id}'s kernels: {kept_because}")
        for slug in slugs:
            found += 1
            if yes:
                remote.delete_kernel(slug)
            verb = "deleted" if yes else "would delete"
            click.echo(f"{verb} {remote.username}/{slug} (job {job.id}, {recorded.record.state})")
    if not found:
        click.echo("no kernel of a finished job is left on Kaggle")
    elif not yes:
        click.echo(f"{counted(found, 'kernel')}; `kaggletts clean --yes` deletes them")


@cli.command("open")
@click.argument("job_id", required=False)
@output_option
def open_page(job_id: str | None, output_dir: str | None) -> None:
    """Open a finished job's audition page (a player per clip) in the web browser; without
    JOB_ID, the latest job's."""


    job = find_job(job_id, output_folder(output_dir))
    try:
        result = Result.read(job.directory)
    except DamagedResult as damage:
        raise UsageError(
            f"job {job.id} has no usable result: {damage}; running the request again remakes it"
        ) from None
    if result is None:
        raise UsageError(f"job {job.id} has no result yet; `kaggletts status {job.id}` says why")
    page = job.directory / PAGE_FILE
    if not page.is_file():  # a job stored before kaggletts wrote pages
        page = write_result_page(result)
    url = page.as_uri()
    if webbrowser.open(url):
        click.echo(url)
    else:
        click.echo(f"no web browser found; open {url}")


@cli.command()
@click.option(
    "--endpoint",
    metavar="URL",
    help="Kaggle API endpoint, e.g. a `kaggletts emulator` URL.",
)
@click.option(
    "--estimate",
    "notebook",
    metavar="NOTEBOOK",
    help="Estimate the session time of a batch for NOTEBOOK (with -f) from the Kaggle runs "
    "stored under --out of the same notebook, mode and model, instead of asking Kaggle.",
)
@click.option("-f", "--file", "files", multiple=True, metavar="FILE", help="The batch, as for run.")
@output_option
def quota(
    endpoint: str | None, notebook: str | None, files: tuple[str, ...], output_dir: str | None
) -> None:
    """GPU hours used and left this week on Kaggle, or a batch's estimated cost."""
    if notebook:
        estimate_quota(notebook, files, output_folder(output_dir))
        return
    from kaggletts.backends.kaggle import KaggleBackend

    settings = command_settings(None, {"endpoint": endpoint})
    left = KaggleBackend(**settings.backend_options("kaggle")).quota()
    click.echo(
        f"GPU: {left.used_seconds / 3600:.1f} h used, {left.remaining_seconds / 3600:.1f} h "
        f"left of {left.allowed_seconds / 3600:.1f} h (refreshes {left.refresh_time})"
    )


def estimate_quota(notebook: str, files: tuple[str, ...], output_dir: str | None) -> None:
    spec = find_notebook(notebook)
    values = api.validate(spec, list(files))
    defaults = {name: parameter.default for name, parameter in spec.parameters.items()}
    kind = cost.kind_of(spec.name, values, defaults)
    characters = characters_of(batch_lines(values))
    found = cost.estimate(kind, characters, cost.kaggle_history(output_dir))
    if found is None:
        click.echo(f"no Kaggle run of {kind} is stored yet to estimate from")
        return
    spent = "GPU quota" if spec.kernel.enable_gpu else "session time (CPU only: no GPU quota)"
    click.echo(
        f"{kind}: {characters} characters, about {found.session_seconds / 60:.1f} min of "
        f"{spent} in one session: {found.startup_seconds:.0f} s to start, "
        f"{found.seconds_per_character:.3f} s per character, from "
        f"{counted(found.runs, 'recorded session')} (their own time: queueing and start-up "
        "before the notebook are extra)"
    )


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print the notebooks as JSON.")
def notebooks(names: tuple[str, ...], as_json: bool) -> None:
    """List the notebooks (or the ones named) with their parameters: type, default, help,
    allowed values, and where they run by default."""

    specs = [find_notebook(name) for name in names or notebook_names()]
    described: dict[str, Any] = {
        spec.name: {
            "path": str(spec.path),
            "backend": default_backend(spec),
            "per_utterance": list(spec.per_utterance),
            "parameters": {
                p.name: {"type": p.type_name, "default": p.default, "help": p.help}
                for p in spec.parameters.values()
            },
            "choices": {name: list(values) for name, values in spec.choices.items()},
            "choices_from": dict(spec.choices_from),
        }
        for spec in specs
    }
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for name, info in described.items():
        where = "on Kaggle" if info["backend"] == "kaggle" else "on this machine"
        click.echo(f"{name}  (runs {where} by default; {info['path']})")
        for pname, p in info["parameters"].items():
            click.echo(f"  {pname}: {p['type']} = {p['default']!r}\n      {p['help']}")
            if pname in info["choices"]:
                click.echo(f"      one of: {', '.join(map(str, info['choices'][pname]))}")
            elif pname in info["choices_from"]:
                click.echo(f"      one of the values `kaggletts voices {name}` lists")
        if info["per_utterance"]:
            click.echo(f"  per utterance: {', '.join(info['per_utterance'])}")
        click.echo()


@cli.command()
@click.argument("notebook")
@click.option("--json", "as_json", is_flag=True, help="Print the lists as JSON.")
def voices(notebook: str, as_json: bool) -> None:
    """List every speaker, voice, language and variant NOTEBOOK accepts (the lists its
    parameters are checked against), those a line may set for itself first."""

    spec = find_notebook(notebook)
    found = voices_of(spec)
    if as_json:
        document = {choice.parameter: choice.to_dict() for choice in found}
        click.echo(json.dumps({"notebook": spec.name, "parameters": document}, indent=2))
        return
    if not found:
        click.echo(f"{spec.name} names no list of voices, speakers or languages")
    for choice in found:
        notes = [f"default {choice.default!r}"]
        notes += ["a line may set its own"] if choice.per_line else []
        notes += ["any case"] if choice.ignore_case else []
        notes += [f"when {name} is {value!r}" for name, value in choice.only_when.items()]
        click.echo(f"{choice.parameter}, {counted(len(choice.values), 'value')} "
                   f"({'; '.join(notes)}):")
        click.echo(_value_list(choice.values))
        if choice.variants:
            click.echo(f"  then optionally + one of {len(choice.variants)} variants (exact case):")
            click.echo(_value_list(choice.variants))
        click.echo()


def _value_list(values: tuple[str, ...]) -> str:
    """Values wrapped in lines, comma-separated; one a line where a value holds a comma
    ("Chinese (Mandarin, latin as English)")."""

    if any("," in value for value in values):
        return "\n".join(f"    {value}" for value in values)
    return textwrap.fill(", ".join(values), width=88, initial_indent="    ",
                         subsequent_indent="    ", break_on_hyphens=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def config(as_json: bool) -> None:
    """Show the settings in effect here and where each came from: pyproject.toml's
    [tool.kaggletts], the user file, then KAGGLETTS_* variables (later ones win)."""

    settings = load_settings()
    settings.check_notebook_defaults()
    shown: dict[str, dict[str, Any]] = {
        key.name: {"value": settings.value(key.name), "origin": settings.origins[key.name]}
        if key.name in settings.origins
        else {"value": None, "origin": "default", "default": default_text(key)}
        for key in KEYS
    }
    defaults = {
        notebook: {
            name: {"value": value, "origin": given.where((name,))}
            for name, value in given.values.items()
        }
        for notebook, given in settings.notebooks.items()
    }
    if as_json:
        click.echo(json.dumps({"settings": shown, "notebooks": defaults}, indent=2))
        return
    project = nearest_pyproject(Path.cwd())
    click.echo(f"# project file: {project or 'none'}")
    click.echo(f"# user file:    {user_file()}{'' if user_file().is_file() else ' (none)'}")
    rows = [
        (name, repr(entry["value"]) if entry["origin"] != "default" else "", entry)
        for name, entry in shown.items()
    ]
    rows += [
        (f"{notebook}.{name}", repr(entry["value"]), entry)
        for notebook, given in defaults.items()
        for name, entry in given.items()
    ]
    for name, value, entry in rows:
        value = value or f"({entry['default']})"
        click.echo(f"{name:<22} {value:<28} {entry['origin']}")


@cli.command()
@click.option("--run", "round_trip", is_flag=True,
              help="Also push a tiny CPU notebook to Kaggle and download its audio "
              "(one short session, no GPU quota).")
@click.option("--endpoint", metavar="URL", help="Kaggle API endpoint to check.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(round_trip: bool, endpoint: str | None, as_json: bool) -> None:
    """Check that this machine and Kaggle account are ready: settings, credentials and
    their file, the endpoint, a login, the GPU quota, the notebooks, local eSpeak.
    Exits 0 only when every check passes."""
    from kaggletts.doctor import examine, passed

    findings = examine(endpoint=endpoint, round_trip=round_trip)
    if as_json:
        click.echo(json.dumps({"ok": passed(findings),
                               "checks": [f.to_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            click.echo(f"{finding.verdict.value:<5} {finding.check.value:<13} {finding.detail}")
            if finding.fix:
                click.echo(f"{'':<19}fix: {finding.fix}")
    if not passed(findings):
        sys.exit(1)


def main() -> None:
    """Console entry point: errors become one line on stderr and their exit code."""
    # SIGTERM (timeout, kill, a container stop) ends a run as Ctrl-C does: with a record
    # that says what happened and a word on whatever keeps running on Kaggle. SIGINT too,
    # explicitly: a command a script starts in the background inherits SIGINT ignored, and
    # `kill -INT` must still stop it that way.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    try:
        cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KaggleTTSError as error:
        click.echo(f"error: {error.text()}", err=True)
        sys.exit(error.exit_code)
    except Exception as error:
        if environment.debug():
            raise
        click.echo(
            f"internal error: {type(error).__name__}: {error}\n"
            "  this is a bug in kaggletts; set KAGGLETTS_DEBUG=1 to see the traceback",
            err=True,
        )
        sys.exit(1)
