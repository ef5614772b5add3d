"""Entry point of one kernel session's subprocess: `python -m kaggletts.emulator.kernel_runner`.

It runs in its own process group so the emulator can stop it (and the Jupyter kernel it
starts) for a cancel or a timeout. It deliberately imports nothing else from kaggletts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

NOTEBOOK_NAME = "__notebook__.ipynb"


def _write_failure(failure_file: Path, message: str) -> None:
    failure_file.write_text(message, encoding="utf-8")


def run_notebook(source_dir: Path, working_dir: Path, failure_file: Path) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Kaggle records both paths as the bare file name, so run from the notebook's folder.
    os.chdir(source_dir)
    try:
        papermill.execute_notebook(
            NOTEBOOK_NAME,
            NOTEBOOK_NAME,
            cwd=str(working_dir),
            kernel_name="python3",
            language="python",
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            request_save_on_cell_execute=True,
        )
    except PapermillExecutionError as error:
        traceback.print_exc()
        _write_failure(
            failure_file,
            f"Notebook cell {error.exec_count} failed: {error.ename}: {error.evalue}",
        )
        return 1
    except Exception as error:
        traceback.print_exc()
        _write_failure(failure_file, f"Notebook could not run: {type(error).__name__}: {error}")
        return 1
    return 0


def run_script(script: Path, working_dir: Path) -> int:
    os.chdir(working_dir)
    os.execv(sys.executable, [sys.executable, "-u", str(script)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel-type", choices=("notebook", "script"), required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--working", type=Path, required=True)
    parser.add_argument("--failure-file", type=Path, required=True)
    parser.add_argument("--cold-start", type=float, default=0.0)
    args = parser.parse_args(argv)

    # Models the image start: package installs and model loads before the first cell.
    if args.cold_start > 0:
        time.sleep(args.cold_start)
    if args.kernel_type == "script":
        return run_script(args.source, args.working)
    return run_notebook(args.source.parent, args.working, args.failure_file)


if __name__ == "__main__":
    sys.exit(main())
