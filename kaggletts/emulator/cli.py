"""`kaggletts emulator`: serve the Kaggle emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from .config import DEFAULT_KEY, DEFAULT_USER, FAULT_KINDS, Faults, Latency, Quirks
from .emulator import Emulator


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
        parsed.append((owner, slug, Path(folder)))
    return parsed


def _parse_kernel_env(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, separator, setting = value.partition("=")
        if not separator or not name:
            raise click.BadParameter(f"'{value}' is not NAME=VALUE", param_hint="--kernel-env")
        parsed[name] = setting
    return parsed


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
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder keeping kernels, versions, outputs and datasets across restarts "
    "(default: a temporary folder removed on exit).",
)
@click.option("--gpu-sessions", default=2, show_default=True, help="Concurrent sessions per user.")
@click.option("--seed", type=int, default=None, help="Seed for the random faults.")
@click.option("--queue-delay", default=0.0, show_default=True, help="Seconds QUEUED.")
@click.option("--cold-start", default=0.0, show_default=True, help="Seconds RUNNING before cell 1.")
@click.option("--request-delay", default=0.0, show_default=True, help="Seconds added per request.")
@click.option("--fault-rate", default=0.0, show_default=True, help="Probability of a fault.")
@click.option(
    "--fault-kinds",
    default=",".join(FAULT_KINDS),
    show_default=True,
    help="Comma-separated fault kinds to draw from.",
)
@click.option("--stale-status", default=0.0, show_default=True, help="Seconds of stale status.")
@click.option(
    "--late-outputs", default=0.0, show_default=True, help="Seconds outputs lag COMPLETE."
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
    type=click.Path(exists=True, file_okay=False, path_type=Path),
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
    seed: int | None,
    queue_delay: float,
    cold_start: float,
    request_delay: float,
    fault_rate: float,
    fault_kinds: str,
    stale_status: float,
    late_outputs: float,
    datasets: tuple[str, ...],
    image_paths: tuple[Path, ...],
    kernel_env: tuple[str, ...],
) -> None:
    """Run a local Kaggle kernels API that really executes pushed notebooks."""
    try:
        faults = Faults(rate=fault_rate, kinds=_parse_kinds(fault_kinds))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--fault-rate") from error
    server = Emulator(
        state_dir=state,
        users=_parse_users(users),
        host=host,
        port=port,
        gpu_sessions=gpu_sessions,
        seed=seed,
        latency=Latency(
            queue_delay=queue_delay, cold_start=cold_start, request_delay=request_delay
        ),
        faults=faults,
        quirks=Quirks(stale_status_seconds=stale_status, late_outputs_seconds=late_outputs),
        image_paths=image_paths,
        kernel_env=_parse_kernel_env(kernel_env),
    )
    for owner, slug, folder in _parse_datasets(datasets):
        server.create_dataset(owner, slug, folder)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    server.start()
    click.echo(f"listening on {server.url}")
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
