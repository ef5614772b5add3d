"""Write the support module into every notebook's `support` cell: `nox -s sync`, or
`python -m kaggletts.kernel.sync [--check] [NOTEBOOK_DIR]`.

The notebooks stay self-contained (Kaggle and plain papermill run them as single files),
and the module stays the only place their support code is edited: tests/test_notebooks.py
fails when a cell differs from what this writes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SUPPORT_MODULE = Path(__file__).with_name("support.py")
SUPPORT_TAG = "support"
HEADER = (
    "# Written from kaggletts/kernel/support.py by `nox -s sync`: edit the module, then sync;\n"
    "# a change made here by hand fails the tests.\n"
)


def support_cell_source() -> str:
    """The exact text of every notebook's support cell."""
    return HEADER + SUPPORT_MODULE.read_text(encoding="utf-8")


def synced(notebook: dict) -> dict:
    """The notebook (as JSON data) with its support cell replaced by the module's text;
    every other cell as it was."""
    cells = [c for c in notebook["cells"] if SUPPORT_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"needs exactly one cell tagged {SUPPORT_TAG!r}, has {len(cells)}")
    cells[0]["source"] = support_cell_source().splitlines(keepends=True)
    return notebook


def sync_folder(folder: Path, check: bool = False) -> list[Path]:
    """Sync every notebook in `folder` (or, with `check`, write nothing); returns those
    whose support cell was, or would be, changed. Written as nbformat writes (one-space
    indent, UTF-8, final newline), so an unchanged notebook stays byte for byte."""
    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        before = path.read_text(encoding="utf-8")
        after = json.dumps(synced(json.loads(before)), indent=1, ensure_ascii=False) + "\n"
        if after != before:
            changed.append(path)
            if not check:
                path.write_text(after, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("notebooks"))
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    changed = sync_folder(args.folder, args.check)
    verb = "out of date" if args.check else "synced"
    for path in changed:
        print(f"{verb}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
