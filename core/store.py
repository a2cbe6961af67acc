"""The one way pilotage opens an SQLite database for state that must survive a restart.

Reservations, routing jobs, and the signals' state (priority grants and open corridors) each keep
their own database, opened here with the same rules: autocommit (every write is its own
transaction, begun by the caller when it spans several statements), write-ahead logging, a busy
timeout so that a second process waits instead of failing, and a schema version checked before
anything is read.
"""

from __future__ import annotations

import os
import sqlite3

from pilotage.core.errors import DataFileError

#: How long a write waits for another process holding the database (s).
BUSY_TIMEOUT_S = 30.0


def open_store(path: str | os.PathLike[str], *, what: str, schema: str, version: int,
               durable: bool = True) -> sqlite3.Connection:
    """Open (or create) the SQLite database at ``path`` holding ``what`` (for messages), with the
    tables of ``schema`` (``CREATE TABLE IF NOT EXISTS`` statements) at schema ``version``.

    ``durable``: every transaction reaches the disk before it returns (``synchronous=FULL``), so
    it survives a power loss; otherwise it reaches the operating system (``synchronous=NORMAL``),
    which survives the process being killed, at a fraction of the cost.

    Raises:
        DataFileError: the database cannot be opened or created, or is of another schema version.
    """
    try:
        database = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                   check_same_thread=False)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        found = database.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, version):
            database.close()
            raise DataFileError(f"{os.fspath(path)}: a database of {what} at schema version {found}, expected "
                                f"{version}; give another path", field="path")
        database.executescript(schema)
        database.execute(f"PRAGMA user_version={version}")
    except sqlite3.Error as error:
        raise DataFileError(f"cannot open the database of {what} {os.fspath(path)}: {error}; check the path and "
                            "its permissions", field="path") from None
    return database
