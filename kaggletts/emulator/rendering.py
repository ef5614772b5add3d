"""`__results__.html` for an executed notebook: nbconvert when installed, else a plain page."""

from __future__ import annotations

import html
import json
from pathlib import Path


def _plain_html(notebook: dict[str, object]) -> str:
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>__notebook__</title>"]
    parts.append("</head><body>")
    cells = notebook.get("cells", [])
    for cell in cells if isinstance(cells, list) else []:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        kind = cell.get("cell_type", "code")
        parts.append(f"<div class='cell {html.escape(str(kind))}'><pre>{html.escape(source)}</pre>")
        for output in cell.get("outputs", []):
            parts.append(_render_output(output))
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_output(output: dict[str, object]) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        return f"<pre class='{html.escape(str(output.get('name')))}'>{html.escape(text)}</pre>"
    if output.get("output_type") == "error":
        frames = output.get("traceback")
        lines = "\n".join(str(line) for line in frames) if isinstance(frames, list) else ""
        return f"<pre class='error'>{html.escape(lines)}</pre>"
    data = output.get("data")
    if not isinstance(data, dict):
        return ""
    if "image/png" in data:
        return f"<img src='data:image/png;base64,{data['image/png']}'>"
    if "text/html" in data:
        value = data["text/html"]
        return "".join(value) if isinstance(value, list) else str(value)
    if "text/plain" in data:
        value = data["text/plain"]
        return (
            f"<pre>{html.escape(''.join(value) if isinstance(value, list) else str(value))}</pre>"
        )
    return ""


def render_results(notebook_file: Path, html_file: Path) -> None:
    try:
        import nbconvert
        import nbformat

        notebook = nbformat.read(notebook_file, as_version=4)
        body, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    except ImportError:
        body = _plain_html(json.loads(notebook_file.read_text(encoding="utf-8")))
    html_file.write_text(body, encoding="utf-8")
