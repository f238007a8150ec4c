"""A SQLite file used as a cache, guarded so that a cache can never stop a run.

A cache only saves work, so its faults are handled, not raised:

* a **corrupt** file (truncated, overwritten, not a database: SQLite's ``SQLITE_CORRUPT`` / ``SQLITE_NOTADB``, or a
  file shorter than its own header says) is removed and rebuilt empty, with a warning naming the path;
* a file that cannot be **opened or written** (a full disk, a read-only file system, no permission) turns caching off
  for the rest of the run, with a warning naming the path and the cause; the results are still computed.

No pickle: callers store raw bytes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

_HEADER = b"SQLite format 3\x00"
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_ADVICE = {
    13: "the disk is full: free some space",  # SQLITE_FULL
    8: "the file or its folder is read-only",  # SQLITE_READONLY
    14: "the file cannot be opened: check the folder exists and is writable",  # SQLITE_CANTOPEN
    3: "permission denied",  # SQLITE_PERM
    10: "a disk I/O error",  # SQLITE_IOERR
}


def is_corrupt(error: BaseException) -> bool:
    """Whether a SQLite error means the file itself is damaged."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CORRUPT_CODES:
        return True
    text = str(error).lower()
    return "malformed" in text or "not a database" in text


def truncated(path: Path) -> str | None:
    """Why ``path`` is visibly damaged (not SQLite, or shorter than its header says), or ``None``. Reads 100 bytes."""
    try:
        size = path.stat().st_size
        if size == 0:
            return None  # an empty file is an empty database
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return None
    if len(header) < 100 or not header.startswith(_HEADER):
        return "it is not a SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]  # the page count is only meaningful when these agree
    if header_valid and pages and size < pages * page_size:
        return f"it is {size:,} bytes but its header says {pages * page_size:,} (the file was truncated)"
    return None


class SQLiteCache:
    """A SQLite connection that survives a corrupt, full, read-only or forbidden cache file.

    Parameters
    ----------
    path : str or Path
        The SQLite file; created with its folder if missing.
    schema : sequence of str
        ``CREATE ... IF NOT EXISTS`` statements run on every open.
    what : str
        What the cache holds, for the warnings (``"embedding cache"``).

    Attributes
    ----------
    enabled : bool
        False once the cache has been turned off for this run.
    """

    def __init__(self, path: str | os.PathLike, schema: Sequence[str], what: str = "cache"):
        self.path = Path(path)
        self.schema = tuple(schema)
        self.what = what
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            damage = truncated(self.path)
            if damage:
                self._remove(damage)
            self._db = self._connect()
        except sqlite3.DatabaseError as error:
            if is_corrupt(error):
                self._rebuild(error)
            else:
                self._turn_off(error, "opening")
        except OSError as error:
            self._turn_off(error, "opening")

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def read(self, query: Callable[[sqlite3.Connection], T], default: T) -> T:
        """``query(connection)``, or ``default`` if the cache is off or turns out corrupt (then it is rebuilt)."""
        if self._db is None:
            return default
        try:
            return query(self._db)
        except sqlite3.DatabaseError as error:
            if is_corrupt(error):
                self._rebuild(error)
            else:
                self._turn_off(error, "reading")
            return default

    def write(self, update: Callable[[sqlite3.Connection], Any]) -> None:
        """Run ``update(connection)`` in one transaction; on a fault, warn and carry on without the cache."""
        if self._db is None:
            return
        try:
            with self._db:
                update(self._db)
        except sqlite3.DatabaseError as error:
            if not is_corrupt(error):
                self._turn_off(error, "writing")
                return
            self._rebuild(error)
            if self._db is not None:  # write once more into the fresh file
                try:
                    with self._db:
                        update(self._db)
                except sqlite3.DatabaseError as again:
                    self._turn_off(again, "writing")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- faults ----------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            for statement in self.schema:
                db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    def _remove(self, why: str) -> None:
        logger.warning("the %s at %s is corrupt (%s); it is removed and rebuilt empty", self.what, self.path, why)
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _rebuild(self, error: BaseException) -> None:
        self.close()
        try:
            self._remove(str(error))
            self._db = self._connect()
        except (OSError, sqlite3.Error) as again:
            self._turn_off(again, "rebuilding")

    def _turn_off(self, error: BaseException, action: str) -> None:
        self.close()
        code = getattr(error, "sqlite_errorcode", None)
        cause = _ADVICE.get(code & 0xFF) if code is not None else None
        detail = f"{error}" + (f": {cause}" if cause else "")
        logger.warning(
            "could not use the %s at %s (%s while %s); caching is off for the rest of this run: results are still "
            "computed, only not kept",
            self.what, self.path, detail, action,
        )
