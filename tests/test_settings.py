"""Settings from pyproject.toml, the user file and KAGGLETTS_* variables: each place takes
effect, in the documented order, under explicit arguments; bad ones name file and line."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kaggletts
from kaggletts import api
from kaggletts.backends.kaggle import KernelOptions
from kaggletts.settings import Settings, load_settings

PYPROJECT = """\
[project]
name = "my-audiobook"

[tool.kaggletts]
backend = "kaggle"
output_dir = "audio"

[tool.kaggletts.kaggle]
shards = 2
machine_shape = "NvidiaTeslaP100"
timeout = "20m"

[tool.kaggletts.notebooks.espeak]
voice = "en-gb"
rate = 140
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with settings in its pyproject.toml, and a sub-folder to run in."""
    (tmp_path / "project" / "chapters").mkdir(parents=True)
    (tmp_path / "project" / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path / "project"


def settings_in(
    folder: Path, environ: dict[str, str] | None = None, user: str | None = None
) -> Settings:
    user_path = folder.parent / "user-config.toml"
    if user is not None:
        user_path.write_text(user)
    return load_settings(cwd=folder, environ=environ or {}, user_path=user_path)


def refusal(folder: Path, text: str, *, user: bool = False) -> str:
    """The message of loading settings with `text` as the project's (or the user's) file."""
    if user:
        (folder / "pyproject.toml").unlink()
        loading = lambda: settings_in(folder, user=text)  # noqa: E731
    else:
        (folder / "pyproject.toml").write_text(text)
        loading = lambda: settings_in(folder)  # noqa: E731
    with pytest.raises(kaggletts.UsageError) as error:
        loading()
    return str(error.value)


# --- Where settings come from, and in what order ------------------------------------------


def test_the_nearest_pyproject_sets_values_with_file_and_line(project):
    settings = settings_in(project / "chapters")
    assert settings.backend == "kaggle"
    # Relative to the file that names it, not to the folder the command runs in.
    assert settings.output_dir == str(project / "audio")
    assert settings.kaggle.shards == 2
    assert settings.kaggle.timeout == 1200.0, "a duration is read into seconds where it enters"
    assert settings.origins["kaggle.shards"] == f"{project / 'pyproject.toml'}:9"
    assert settings.origins["output_dir"] == f"{project / 'pyproject.toml'}:6"
    options = settings.backend_options("kaggle")
    assert options["kernel"] == KernelOptions(machine_shape="NvidiaTeslaP100")
    assert options["shards"] == 2
    assert settings.backend_options("local") == {}, "Kaggle settings never reach a local run"
    assert settings.notebook_defaults("espeak").values == {"voice": "en-gb", "rate": 140}


def test_a_project_without_a_kaggletts_table_sets_nothing(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert settings_in(tmp_path) == Settings()


def test_the_user_file_wins_over_the_project(project):
    user = '[kaggle]\nshards = 4\n\n[notebooks.espeak]\nrate = 200\n'
    settings = settings_in(project, user=user)
    assert settings.kaggle.shards == 4
    assert settings.origins["kaggle.shards"] == f"{project.parent / 'user-config.toml'}:2"
    assert settings.kaggle.kernel.machine_shape == "NvidiaTeslaP100", "the rest stays the project's"
    assert settings.notebook_defaults("espeak").values == {"voice": "en-gb", "rate": 200}


def test_environment_variables_win_over_both_files(project, tmp_path):
    environ = {
        "KAGGLETTS_KAGGLE_SHARDS": "8",
        "KAGGLETTS_OUTPUT": str(tmp_path / "elsewhere"),
        "KAGGLETTS_KAGGLE_ENDPOINT": "http://127.0.0.1:8000",
        "KAGGLETTS_KAGGLE_KEEP_KERNELS": "yes",
        "KAGGLETTS_KAGGLE_DATASET_SOURCES": "me/voices, me/more",
    }
    settings = settings_in(project, environ, user="[kaggle]\nshards = 4\n")
    assert settings.kaggle.shards == 8
    assert settings.origins["kaggle.shards"] == "$KAGGLETTS_KAGGLE_SHARDS"
    assert settings.output_dir == str(tmp_path / "elsewhere")
    assert settings.kaggle.endpoint == "http://127.0.0.1:8000"
    assert settings.kaggle.keep_kernels is True
    assert settings.kaggle.kernel.dataset_sources == ("me/voices", "me/more")


def test_explicit_values_win_over_every_place(project):
    settings = settings_in(project, {"KAGGLETTS_KAGGLE_SHARDS": "8"})
    given = settings.overridden({"kaggle.shards": 3, "kaggle.timeout": None}, "command line")
    assert given.kaggle.shards == 3 and given.origins["kaggle.shards"] == "command line"
    assert given.kaggle.timeout == 1200.0, "a value not given keeps its setting"


def test_execute_applies_settings_under_its_own_arguments(project, monkeypatch):
    """What reaches the backend: settings, with the call's own options over them. The real
    backend is built with them (it refuses an option it does not take), then the run stops:
    a Kaggle backend would look for the developer's own credentials."""
    seen: dict[str, Any] = {}
    build = api.get_backend

    def build_then_stop(name, **options):
        seen.update(options, backend=name)
        build(name, **options)
        raise RuntimeError("stop before running")

    monkeypatch.setattr(api, "get_backend", build_then_stop)
    settings = settings_in(project)
    with pytest.raises(RuntimeError):
        kaggletts.execute("espeak", {"text": "Hi."}, settings=settings, shards=5)
    assert seen["backend"] == "kaggle" and seen["shards"] == 5
    assert seen["timeout"] == 1200.0 and seen["kernel"].machine_shape == "NvidiaTeslaP100"

    seen.clear()
    with pytest.raises(RuntimeError):
        kaggletts.execute("espeak", {"text": "Hi."}, settings=settings, ask_above="1h30m")
    assert seen["ask_above"] == 5400.0, "the call's duration reaches the backend in seconds"

    seen.clear()
    with pytest.raises(RuntimeError):
        kaggletts.execute("espeak", {"text": "Hi."}, backend="local", settings=settings)
    assert seen == {"backend": "local"}


def test_notebook_defaults_go_under_parameter_files(project, tmp_path):
    batch = tmp_path / "batch.yaml"
    batch.write_text("rate: 180\nutterances: [Hello from the project defaults.]\n")
    settings = settings_in(project)
    result = kaggletts.execute(
        "espeak", str(batch), backend="local", output_dir=tmp_path / "out", settings=settings
    )
    record = json.loads((result.directory / "job.json").read_text())
    assert record["params"]["voice"] == "en-gb", "the project's default applies"
    assert record["params"]["rate"] == 180, "the parameter file wins over it"
    assert result.audio[0].is_file()


def test_a_bad_notebook_default_names_its_line_when_it_is_used(project):
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"en-gb"', '"en-gbx"'))
    settings = settings_in(project)
    with pytest.raises(kaggletts.UsageError, match=r"pyproject.toml:14: voice 'en-gbx'"):
        settings.check_notebook_defaults()
    with pytest.raises(kaggletts.UsageError, match=r"pyproject.toml:14: voice 'en-gbx'"):
        api.prepare(
            "espeak", {"text": "Hi."}, "local", None, defaults=settings.notebook_defaults("espeak")
        )


# --- Refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "number", "expected"),
    [
        ('backend = "kaggle"', 'backnd = "kaggle"', 5, r"did you mean 'backend'\?"),
        ('backend = "kaggle"', 'backend = "colab"', 5, r"'colab' is not one of local, kaggle"),
        ("shards = 2", "shard = 2", 9, r"did you mean 'kaggle.shards'\?"),
        ("shards = 2", "shards = 0", 9, r"kaggle.shards 0 is below the minimum 1"),
        ("shards = 2", 'shards = "two"', 9, r"kaggle.shards must be an integer, not str"),
        ("shards = 2", 'key = "abc"', 9, r"'kaggle.key': credentials are never read"),
        ("shards = 2", "shards = 2\nshards = 3", 10, r"invalid TOML: Cannot overwrite"),
        ('"NvidiaTeslaP100"', '"NvidiaTeslaT5"', 10, r"did you mean 'NvidiaTeslaT4'\?"),
        ('"20m"', '"soon"', 11, r"'soon' is not a duration"),
        ("notebooks.espeak]", "notebooks.espek]", 13, r"did you mean 'espeak'\?"),
        ("rate = 140", 'text = "Hello"', 15, r"'text' is a batch, not a default"),
    ],
)
def test_a_bad_setting_names_file_line_and_what_is_wrong(project, old, new, number, expected):
    assert old in PYPROJECT
    message = refusal(project, PYPROJECT.replace(old, new))
    assert message.startswith(f"{project / 'pyproject.toml'}:{number}: "), message
    assert re.search(expected, message), message


def test_a_dotted_key_is_found_on_its_line(project):
    message = refusal(project, '[tool.kaggletts]\nbackend = "local"\nkaggle.shards = 0\n')
    assert message.startswith(f"{project / 'pyproject.toml'}:3: kaggle.shards")


def test_secrets_are_refused_in_the_user_file(project):
    message = refusal(project, 'username = "me"\n', user=True)
    assert "user-config.toml:1" in message and "credentials are never read" in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KAGGLETTS_KAGGLE_SHARDS", "two", r"kaggle.shards must be an integer, not 'two'"),
        ("KAGGLETTS_KAGGLE_KEEP_KERNELS", "maybe", r"must be a boolean, not 'maybe'"),
        ("KAGGLETTS_KAGGLE_ENDPOINT", "localhost:8000", r"'localhost:8000' is not an http"),
        ("KAGGLETTS_BACKEND", "gpu", r"backend 'gpu' is not one of local, kaggle"),
    ],
)
def test_a_bad_environment_variable_is_named(tmp_path, variable, value, expected):
    with pytest.raises(kaggletts.UsageError) as error:
        settings_in(tmp_path, {variable: value})
    assert str(error.value).startswith(f"${variable}: ")
    assert re.search(expected, str(error.value))


# --- The command line ----------------------------------------------------------------------


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No user file and no KAGGLETTS_* variables from the machine running the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("KAGGLETTS_OUTPUT", "KAGGLETTS_KAGGLE_ENDPOINT", "KAGGLETTS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "xdg" / "kaggletts" / "config.toml"


def test_config_shows_each_value_and_where_it_came_from(project, isolated, monkeypatch, run_cli):
    isolated.parent.mkdir(parents=True)
    isolated.write_text("[kaggle]\ngpu_sessions = 1\n")
    monkeypatch.chdir(project / "chapters")
    monkeypatch.setenv("KAGGLETTS_KAGGLE_ENDPOINT", "http://127.0.0.1:9")

    done = run_cli("config")
    assert done.code == 0, done.output
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "pyproject.toml:9" in lines["kaggle.shards"]
    assert f"{isolated}:2" in lines["kaggle.gpu_sessions"]
    assert "$KAGGLETTS_KAGGLE_ENDPOINT" in lines["kaggle.endpoint"]
    assert "default" in lines["kaggle.keep_kernels"] and "False" in lines["kaggle.keep_kernels"]
    assert "pyproject.toml:14" in lines["espeak.voice"]

    shown = json.loads(run_cli("config", "--json").stdout)
    assert shown["settings"]["kaggle.shards"] == {
        "value": 2,
        "origin": f"{project / 'pyproject.toml'}:9",
    }
    assert shown["notebooks"]["espeak"]["rate"]["value"] == 140


def test_config_names_a_bad_setting_and_exits_2(project, isolated, monkeypatch, run_cli):
    (project / "pyproject.toml").write_text(PYPROJECT.replace("rate = 140", "rate = 5"))
    monkeypatch.chdir(project)
    done = run_cli("config")
    assert done.code == 2
    assert "pyproject.toml:15: rate 5 is out of range" in done.stderr


def test_run_takes_the_output_folder_and_defaults_from_the_project(
    project, isolated, monkeypatch, run_cli
):
    (project / "pyproject.toml").write_text(PYPROJECT.replace('backend = "kaggle"\n', ""))
    monkeypatch.chdir(project / "chapters")
    done = run_cli("run", "espeak", "-p", "text", "Chapter one.", "--json")
    assert done.code == 0, done.output
    [wav] = json.loads(done.stdout)["audio"]
    assert Path(wav).is_relative_to(project / "audio")
    record = json.loads((Path(wav).parent / "job.json").read_text())
    assert record["params"]["voice"] == "en-gb"

    listed = json.loads(run_cli("jobs", "--json").stdout)
    [mine] = [job for job in listed if job["job_id"] == record["job_id"]]
    assert Path(mine["directory"]).is_relative_to(project / "audio")


# --- A project's endpoint and the user's credentials -----------------------------------------


class HeaderRecorder:
    """A loopback HTTP server that answers 401 to everything and keeps every request's
    path and headers."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen: list[tuple[str, dict[str, str]]] = []
        self.requests = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append((self.path, dict(self.headers)))
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def authorized(self) -> list[str]:
        return [path for path, headers in self.requests
                if any(name.lower() == "authorization" for name in headers)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = HeaderRecorder()
    yield server
    server.close()


@pytest.fixture
def cloned(tmp_path, recorder, monkeypatch):
    """A cloned project whose pyproject.toml points the Kaggle endpoint at the recorder,
    and credentials in the environment, as a user has them."""
    project = tmp_path / "cloned"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[tool.kaggletts.kaggle]\nendpoint = "{recorder.url}"\n')
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", "SUPERSECRETKEY123")
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "KAGGLETTS_KAGGLE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return project


@pytest.mark.parametrize(
    "command",
    [("quota",), ("run", "espeak", "--backend", "kaggle", "--text", "Hi.", "--out", "out"),
     ("doctor", "--json")],
    ids=["quota", "run", "doctor"],
)
def test_a_project_endpoint_gets_no_credentials(cloned, recorder, kaggletts_cmd, command):
    done = kaggletts_cmd(*command, cwd=cloned, timeout=120)
    assert recorder.authorized() == [], recorder.requests
    assert done.code != 0, done
    assert f"{cloned / 'pyproject.toml'}:2: the project sets the Kaggle endpoint " \
           f"'{recorder.url}'" in done.output
    assert "SUPERSECRETKEY123" not in done.output
    if command[0] == "doctor":
        checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
        assert checks["endpoint"]["verdict"] == "FAIL", checks["endpoint"]


def test_a_project_endpoint_the_user_names_too_is_used(cloned, recorder, kaggletts_cmd):
    """The same endpoint named in the environment: the user's choice, so the credentials
    go there (and the recorder above would have seen them)."""
    env = {**os.environ, "KAGGLETTS_KAGGLE_ENDPOINT": recorder.url}
    done = kaggletts_cmd("quota", cwd=cloned, timeout=120, env=env)
    assert "refused these credentials" in done.stderr, done
    assert recorder.authorized(), recorder.requests


@pytest.mark.parametrize("endpoint", ["http://kaggle.example.com", "http://10.0.0.5:8000"])
def test_a_project_endpoint_must_be_https_or_loopback(project, endpoint):
    text = f'[tool.kaggletts.kaggle]\nendpoint = "{endpoint}"\n'
    assert refusal(project, text) == (
        f"{project / 'pyproject.toml'}:2: kaggle.endpoint {endpoint!r} in a project file must "
        "be https or on this machine (127.0.0.1, ::1, localhost)"
    )


def test_a_user_file_may_name_a_plain_http_endpoint(project):
    settings = settings_in(project, user='[kaggle]\nendpoint = "http://10.0.0.5:8000"\n')
    assert settings.backend_options("kaggle")["endpoint"] == "http://10.0.0.5:8000"


def test_a_project_endpoint_given_on_the_command_line_is_the_users(project):
    (project / "pyproject.toml").write_text(
        '[tool.kaggletts.kaggle]\nendpoint = "http://127.0.0.1:8000"\nshards = 2\n')
    settings = settings_in(project)
    with pytest.raises(kaggletts.UsageError, match="pyproject.toml:2: the project sets"):
        settings.backend_options("kaggle")
    given = settings.overridden({"kaggle.endpoint": "http://127.0.0.1:8000"}, "command line")
    assert given.backend_options("kaggle")["endpoint"] == "http://127.0.0.1:8000"
    assert given.from_project == frozenset({"kaggle.shards"})


# --- Each setting read once, in one place ----------------------------------------------------


def test_kaggle_settings_are_the_options_the_backend_declares():
    from dataclasses import fields

    from kaggletts.backends.kaggle import KaggleBackend, KaggleOptions
    from kaggletts.settings import KEYS

    declared = {f.name for f in fields(KaggleOptions)} | {f.name for f in fields(KernelOptions)}
    kaggle = {key.name.removeprefix("kaggle.") for key in KEYS if key.name.startswith("kaggle.")}
    assert kaggle <= declared, kaggle - declared
    assert issubclass(KaggleBackend, KaggleOptions), "the backend takes the options as declared"


def test_reading_settings_loads_no_backend(project):
    """The settings build the backend's options from its plain declaration: the backend and
    its machinery load only when a run needs them."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kaggletts.settings import KEYS, default_text, load_settings\n"
        f"settings = load_settings(cwd=Path({str(project)!r}), environ={{}})\n"
        "assert settings.backend_options('kaggle')['timeout'] == 1200.0\n"
        "[default_text(key) for key in KEYS]\n"
        "print(*sorted(m for m in sys.modules if m.startswith('kaggletts.backends.kaggle.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["kaggletts.backends.kaggle.options"], done.stdout


def test_kaggletts_variables_are_read_only_by_the_environment_module():
    """One reader of KAGGLETTS_* (and of the environment at all, but for the kaggle client's
    own variables in credentials.py): the kernel's code and the emulator run elsewhere."""
    package = Path(kaggletts.__file__).parent
    readers = set()
    for path in package.rglob("*.py"):
        relative = path.relative_to(package).as_posix()
        if relative.startswith(("emulator/", "kernel/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.add(relative)
    assert readers <= {"environment.py", "backends/kaggle/credentials.py"}, readers
