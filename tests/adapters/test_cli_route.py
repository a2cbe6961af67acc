"""`pilotage route`: jobs and standard instances solved from the command line, several at once, with
their solutions, GeoJSON and maps; a table that gives its units and whole names; bad files refused
in one line, and no success claimed for them."""

import json
import re
from collections.abc import Callable
from pathlib import Path

from pilotage.core import RoadNetwork

from .command_line import pilotage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_jobs_are_solved_together_with_maps(city: RoadNetwork, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "routes"
    run = pilotage("route", str(EXAMPLES / "bulky-waste.json"), str(EXAMPLES / "street-cleaning.json"),
                   "--out", str(out), "--time-limit", "1", cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    assert "bulky-waste.json" in run.stdout and "street-cleaning.json" in run.stdout
    for name in ("bulky-waste", "street-cleaning"):
        solution = json.loads((out / f"{name}.solution.json").read_text())
        assert solution["feasible"] and not solution["violations"] and not solution["unassigned"]
        assert solution["solver"]["time_limit_s"] == 1
        features = json.loads((out / f"{name}.geojson").read_text())["features"]
        assert {f["properties"]["kind"] for f in features} >= {"depot", "route"}
        page = (out / f"{name}.html").read_text()
        assert "<svg" in page and "http" not in page
    swept = json.loads((out / "street-cleaning.solution.json").read_text())
    assert {v["kind"] for r in swept["routes"] for v in r["visits"]} == {"street"}


def test_a_standard_instance_is_solved(shared_data: Callable[..., Path], cache_dir: Path, tmp_path: Path) -> None:
    run = pilotage("route", "--format", "carp", str(shared_data("carp", "gdb", "gdb1.dat")), "--out",
                   str(tmp_path), "--time-limit", "1", "--json", cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    (summary,) = json.loads(run.stdout)
    assert summary["feasible"]
    assert summary["distance"] >= 316  # the published optimum


def test_a_bad_job_is_one_error_line_naming_the_field(city: RoadNetwork, cache_dir: Path, tmp_path: Path) -> None:
    job = json.loads((EXAMPLES / "bulky-waste.json").read_text())
    job["stops"][1]["windows"] = [["10:00", "09:00"]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(job))
    run = pilotage("route", str(path), "--out", str(tmp_path / "out"), "--time-limit", "1", cache_dir=cache_dir)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, run.stderr
    assert "P-002" in run.stdout and "closes at 09:00:00" in run.stdout
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    run = pilotage("route", str(not_json), "--out", str(tmp_path / "out"), cache_dir=cache_dir)
    assert run.returncode == 1
    assert "expected one JSON object" in run.stdout


def test_the_route_table_gives_its_units_whole_names_and_no_success_line_for_a_failed_file(
        city: RoadNetwork, cache_dir: Path, tmp_path: Path) -> None:
    job = json.loads((EXAMPLES / "street-cleaning.json").read_text())
    job["currency"] = "EUR"
    good = tmp_path / "street-cleaning-of-the-old-town-on-a-monday.json"
    good.write_text(json.dumps(job))
    bad = tmp_path / "bulky-waste-booked-by-residents-this-week.json"
    bad.write_text(json.dumps(dict(job, vehicles=[])))
    run = pilotage("route", str(good), str(bad), "--out", str(tmp_path / "out"), "--time-limit", "1",
                   cache_dir=cache_dir)
    assert run.returncode == 1
    header, solved, failed, *rest = run.stdout.splitlines()
    assert header.split() == ["input", "feasible", "cost", "distance", "km", "rounds", "h:mm", "vehicles", "left",
                              "out", "|", "search", "s"]
    assert solved.startswith(good.name + " ")
    assert re.search(r" yes +[\d,]+\.\d\d EUR +[\d,]+\.\d +\d+:\d\d +\d +0 +\| +\d+\.\d$", solved), solved
    assert failed.startswith(bad.name + " ")
    assert rest == [f"solutions, GeoJSON and maps of 1 of 2 files in {tmp_path / 'out'}/: {good.name}"]
    run = pilotage("route", str(bad), "--out", str(tmp_path / "out"), cache_dir=cache_dir)
    assert run.returncode == 1
    assert "solutions, GeoJSON and maps" not in run.stdout
