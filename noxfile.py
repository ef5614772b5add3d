"""Developer sessions: `nox -s demo`, `nox -s tests`, `nox -s slow`, `nox -s lint`,
`nox -s synth -- FILE.yaml`, `nox -s bench`, `nox -s models`, `nox -s sync`."""

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# The GPU notebooks import torch even under the tests' stand-in models. This CPU build is
# what the workplace's wheel folder holds; elsewhere pip fetches the same version.
TORCH = "torch==2.13.0"
DEMO_PARAMS = "params/espeak-demo.yaml"


@nox.session
def tests(session: nox.Session) -> None:
    """The fast tier, in minutes: real papermill runs of each notebook, real espeak audio,
    the emulator over real HTTP; the tests marked slow are left to `nox -s slow`."""
    install_test_environment(session)
    session.run("pytest", "-m", "not slow", *(session.posargs or ["-q"]))


@nox.session
def slow(session: nox.Session) -> None:
    """The tests marked slow: whole jobs on the emulator, every notebook mode and variant,
    the audition page in headless chromium, the built wheel installed."""
    install_test_environment(session)
    install_chromium(session)
    session.run("pytest", "-m", "slow", *(session.posargs or ["-q"]))


def install_test_environment(session: nox.Session) -> None:
    session.install("-e", ".[test]", TORCH)


def install_chromium(session: nox.Session) -> None:
    """The page tests drive Debian's chromium headless: install it where it is missing and
    apt-get can (as root). Elsewhere those tests skip, except under CI=true, where they fail."""
    if shutil.which("chromium"):
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        session.warn("chromium is missing and apt-get (as root) is not here to install it")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env, silent=True)
    session.run("apt-get", "install", "-y", "-qq", "chromium", external=True, env=env, silent=True)


# What each model family's test environment holds before a notebook runs, shaped like
# Kaggle's image (torch and numpy 2.x already there); each family gets its own environment
# because qwen-tts and chatterbox-tts pin conflicting transformers releases.
MODEL_IMAGE: dict[str, list[str]] = {
    "qwen": [TORCH],
    # Kaggle pins setuptools>=70,<82 (its Dockerfile), so 81.0.0: pkg_resources is still there.
    "chatterbox": [TORCH, "setuptools==81.0.0"],
}


@nox.session
@nox.parametrize("family", list(MODEL_IMAGE))
def models(session: nox.Session, family: str) -> None:
    """The GPU notebooks, unchanged, against the real model packages with tiny random
    weights the tests build, on CPU and offline (`nox -s models`, or `models(family='qwen')`)."""
    session.install("-e", ".[test]", *MODEL_IMAGE[family])
    session.run(
        "pytest", f"tests/models/{family}", *(session.posargs or ["-q"]),
        env={"KAGGLETTS_MODELS_TIER": family},
    )


# What `nox -s lint` checks: ruff the paths, mypy each group with its import folders.
LINTED = ["kaggletts", "notebooks", "tests", "benchmarks", "noxfile.py"]
# Pinned, stubs included: a new release's new findings arrive by a change here, not in CI.
LINT_TOOLS = ["ruff==0.17.6", "mypy==2.4.1", "types-PyYAML==6.0.12.20261122",
              "types-tqdm==4.70.0.20261106"]
# pytest and the benchmarks import a module by its file name from its own folder and its
# conftest folders' (five conftest.py, two common.py): one mypy run over all of them
# would take those for duplicates, so each group is a run of its own.
TYPE_CHECKED: list[tuple[list[str], list[str]]] = [
    (["kaggletts", "noxfile.py", "benchmarks"], []),
    ([*map(str, sorted(Path("tests").glob("*.py"))), "tests/standins"], []),
    (["tests/emulator"], []),
    (["tests/models/conftest.py", "tests/models/common.py"], []),
    (["tests/models/qwen"], ["tests/models"]),
    (["tests/models/chatterbox"], ["tests/models"]),
]


def type_checked_files() -> set[Path]:
    found: set[Path] = set()
    for paths, _ in TYPE_CHECKED:
        for path in map(Path, paths):
            found |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return found


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, then mypy (configured in pyproject.toml) against the installed dependencies'
    own types."""
    unchecked = [str(path) for path in sorted(Path("tests").rglob("*.py"))
                 if path not in type_checked_files()]
    if unchecked:
        session.error(f"add to TYPE_CHECKED in noxfile.py: {', '.join(unchecked)}")
    session.install("-e", ".[test]", "nox", *LINT_TOOLS)
    session.run("ruff", "check", *LINTED)
    for paths, imports in TYPE_CHECKED:
        session.run("mypy", *paths, env={"MYPYPATH": os.pathsep.join(imports)})


@nox.session(venv_backend="none")
def sync(session: nox.Session) -> None:
    """Write kaggletts/kernel/support.py into every notebook's support cell (the module is
    the only place that code is edited; the tests fail while a notebook is out of date).
    Standard library only, so it needs no environment: `-- --check` only reports."""
    session.run("python3", "-m", "kaggletts.kernel.sync", *session.posargs, "notebooks")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job, offline: speak the espeak demo batch and say where the WAVs are."""
    session.install(".")
    session.run(
        "kaggletts", "run", "espeak", "-f", DEMO_PARAMS, "--out", "demo-output", *session.posargs
    )


@nox.session
def synth(session: nox.Session) -> None:
    """Speak a YAML batch: `nox -s synth -- [NOTEBOOK] FILE.yaml [kaggletts run options]`.
    Without NOTEBOOK, the file name's first word names it (params/qwen-presets.yaml: qwen)."""
    if not session.posargs:
        session.error("give a YAML file: nox -s synth -- params/espeak-demo.yaml")
    args = list(session.posargs)
    notebook = args.pop(0) if not args[0].endswith((".yaml", ".yml")) else None
    if not args:
        session.error("give a YAML file after the notebook name")
    notebook = notebook or Path(args[0]).name.split("-")[0].split(".")[0]
    session.install(".")
    session.run("kaggletts", "run", notebook, "-f", *args)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks as ratios against baselines run in the same invocation, and the
    reliability checks; writes benchmarks/RESULTS.md (`-- --quick` for a smoke run). The
    throughput benchmark runs the qwen notebook on the real qwen-tts, so this environment
    is shaped like the qwen models tier's."""
    session.install("-e", ".[test]", *MODEL_IMAGE["qwen"])
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Reliability against the emulator: jobs under mixed faults, killed clients resumed,
    the bad-input corpus (`-- soak`, `-- crash`, `-- bad-input` or `-- --quick`)."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/reliability.py", *session.posargs)
