"""A content-addressed generation cache, shared by the trials of a tuning study.

:class:`~samplers.indexed.IndexSeededEngine` draws the samples of a seeded request by index, so that
sample ``i`` is independent of ``n`` and of whatever else shares the batch. Each sample can then be
stored under a key of its own (:func:`sample_key`) in a :class:`GenerationCache` (the engine's
``store``), and a trial that asks for 16 samples reuses samples 0-15 of the 64 an earlier trial drew
for the same prompt and sampling parameters.

The cache is one SQLite file (WAL journal, long busy timeout, ``INSERT OR IGNORE``), so several worker
processes can read and write it at once. Results do not depend on it: an ``IndexSeededEngine``
without a store draws by index the same way and returns the same completions, and the usage it reports
in a study is nominal (one prefill of the prompt plus the samples' tokens, nothing cached) whether the
samples were drawn now or earlier, so a budget charges a trial the same either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archon.core.generation import Completion, GenRequest
from samplers.indexed import DrawnSample

_KEY_VERSION = 2
"""Bumped whenever the meaning of a sample changes, so older entries stop matching (2: counter-based streams)."""
_CHUNK = 500
"""Keys per ``SELECT ... IN (...)``, below SQLite's limit on bound variables."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    token_ids TEXT NOT NULL,
    logprobs TEXT,
    entropies TEXT,
    finish_reason TEXT NOT NULL,
    stop_str TEXT,
    prompt_tokens INTEGER NOT NULL,
    generated_tokens INTEGER NOT NULL,
    compute_seconds REAL NOT NULL,
    confidences TEXT
)
"""
_COLUMNS = (
    "key, text, token_ids, logprobs, entropies, finish_reason, stop_str, prompt_tokens, generated_tokens, "
    "compute_seconds, confidences"
)


# ---------------------------------------------------------------------- keys


def sample_key(identity: str, request: GenRequest, index: int) -> str:
    """The cache key of sample ``index`` of ``request`` from the model named by ``identity``.

    The sha256 hex digest of a canonical JSON of the model's identity, the prompt (in the form the
    request holds it), every sampling field that changes the output, the seed and the index. ``n`` is
    not part of it. Greedy samples (temperature 0) do not depend on seed and index: they are keyed with
    seed ``None`` and index 0.

    Example:
        >>> r = GenRequest("2 + 3 =", n=4, temperature=0.8, seed=1)
        >>> sample_key("m", r, 2) == sample_key("m", r.replace(n=64), 2)
        True
        >>> sample_key("m", r, 2) == sample_key("m", r, 3), sample_key("m", r, 2) == sample_key("other", r, 2)
        (False, False)
        >>> g = r.replace(temperature=0)
        >>> sample_key("m", g, 0) == sample_key("m", g.replace(seed=9), 5)
        True
    """
    greedy = request.greedy
    prompt = request.prompt if isinstance(request.prompt, str) else list(request.prompt)
    fields = {
        "v": _KEY_VERSION,
        "identity": identity,
        "prompt": prompt,
        "max_tokens": request.max_tokens,
        "temperature": float(request.temperature),
        "top_p": float(request.top_p),
        "top_k": request.top_k,
        "stop": list(request.stop),
        "include_stop": request.include_stop,
        "logprobs": request.logprobs,
        "entropies": request.entropies,
        "seed": None if greedy else request.seed,
        "index": 0 if greedy else index,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------- storage


class GenerationCache:
    """Samples stored by key in one SQLite file, safe for concurrent threads and processes.

    Every thread (and every process, after a fork) opens its own connection. The file uses a WAL
    journal so readers never wait for writers, writers wait up to ``timeout`` seconds for each other,
    and a key that is already stored is left as it is (``INSERT OR IGNORE``), so workers racing on the
    same sample agree on the first one written.

    Args:
        path: The SQLite file (created with its table when missing).
        timeout: Seconds a connection waits for another's write lock before failing.

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> cache = GenerationCache(Path(folder.name) / "generations.sqlite")
        >>> cache.put_many({"k": DrawnSample(Completion(" 5", (5,)), 7, 1, 0.01)})
        1
        >>> cache.get_many(["k", "missing"])["k"].completion.text, len(cache)
        (' 5', 1)
        >>> cache.close(); folder.cleanup()
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._connection()  # create the file and table now, so a bad path fails here

    def __repr__(self) -> str:
        return f"GenerationCache({str(self.path)!r})"

    @staticmethod
    def key(identity: str, request: GenRequest, index: int) -> str:
        """The key of sample ``index`` of ``request`` (:func:`sample_key`)."""
        return sample_key(identity, request, index)

    def get_many(self, keys: Iterable[str]) -> dict[str, DrawnSample]:
        """The stored entries of those ``keys`` that are stored (missing keys are left out)."""
        wanted = list(dict.fromkeys(keys))
        conn = self._connection()
        found: dict[str, DrawnSample] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT {_COLUMNS} FROM samples WHERE key IN ({marks})", chunk).fetchall()
            for row in rows:
                found[row[0]] = _entry(row)
        return found

    def put_many(self, entries: Mapping[str, DrawnSample]) -> int:
        """Store ``entries`` by key in one transaction; keys already stored keep their entry.

        Returns:
            How many entries were new.
        """
        if not entries:
            return 0
        conn = self._connection()
        rows = [_row(key, entry) for key, entry in entries.items()]
        marks = ",".join("?" * len(rows[0]))
        before = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: the busy timeout then applies
        try:
            conn.executemany(f"INSERT OR IGNORE INTO samples ({_COLUMNS}) VALUES ({marks})", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return conn.total_changes - before

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def close(self) -> None:
        """Close every connection this object opened; the cache cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        pid = os.getpid()
        if pid != self._pid:  # forked: the parent's connections must not be used (nor closed) here
            with self._lock:
                self._pid, self._connections, self._local = pid, [], threading.local()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            _wal(conn, self.timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(samples)")}
            if "confidences" not in columns:  # a cache written before token confidences existed
                try:
                    conn.execute("ALTER TABLE samples ADD COLUMN confidences TEXT")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections.append(conn)
        self._local.conn = conn
        return conn


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, retrying while it is locked.

    The switch needs the file to itself, and SQLite's busy handler does not always wait for it while
    another process is creating the same file.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _row(key: str, entry: DrawnSample) -> tuple[Any, ...]:
    c = entry.completion
    return (
        key,
        c.text,
        json.dumps(list(c.token_ids)),
        None if c.logprobs is None else json.dumps(list(c.logprobs)),
        None if c.entropies is None else json.dumps(list(c.entropies)),
        c.finish_reason,
        c.stop_str,
        entry.prompt_tokens,
        entry.generated_tokens,
        entry.compute_seconds,
        None if c.confidences is None else json.dumps(list(c.confidences)),
    )


def _entry(row: tuple[Any, ...]) -> DrawnSample:
    _, text, token_ids, logprobs, entropies, finish_reason, stop_str, prompt_tokens, generated, seconds, conf = row
    completion = Completion(
        text=text,
        token_ids=tuple(json.loads(token_ids)),
        logprobs=None if logprobs is None else tuple(json.loads(logprobs)),
        entropies=None if entropies is None else tuple(json.loads(entropies)),
        finish_reason=finish_reason,
        stop_str=stop_str,
        confidences=None if conf is None else tuple(json.loads(conf)),
    )
    return DrawnSample(completion, int(prompt_tokens), int(generated), float(seconds))
