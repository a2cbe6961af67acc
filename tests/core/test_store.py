"""The SQLite opener every store uses: schema version, write-ahead log, errors that name the path."""

from pathlib import Path

import pytest

from pilotage.core.errors import DataFileError
from pilotage.core.store import open_store

SCHEMA = "CREATE TABLE IF NOT EXISTS things (id TEXT PRIMARY KEY);"


def test_a_store_keeps_its_rows_and_its_version(tmp_path: Path) -> None:
    path = tmp_path / "things.sqlite"
    database = open_store(path, what="things", schema=SCHEMA, version=3)
    database.execute("INSERT INTO things VALUES ('a')")
    database.close()
    again = open_store(path, what="things", schema=SCHEMA, version=3, durable=False)
    assert again.execute("SELECT id FROM things").fetchall() == [("a",)]
    assert again.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert again.execute("PRAGMA user_version").fetchone() == (3,)
    again.close()


def test_another_version_or_a_path_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "things.sqlite"
    open_store(path, what="things", schema=SCHEMA, version=1).close()
    with pytest.raises(DataFileError, match="schema version 1, expected 2") as error:
        open_store(path, what="things", schema=SCHEMA, version=2)
    assert error.value.field == "path"
    with pytest.raises(DataFileError, match="cannot open the database of things"):
        open_store(tmp_path / "missing" / "folder" / "x.sqlite", what="things", schema=SCHEMA, version=1)
