"""The built wheel, installed into a fresh virtual environment, finds its own notebooks and
parameter files (kaggletts/_data in the wheel) and speaks from a folder outside the
checkout.

The fresh environment gets the wheel only (`--no-deps`); the dependencies come from this
interpreter's site-packages through a plain path in a .pth file. A plain path does not
process that folder's own .pth files, so the checkout's editable install stays invisible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "KAGGLETTS_OUTPUT", "VIRTUAL_ENV")}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp / "dist", REPO,
        cwd=tmp, env=env)
    [wheel] = (tmp / "dist").glob("kaggletts-*.whl")
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
