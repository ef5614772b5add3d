"""The models tier runs only inside `nox -s models`, in an environment shaped like
Kaggle's image; the fast suite (`nox -s tests`) leaves it out."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("KAGGLETTS_MODELS_TIER") else ["*"]
