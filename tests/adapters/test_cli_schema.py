"""`pilotage schema`: one message's JSON Schema on stdout, or every file written to a folder; a bad
name or a folder that cannot be one refused in one line."""

import json
from pathlib import Path

from pilotage.core.protocol.schema import json_schemas

from .command_line import pilotage


def test_one_document_is_printed_as_generated(cache_dir: Path) -> None:
    run = pilotage("schema", "request.priority.request", cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json_schemas()["request.priority.request"]


def test_every_file_is_written_to_the_folder_or_the_one_named(cache_dir: Path, tmp_path: Path) -> None:
    run = pilotage("schema", "--out", str(tmp_path / "all"), cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    written = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "all").iterdir()}
    assert written == json_schemas()
    run = pilotage("schema", "event.priority", "--out", str(tmp_path / "one"), cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    assert [path.name for path in (tmp_path / "one").iterdir()] == ["event.priority.json"]


def test_a_missing_or_unknown_name_and_a_file_for_a_folder_are_one_error_line(cache_dir: Path,
                                                                              tmp_path: Path) -> None:
    nothing = pilotage("schema", cache_dir=cache_dir)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == "pilotage: error: expected a NAME to print, or --out DIR to write every file"
    unknown = pilotage("schema", "priority.request", cache_dir=cache_dir)
    assert unknown.returncode == 2
    assert "invalid choice: 'priority.request'" in unknown.stderr and "request.priority.request" in unknown.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    blocked = pilotage("schema", "--out", str(a_file), cache_dir=cache_dir)
    assert blocked.returncode == 1
    assert len(blocked.stderr.splitlines()) == 1 and "expected a folder" in blocked.stderr
    assert "Traceback" not in blocked.stderr
