"""`kaggletts emulator`: serve the Kaggle emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from .config import (
    DEFAULT_KEY,
    DEFAULT_USER,
    FAULT_KINDS,
    Assumption,
    Faults,
    Latency,
    Limits,
    Quirks,
    parse_assumptions,
)
from .emulator import CannotListen, Emulator, StateInUse

# Relative paths are taken from the directory the emulator was started in.
DIRECTORY = click.Path(file_okay=False, path_type=Path, resolve_path=True)


class RefusedToServe(click.ClickException):
    """A one-line refusal (`Error: ...`) with the bad-input exit code."""

    exit_code = 2


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # Another host name may resolve anywhere: treat it as reachable from outside.
        return False


def _parse_users(values: tuple[str, ...]) -> dict[str, str]:
    users: dict[str, str] = {}
    for value in values:
        name, separator, key = value.partition(":")
        if not separator or not name or not key:
            raise click.BadParameter(f"'{value}' is not NAME:KEY", param_hint="--user")
        users[name] = key
    return users or {DEFAULT_USER: DEFAULT_KEY}


def _parse_datasets(values: tuple[str, ...]) -> list[tuple[str, str, Path]]:
    parsed = []
    for value in values:
        ref, separator, folder = value.partition("=")
        owner, slash, slug = ref.partition("/")
        if not separator or not slash or not owner or not slug or not Path(folder).is_dir():
            raise click.BadParameter(
                f"'{value}' is not OWNER/SLUG=DIR with an existing DIR", param_hint="--dataset"
            )
        parsed.append((owner, slug, Path(folder).resolve()))
    return parsed


def _parse_kernel_env(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, separator, setting = value.partition("=")
        if not separator or not name:
            raise click.BadParameter(f"'{value}' is not NAME=VALUE", param_hint="--kernel-env")
        parsed[name] = setting
    return parsed


def _parse_unknown_status(value: str | None) -> tuple[str | None, float]:
    if value is None:
        return None, 0.0
    name, separator, seconds = value.rpartition(":")
    try:
        duration = float(seconds)
    except ValueError:
        duration = -1.0
    if not separator or not name or duration <= 0:
        raise click.BadParameter(
            f"'{value}' is not NAME:SECONDS with SECONDS > 0", param_hint="--unknown-status"
        )
    return name, duration


def _parse_duration(value: str, option: str) -> float:
    from kaggletts.durations import parse_duration
    from kaggletts.errors import UsageError

    try:
        return parse_duration(value, option)
    except UsageError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def _positive(value: float, option: str) -> float:
    if not value > 0:
        raise click.BadParameter(f"must be more than 0, not {value}", param_hint=option)
    return value


def _parse_kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in value.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        raise click.BadParameter(
            f"unknown kinds {unknown}; choose from {','.join(FAULT_KINDS)}",
            param_hint="--fault-kinds",
        )
    return kinds


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME:KEY",
    help=f"An account (repeatable). Default: {DEFAULT_USER}:{DEFAULT_KEY}.",
)
@click.option(
    "--state",
    type=DIRECTORY,
    default=None,
    help="Folder keeping kernels, versions, outputs and datasets across restarts "
    "(default: a temporary folder removed on exit).",
)
@click.option(
    "--gpu-sessions", default=2, show_default=True, help="Concurrent GPU sessions per user."
)
@click.option(
    "--cpu-sessions", default=5, show_default=True, help="Concurrent CPU sessions per user."
)
@click.option(
    "--assume",
    "assumptions",
    multiple=True,
    metavar="NAME",
    help="Act on an assumption about Kaggle that is not known to hold (repeatable): "
    + ", ".join(assumption.value for assumption in Assumption)
    + ". See docs/emulator.md.",
)
@click.option("--seed", type=int, default=None, help="Seed for the random faults.")
@click.option("--queue-delay", default=0.0, show_default=True, help="Seconds QUEUED.")
@click.option("--cold-start", default=0.0, show_default=True, help="Seconds RUNNING before cell 1.")
@click.option("--request-delay", default=0.0, show_default=True, help="Seconds added per request.")
@click.option("--fault-rate", default=0.0, show_default=True, help="Probability of a fault.")
@click.option(
    "--fault-kinds",
    default=",".join(Faults().kinds),
    show_default=True,
    help=f"Comma-separated fault kinds to draw from, of {','.join(FAULT_KINDS)}.",
)
@click.option("--stale-status", default=0.0, show_default=True, help="Seconds of stale status.")
@click.option(
    "--late-outputs", default=0.0, show_default=True, help="Seconds outputs lag COMPLETE."
)
@click.option(
    "--unlisted-notebook",
    is_flag=True,
    help="Leave the executed notebook (__notebook__.ipynb) out of output listings.",
)
@click.option(
    "--unknown-status",
    metavar="NAME:SECONDS",
    default=None,
    help="For SECONDS after each push, the status call answers NAME instead of the real "
    "status (a status kagglesdk may not know).",
)
@click.option(
    "--gpu-quota",
    default="30h",
    show_default=True,
    metavar="DURATION",
    help="Weekly GPU quota per user (seconds, or a text such as 2h).",
)
@click.option(
    "--gpu-quota-scale",
    default=1.0,
    show_default=True,
    help="Seconds of GPU quota a second of a GPU session uses (3600: a second is an hour).",
)
@click.option(
    "--gpu-quota-period",
    default=None,
    metavar="DURATION",
    help="Refresh the GPU quota this often from the start (default: weekly, Saturdays).",
)
@click.option(
    "--no-quota-call",
    is_flag=True,
    help="Answer GetAcceleratorQuotaStatistics with 404, as a method not offered.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="OWNER/SLUG=DIR",
    help="Publish DIR as a private dataset of OWNER (repeatable).",
)
@click.option(
    "--image-path",
    "image_paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True),
    help="Extra PYTHONPATH entry for kernels, modelling the Kaggle image (repeatable).",
)
@click.option(
    "--kernel-env",
    "kernel_env",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable every kernel sees, modelling the Kaggle image's variables and secrets "
    "(repeatable). Of the emulator's own environment kernels see only an allow-list.",
)
def emulator(
    host: str,
    port: int,
    users: tuple[str, ...],
    state: Path | None,
    gpu_sessions: int,
    cpu_sessions: int,
    assumptions: tuple[str, ...],
    seed: int | None,
    queue_delay: float,
    cold_start: float,
    request_delay: float,
    fault_rate: float,
    fault_kinds: str,
    stale_status: float,
    late_outputs: float,
    unlisted_notebook: bool,
    unknown_status: str | None,
    gpu_quota: str,
    gpu_quota_scale: float,
    gpu_quota_period: str | None,
    no_quota_call: bool,
    datasets: tuple[str, ...],
    image_paths: tuple[Path, ...],
    kernel_env: tuple[str, ...],
) -> None:
    """Run a local Kaggle kernels API that really executes pushed notebooks."""
    if not _is_loopback(host) and not users:
        # Pushed notebooks run as this OS user: never with a default key known to everyone.
        raise RefusedToServe(
            f"refusing to listen on {host}, which is not a loopback address, without "
            "--user NAME:KEY: the emulator runs the code pushed to it"
        )
    try:
        faults = Faults(rate=fault_rate, kinds=_parse_kinds(fault_kinds))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--fault-rate") from error
    try:
        assume = parse_assumptions(assumptions)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--assume") from error
    status_name, status_seconds = _parse_unknown_status(unknown_status)
    limits = Limits(
        weekly_gpu_seconds=_parse_duration(gpu_quota, "--gpu-quota"),
        gpu_quota_scale=_positive(gpu_quota_scale, "--gpu-quota-scale"),
        gpu_quota_period=(
            _parse_duration(gpu_quota_period, "--gpu-quota-period") if gpu_quota_period else None
        ),
    )
    served = _parse_datasets(datasets)
    try:
        server = Emulator(
            state_dir=state,
            users=_parse_users(users),
            host=host,
            port=port,
            gpu_sessions=gpu_sessions,
            cpu_sessions=cpu_sessions,
            assume=assume,
            seed=seed,
            latency=Latency(
                queue_delay=queue_delay, cold_start=cold_start, request_delay=request_delay
            ),
            faults=faults,
            quirks=Quirks(
                stale_status_seconds=stale_status,
                late_outputs_seconds=late_outputs,
                unknown_status=status_name,
                unknown_status_seconds=status_seconds,
                unlisted_notebook=unlisted_notebook,
                no_quota_call=no_quota_call,
            ),
            limits=limits,
            image_paths=image_paths,
            kernel_env=_parse_kernel_env(kernel_env),
        )
    except StateInUse as error:
        raise RefusedToServe(str(error)) from None
    for owner, slug, folder in served:
        server.create_dataset(owner, slug, folder)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        server.start()
    except CannotListen as error:
        server.stop()
        raise RefusedToServe(str(error)) from None
    click.echo(f"listening on {server.url}")
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
