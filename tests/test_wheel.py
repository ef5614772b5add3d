"""The built wheel, installed into a fresh virtual environment, finds its own notebooks and
parameter files (kaggletts/_data in the wheel) and speaks from a folder outside the
checkout; installed the plain way, with the dependencies it declares, every command runs.

The first environment gets the wheel only (`--no-deps`); the dependencies come from this
interpreter's site-packages through a plain path in a .pth file. A plain path does not
process that folder's own .pth files, so the checkout's editable install stays invisible.
The second is a plain `pip install` of the wheel: only what pyproject.toml declares."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# Imported by kaggletts/ without being a dependency, each only where it is already there.
NOT_DEPENDENCIES = {
    "pytest": "kaggletts/emulator/pytest_plugin.py is loaded by pytest only",
    "nbconvert": "kaggletts/emulator/rendering.py writes a plain page without it",
}


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def outside_env() -> dict[str, str]:
    """This process's environment without what points into the checkout or its venv."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "KAGGLETTS_OUTPUT", "VIRTUAL_ENV")}


def build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp / "dist", REPO,
        cwd=tmp, env=env)
    [wheel] = (tmp / "dist").glob("kaggletts-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    env = outside_env()
    wheel = build_wheel(tmp, env)
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp, env=env)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                       cwd=tmp, env=env).stdout.strip())
    (purelib / "deps-from-the-test-interpreter.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel, cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {"wheel": wheel, "venv": venv, "python": python, "purelib": purelib, "work": work,
            "env": env}


def test_the_wheel_carries_the_notebooks_and_params(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for notebook in ("chatterbox", "espeak", "qwen"):
        assert f"kaggletts/_data/notebooks/{notebook}.ipynb" in names
    assert "kaggletts/_data/params/espeak-demo.yaml" in names
    assert not any(name.startswith("tests/") for name in names)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    done = run(installed["python"], "-c",
               "import kaggletts, kaggletts.notebook as n; "
               "print(kaggletts.__file__); print(n.data_dir('notebooks'))",
               cwd=installed["work"], env=installed["env"])
    package_file, notebooks = done.stdout.split()
    assert Path(package_file).is_relative_to(installed["purelib"])
    assert Path(notebooks) == installed["purelib"] / "kaggletts" / "_data" / "notebooks"


def test_the_installed_command_lists_its_own_notebooks(installed):
    done = run(installed["venv"] / "bin" / "kaggletts", "notebooks", "--json",
               cwd=installed["work"], env=installed["env"])
    listing = json.loads(done.stdout)
    assert sorted(listing) == ["chatterbox", "espeak", "qwen"]
    for info in listing.values():
        assert Path(info["path"]).is_relative_to(installed["purelib"])
        assert not Path(info["path"]).is_relative_to(REPO)


def test_the_installed_command_speaks_the_shipped_demo(installed):
    demo = installed["purelib"] / "kaggletts" / "_data" / "params" / "espeak-demo.yaml"
    out = installed["work"] / "out"
    done = run(installed["venv"] / "bin" / "kaggletts", "run", "espeak", "-f", demo,
               "--out", "out", "--json", cwd=installed["work"], env=installed["env"])
    document = json.loads(done.stdout)
    assert document["status"] == "complete"
    assert len(document["audio"]) == 24
    for audio in document["audio"]:
        assert Path(audio).is_file() and Path(audio).is_relative_to(out.resolve())
    assert Path(document["notebook"]).is_relative_to(out.resolve())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a requirement names: what precedes its extras, version or markers."""
    return canonical(re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0])


def third_party_imports(package: Path) -> set[str]:
    """The top-level names of every absolute import in the package's modules, wherever in
    the module (lazy imports included), less the standard library and the package."""
    names: set[str] = set()
    # kaggletts/kernel/ is the notebooks' support code: it runs in a kernel, which installs
    # what it needs (numpy, torch...) itself.
    kernel_side = package / "kernel"
    for source in package.rglob("*.py"):
        if source.is_relative_to(kernel_side):
            continue
        for node in ast.walk(ast.parse(source.read_bytes())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {package.name}


def test_every_third_party_module_the_package_imports_is_declared():
    """Each module's distribution (as installed here) is in pyproject.toml's dependencies:
    nothing the package imports may arrive only because another dependency pulls it in."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {requirement_name(requirement)
                for requirement in pyproject["project"]["dependencies"]}
    imported = third_party_imports(REPO / "kaggletts")
    assert set(NOT_DEPENDENCIES) <= imported, "an exception no longer imported"
    owners = importlib.metadata.packages_distributions()
    undeclared = {
        module: owners.get(module)
        for module in sorted(imported - set(NOT_DEPENDENCIES))
        if not declared & {canonical(dist) for dist in owners.get(module, [])}
    }
    assert undeclared == {}, "imported by kaggletts/ but not declared (module: distributions)"


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory):
    """The wheel installed the way a user installs it: `pip install WHEEL` into a fresh
    environment, which brings exactly the declared dependencies."""
    tmp = tmp_path_factory.mktemp("plain-install")
    env = outside_env()
    wheel = build_wheel(tmp, env)
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp, env=env)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return {"kaggletts": venv / "bin" / "kaggletts", "work": work, "env": env}


@pytest.mark.slow
def test_the_emulator_and_quota_commands_run_on_a_plain_install(plain_install):
    kaggletts, work = plain_install["kaggletts"], plain_install["work"]
    env = {**plain_install["env"], "KAGGLE_USERNAME": "alice", "KAGGLE_KEY": "alice-key",
           "KAGGLE_CONFIG_DIR": str(work / "kaggle-config")}
    env.pop("KAGGLE_API_TOKEN", None)
    help_text = run(kaggletts, "emulator", "--help", cwd=work, env=env).stdout
    assert help_text.startswith("Usage: kaggletts emulator")
    log = work / "emulator.log"
    with log.open("w") as stderr:
        emulator = subprocess.Popen(
            [str(kaggletts), "emulator", "--user", "alice:alice-key", "--state", "state"],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    assert emulator.stdout is not None
    try:
        line = emulator.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), log.read_text()
        quota = run(kaggletts, "quota", "--endpoint", line.removeprefix("listening on "),
                    cwd=work, env=env)
        assert quota.stdout.startswith("GPU: 0.0 h used"), quota.stdout
    finally:
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=30) == 0, log.read_text()
    assert "internal error" not in log.read_text()
