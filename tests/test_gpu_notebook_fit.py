"""A GPU notebook is refused before anything is pushed when the kernel could not run it:
any machine but a T4, no internet for its install, bfloat16 on a T4; a machine shape for
the CPU notebook is refused rather than silently dropped, and the retired P100 for any.
Against the emulator: the refusal must leave Kaggle untouched."""

from __future__ import annotations

import pytest
from helpers import KEY, USER, pushes, run_kaggle

from kaggletts.backends.kaggle.kernel import KernelOptions
from kaggletts.errors import UsageError


@pytest.mark.parametrize(
    ("notebook", "params", "kernel", "expected"),
    [
        ("qwen", {}, KernelOptions(machine_shape="NvidiaTeslaP100"),
         "machine shape NvidiaTeslaP100: Kaggle has retired the P100"),
        ("espeak", {}, KernelOptions(machine_shape="NvidiaTeslaP100"),
         "machine shape NvidiaTeslaP100: Kaggle has retired the P100"),
        ("chatterbox", {}, KernelOptions(machine_shape="Tpu1VmV38"),
         "compute capability 7.0 or more"),
        ("qwen", {"dtype": "bfloat16"}, KernelOptions(),
         "dtype 'bfloat16' on a T4: Turing has no native bfloat16"),
        ("chatterbox", {}, KernelOptions(enable_internet=False),
         "cannot run with enable_internet false"),
        ("espeak", {}, KernelOptions(machine_shape="NvidiaTeslaT4"),
         "uses no GPU: machine shape NvidiaTeslaT4"),
    ],
)
def test_a_kernel_the_notebook_cannot_run_in_is_never_pushed(
    emulator, tmp_path, notebook, params, kernel, expected
):
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        run_kaggle(emulator, tmp_path / "out", {"text": "Hello.", **params}, notebook,
                   kernel=kernel)
    assert pushes(emulator) == 0
    assert emulator.calls["SaveKernel"] == 0


def test_a_retired_p100_is_refused_for_a_notebook_of_ones_own_too(
    emulator, tmp_path, notebook_maker, monkeypatch
):
    """A plain notebook's machine is whatever the options name, except a shape Kaggle would
    swap for another."""
    import papermill

    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    notebook = notebook_maker(tmp_path / "mine.ipynb", "rows = 1", ("work", "print(rows)"))
    with pytest.raises(UsageError, match="NvidiaTeslaP100: Kaggle has retired the P100"):
        papermill.execute_notebook(
            str(notebook), str(tmp_path / "out.ipynb"), engine_name="kaggle",
            endpoint=emulator.url, machine_shape="NvidiaTeslaP100",
        )
    assert emulator.calls["SaveKernel"] == 0
