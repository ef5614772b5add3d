"""A version's source as GetKernel hands it back: the pushed notebook as Kaggle keeps it.

Cell sources, cell types, cell ids and cell `tags` surely survive a push. Whether anything
else a client put into the notebook survives is not known, so by default it does not: other
cell metadata and all notebook-level metadata are dropped, and the notebook carries only the
metadata Kaggle adds itself. The `metadata-kept` assumption keeps the pushed metadata too.
"""

from __future__ import annotations

import nbformat

from .kernel_runner import NOTEBOOK_NAME
from .store import VersionRecord

# Kaggle's own kernelspec and language_info, as seen in notebooks downloaded from Kaggle.
KAGGLE_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
KAGGLE_LANGUAGE_INFO = {
    "name": "python",
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "codemirror_mode": {"name": "ipython", "version": 3},
}


def kaggle_metadata(version: VersionRecord) -> dict[str, object]:
    """The notebook-level metadata Kaggle writes into a version's source (kaggle.md)."""
    return {
        "kernelspec": dict(KAGGLE_KERNELSPEC),
        "language_info": dict(KAGGLE_LANGUAGE_INFO),
        "kaggle": {
            "accelerator": version.machine_shape or ("gpu" if version.enable_gpu else "none"),
            "isGpuEnabled": version.uses_gpu,
            "isInternetEnabled": version.enable_internet,
            "language": version.language,
            "sourceType": version.kernel_type,
        },
        # Kaggle runs the notebook with papermill in place, under this name.
        "papermill": {"input_path": NOTEBOOK_NAME, "output_path": NOTEBOOK_NAME},
    }


def pulled_source(pushed_text: str, version: VersionRecord, keep_metadata: bool) -> str:
    """The source GetKernel returns for a version pushed as `pushed_text`."""
    if version.kernel_type != "notebook":
        return pushed_text
    # The push was validated with nbformat, so this reads.
    notebook = nbformat.reads(pushed_text, as_version=4)
    if not keep_metadata:
        notebook.metadata = nbformat.NotebookNode()
        for cell in notebook.cells:
            tags = cell.metadata.get("tags")
            cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
    notebook.metadata.update(nbformat.from_dict(kaggle_metadata(version)))
    return nbformat.writes(notebook)
