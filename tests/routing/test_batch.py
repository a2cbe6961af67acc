"""Batch runs: several files at once in worker processes, progress reported, one bad file not
stopping the others, outputs that cannot overwrite each other."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.core.errors import InvalidInputError
from pilotage.routing import run_files


def test_files_are_solved_in_parallel_with_progress_and_a_bad_one_does_not_stop_the_others(
        shared_data: Callable[..., Path], tmp_path: Path) -> None:
    gdb = shared_data("carp", "gdb")
    broken = tmp_path / "broken.dat"
    broken.write_text(" NOMBRE : broken\n")
    progress: list[tuple[int, float, float, float]] = []
    summaries = run_files([gdb / "gdb1.dat", broken, gdb / "gdb2.dat"], tmp_path / "out", instance_format="carp",
                          time_limit_s=0.5, workers=2, on_progress=lambda *update: progress.append(update))
    assert [Path(s["input"]).name for s in summaries] == ["gdb1.dat", "broken.dat", "gdb2.dat"]
    assert "VERTICES" in summaries[1]["error"]
    for summary in (summaries[0], summaries[2]):
        assert summary["feasible"]
        assert json.loads(Path(summary["outputs"]["solution"]).read_text())["distance"] == summary["distance"]
    assert {index for index, *_ in progress} == {0, 2}
    assert all(elapsed >= 0 and budget == 0.5 for _, elapsed, budget, _ in progress)


def test_inputs_whose_outputs_would_clash_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="distinct names"):
        run_files([tmp_path / "a" / "job.json", tmp_path / "b" / "job.json"], tmp_path / "out")
    with pytest.raises(InvalidInputError, match="workers"):
        run_files([tmp_path / "job.json"], tmp_path / "out", workers=0)
