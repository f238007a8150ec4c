"""A persistent cache of LLM answers in one SQLite file, so that a rerun costs nothing.

The key is the SHA-256 of a canonical JSON document holding the backend kind, the model, the system prompt, the
user prompt, the prefill and the sampling parameters: changing any of them (a new prompt template, another model,
another temperature) misses exactly the entries it should. Values are JSON (the answer and its token counts), never
pickles. The cache holds answers about scrubbed text and the prompts themselves are not stored, only their hash:
still, keep it where the conversations themselves may live.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from .backends import Completion, Request


def cache_key(kind: str, model: str, request: Request) -> str:
    """The hex SHA-256 identifying ``request`` sent to ``model`` of backend ``kind``.

    Examples
    --------
    >>> a = cache_key("openai", "m", Request("hello"))
    >>> a == cache_key("openai", "m", Request("hello")), a == cache_key("openai", "m", Request("hello!"))
    (True, False)
    """
    document = {
        "backend": kind,
        "model": model,
        "system": request.system,
        "prompt": request.prompt,
        "prefill": request.prefill,
        "params": request.params(),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class SQLiteCache:
    """Answers keyed by :func:`cache_key`, in the SQLite file ``path`` (created with its folder if missing).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> cache = SQLiteCache(pathlib.Path(tempfile.mkdtemp()) / "llm.sqlite")
    >>> cache.put("k", Completion("an answer", 12, 3))
    >>> cache.get("k")
    Completion(text='an answer', input_tokens=12, output_tokens=3)
    >>> cache.get("missing") is None, len(cache)
    (True, 1)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, check_same_thread=False)
        with self._lock, self._connection:
            self._connection.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._connection.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return Completion(value["text"], value.get("input_tokens"), value.get("output_tokens"))

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(
            {"text": completion.text, "input_tokens": completion.input_tokens,
             "output_tokens": completion.output_tokens},
            ensure_ascii=False,
        )
        with self._lock, self._connection:
            self._connection.execute("INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)", (key, value))

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
