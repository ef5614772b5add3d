"""A session that ended well is collected however long Kaggle takes to list its outputs,
and never pushed again; against the emulator in its default mode (plus the late-outputs
quirk the reports describe)."""

from __future__ import annotations

import json

import pytest
from helpers import KEY, USER, cli_env, kaggletts_cli, kernels, pushes, run_kaggle

from kaggletts.emulator import Emulator, Quirks
from kaggletts.errors import LeftOnKaggle

pytestmark = pytest.mark.slow


def test_outputs_listed_late_are_collected_later_without_a_second_push(tmp_path):
    out = tmp_path / "out"
    params = {"text": "Listed only a while after the session ended."}
    with Emulator(
        state_dir=tmp_path / "state", users={USER: KEY},
        quirks=Quirks(late_outputs_seconds=20.0),
    ) as emulator:
        with pytest.raises(LeftOnKaggle) as lagged:
            run_kaggle(emulator, out, params, outputs_wait=1.0)
        [job_dir] = (out / "espeak").iterdir()
        job_id = job_dir.name
        assert f"`kaggletts attach {job_id}`" in str(lagged.value)
        [shard] = json.loads((job_dir / "job.json").read_text())["run"]["shards"]
        assert shard["state"] == "complete", "still collectable"

        with pytest.raises(LeftOnKaggle):
            run_kaggle(emulator, out, params, outputs_wait=1.0)
        assert pushes(emulator) == 1, "the same request again only tries collecting"

        attached = kaggletts_cli(
            "attach", job_id, "--json", env=cli_env(emulator, KAGGLETTS_OUTPUT=str(out))
        )
        assert attached.returncode == 0, attached.stderr
        assert len(json.loads(attached.stdout)["audio"]) == 1
        assert emulator.calls["SaveKernel"] == 1 and kernels(emulator) == [], "deleted after"
