"""The unchanged official client drives a real run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest
from emulator_helpers import write_kernel_folder

from kaggletts.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
ESPEAK_NOTEBOOK = REPO / "notebooks" / "espeak.ipynb"


@pytest.mark.slow
def test_push_status_output_logs_quota(kaggle_emulator: Emulator, official_api, tmp_path: Path):
    api = official_api("alice")
    folder = write_kernel_folder(
        tmp_path / "kernel",
        "hello-emulator",
        "Hello Emulator",
        "import os\nprint('run type', os.environ['KAGGLE_KERNEL_RUN_TYPE'])",
        "secrets = [k for k in os.environ if 'KEY' in k or k == 'KAGGLE_USERNAME']\n"
        "print('leaked', secrets)",
        "open('result.txt', 'w').write('done')",
    )
    pushed = api.kernels_push(str(folder))
    assert not pushed.error and pushed.version_number == 1
    kaggle_emulator.wait_for("alice", "hello-emulator")
    assert api.kernels_status("alice/hello-emulator").status.name == "COMPLETE"

    files, _ = api.kernels_output("alice/hello-emulator", str(tmp_path / "out"))
    names = sorted(Path(name).name for name in files)
    assert names == ["__notebook__.ipynb", "__results__.html", "hello-emulator.log", "result.txt"]
    assert (tmp_path / "out" / "result.txt").read_text() == "done"
    executed = nbformat.read(tmp_path / "out" / "__notebook__.ipynb", as_version=4)
    assert executed.metadata.papermill.input_path == "__notebook__.ipynb"
    assert executed.metadata.papermill.output_path == "__notebook__.ipynb"

    log = json.loads(api.kernels_logs("alice/hello-emulator"))
    stdout = "".join(entry["data"] for entry in log if entry["stream_name"] == "stdout")
    assert "run type Batch" in stdout and "leaked []" in stdout
    assert all(isinstance(entry["time"], float | int) for entry in log)
    streamed = "".join(event["data"] for event in api.kernels_logs_stream("alice/hello-emulator"))
    assert "run type Batch" in streamed

    quota = api.quota_view()
    assert quota.gpu_quota.total_time_allowed.total_seconds() == 30 * 3600

    pulled = tmp_path / "pulled"
    api.kernels_pull("alice/hello-emulator", str(pulled))
    assert any(path.suffix == ".ipynb" for path in pulled.iterdir())


def test_espeak_notebook(kaggle_emulator: Emulator, official_api, tmp_path: Path):
    if not ESPEAK_NOTEBOOK.exists():
        pytest.skip("notebooks/espeak.ipynb is not in the checkout yet")
    api = official_api("alice")
    folder = tmp_path / "espeak"
    folder.mkdir()
    # Parameters are injected before the push, as a Kaggle backend does it.
    papermill.execute_notebook(
        str(ESPEAK_NOTEBOOK),
        str(folder / "espeak.ipynb"),
        parameters={"utterances": ["Hello there.", "Bye now."]},
        prepare_only=True,
        progress_bar=False,
    )
    metadata = {
        "id": "alice/espeak-emulated",
        "title": "Espeak Emulated",
        "code_file": "espeak.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": False,
        "enable_internet": False,
    }
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata))
    assert not api.kernels_push(str(folder)).error
    version = kaggle_emulator.wait_for("alice", "espeak-emulated", timeout=240)
    assert version.status == "COMPLETE", version.failure_message
    files, _ = api.kernels_output("alice/espeak-emulated", str(tmp_path / "out"))
    assert any(name.endswith(".wav") for name in files)
