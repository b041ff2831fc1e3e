"""A content-addressed generation cache, shared by the trials of a tuning study.

:class:`CachingEngine` wraps any engine and draws the samples of a seeded request by index, so that
sample ``i`` is independent of ``n`` and of whatever else shares the batch: the engine's own row ``i``
when it says so (``stable_samples``: the transformers engine, whose rows draw from streams keyed by seed
and index), else the single completion of the same request with ``n=1`` and the seed :func:`derive_seed`
``(seed, i)``. Each sample can then be stored under a key of its own (:func:`sample_key`) in a
:class:`GenerationCache`, and a trial that asks for 16 samples reuses samples 0-15 of the 64 an earlier
trial drew for the same prompt and sampling parameters.

The cache is one SQLite file (WAL journal, long busy timeout, ``INSERT OR IGNORE``), so several worker
processes can read and write it at once. Results do not depend on it: a ``CachingEngine`` without a
cache draws by index the same way and returns the same completions, and the usage it reports is
nominal (one prefill of the prompt plus the samples' tokens, nothing cached) whether the samples were
drawn now or earlier, so a budget charges a trial the same either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archon.core.generation import Completion, Engine, GenRequest, GenResult, RequestError, Usage

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
    compute_seconds REAL NOT NULL
)
"""
_COLUMNS = (
    "key, text, token_ids, logprobs, entropies, finish_reason, stop_str, prompt_tokens, generated_tokens, "
    "compute_seconds"
)


# ---------------------------------------------------------------------- keys


def derive_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a request seeded with ``seed``: a 63-bit hash of the pair.

    Example:
        >>> derive_seed(7, 0) == derive_seed(7, 0), derive_seed(7, 0) == derive_seed(7, 1)
        (True, False)
        >>> 0 <= derive_seed(-3, 5) < 2**63
        True
    """
    digest = hashlib.sha256(json.dumps(["sample-seed", seed, index]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One stored sample: the completion, its prompt's token count and what drawing it took.

    ``generated_tokens`` is the completion's token count (from the engine's usage when the
    completion carries no token ids); ``compute_seconds`` is the sample's share of its batch's time.
    """

    completion: Completion
    prompt_tokens: int
    generated_tokens: int
    compute_seconds: float


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
        >>> cache.put_many({"k": CacheEntry(Completion(" 5", (5,)), 7, 1, 0.01)})
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

    def get_many(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        """The stored entries of those ``keys`` that are stored (missing keys are left out)."""
        wanted = list(dict.fromkeys(keys))
        conn = self._connection()
        found: dict[str, CacheEntry] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT {_COLUMNS} FROM samples WHERE key IN ({marks})", chunk).fetchall()
            for row in rows:
                found[row[0]] = _entry(row)
        return found

    def put_many(self, entries: Mapping[str, CacheEntry]) -> int:
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


def _row(key: str, entry: CacheEntry) -> tuple[Any, ...]:
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
    )


def _entry(row: tuple[Any, ...]) -> CacheEntry:
    _, text, token_ids, logprobs, entropies, finish_reason, stop_str, prompt_tokens, generated, seconds = row
    completion = Completion(
        text=text,
        token_ids=tuple(json.loads(token_ids)),
        logprobs=None if logprobs is None else tuple(json.loads(logprobs)),
        entropies=None if entropies is None else tuple(json.loads(entropies)),
        finish_reason=finish_reason,
        stop_str=stop_str,
    )
    return CacheEntry(completion, int(prompt_tokens), int(generated), float(seconds))


# ---------------------------------------------------------------------- engine


@dataclass(slots=True)
class CacheStats:
    """Counters of a :class:`CachingEngine`.

    ``requests`` counts every ``generate`` call (unseeded ones, which pass straight through, too);
    ``samples_served`` and ``tokens_served`` count what was returned, ``samples_generated`` and
    ``tokens_generated`` what the wrapped engine actually drew; ``hits`` counts samples found in the
    cache (a greedy request looks up one sample, whatever its ``n``).
    """

    requests: int = 0
    samples_served: int = 0
    samples_generated: int = 0
    tokens_served: int = 0
    tokens_generated: int = 0
    hits: int = 0


class CachingEngine:
    """An engine whose seeded samples are drawn by index and kept in a :class:`GenerationCache`.

    Sample ``i`` of a request with a seed never depends on the request's ``n``:

    - When ``inner.stable_samples`` is true (:class:`~samplers.transformers_engine.TransformersEngine`:
      its row ``i`` draws from a stream keyed by (seed, ``i``)), sample ``i`` is the engine's own
      completion ``i``. Each run of consecutive samples missing from the cache (usually one: the
      cache holds a prompt's first samples) is drawn by one ``inner.generate_from(request, first)``.
    - Otherwise (servers, vLLM) sample ``i`` is the completion of the request with ``n=1`` and seed
      ``derive_seed(seed, i)``; the missing ones are requested from ``inner`` concurrently (so its
      micro-batcher serves them in one batch and prefills the prompt once).

    Drawn samples are stored and returned with the cached ones in index order. A greedy request
    (temperature 0) draws one sample and repeats it ``n`` times. Requests without a seed are not
    reproducible: they pass straight through and are not stored.

    The usage of a cached request is nominal: the prompt once (per prefill the wrapped engine would
    need for ``n`` samples), no cached prompt tokens, and the samples' tokens; ``compute_seconds`` is
    the sum of the samples' stored compute seconds. It is the same whether the samples were drawn now
    or came from the cache, so a :class:`~archon.core.ChargedEngine` on top charges a trial the same.

    Every other attribute (``name``, ``facts``, ``score``, ``encode``, ``tokenizer``, ``stats``,
    ``close``, ``aclose`` ...) is the wrapped engine's.

    Args:
        inner: The engine that draws samples.
        cache: Where samples are kept (``None``: nowhere; samples are still drawn by index, so results
            equal those with a cache).
        identity: Names the model and everything about the engine that changes its samples (e.g. the
            engine config's JSON); part of every key.
        usage: ``"nominal"`` (above; what a tuning study needs) or ``"actual"``: the prompt tokens the
            wrapped engine found already cached for this request are reported as cached (prefix-cache
            hits charged as such; what a plain run needs, where every sample is drawn live).

    Example:
        >>> import asyncio
        >>> from samplers.transformers_engine import TransformersEngine
        >>> engine = CachingEngine(TransformersEngine("tiny-l"), None, identity="tiny-l")
        >>> request = GenRequest("3 * 4 - 2 =", n=4, max_tokens=4, temperature=1.5, seed=1)
        >>> few = asyncio.run(engine.generate(request))
        >>> more = asyncio.run(engine.generate(request.replace(n=6)))
        >>> more.completions[:4] == few.completions
        True
        >>> engine.close()
    """

    def __init__(self, inner: Engine, cache: GenerationCache | None, *, identity: str, usage: str = "nominal") -> None:
        if usage not in ("nominal", "actual"):
            raise ValueError(f"usage must be 'nominal' or 'actual', got {usage!r}")
        self.inner = inner
        self.cache = cache
        self.identity = identity
        self.usage = usage
        self.cache_stats = CacheStats()

    def __getattr__(self, name: str) -> Any:
        inner = vars(self).get("inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"CachingEngine({self.inner!r}, {self.cache!r}, identity={self.identity!r})"

    @property
    def stable_samples(self) -> bool:
        """Whether the wrapped engine draws seeded samples by index (``stable_samples`` and ``generate_from``)."""
        return getattr(self.inner, "stable_samples", False) is True

    @property
    def supports_n(self) -> bool:
        """Whether ``n`` samples share one prefill (``False`` when the wrapped engine fans ``n`` out)."""
        return getattr(self.inner, "supports_n", True) is not False

    async def generate(self, request: GenRequest) -> GenResult:
        """The ``n`` completions of ``request``, from the cache where stored, else drawn and stored."""
        return await self.generate_from(request, 0)

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        """Samples ``first`` to ``first + n - 1`` of ``request`` (without a seed, ``first`` changes nothing)."""
        if first < 0:
            raise RequestError(f"generate_from: first must be >= 0, got {first}")
        start = time.perf_counter()
        stats = self.cache_stats
        stats.requests += 1
        if request.seed is None:
            result = await self.inner.generate(request)
            tokens = _generated_tokens(result)
            stats.samples_served += len(result.completions)
            stats.samples_generated += len(result.completions)
            stats.tokens_served += tokens
            stats.tokens_generated += tokens
            return result

        indices = [0] if request.greedy else list(range(first, first + request.n))
        if self.cache is None:  # nothing to look up: indices stand in for keys
            keys = {i: str(i) for i in indices}
        else:
            keys = {i: sample_key(self.identity, request, i) for i in indices}
        found = self.cache.get_many(keys.values()) if self.cache is not None else {}
        missing = [i for i in indices if keys[i] not in found]
        drawn, hit = await self._draw(request, request.seed, missing, keys)
        entries = [found[keys[i]] if keys[i] in found else drawn[i] for i in indices]
        if request.greedy:
            entries *= request.n

        generated = sum(e.generated_tokens for e in entries)
        prefills = 1 if self.supports_n else request.n
        cached = hit * prefills if self.usage == "actual" and len(drawn) == len(keys) else 0
        stats.hits += len(found)
        stats.samples_served += len(entries)
        stats.tokens_served += generated
        stats.samples_generated += len(drawn)
        stats.tokens_generated += sum(e.generated_tokens for e in drawn.values())
        return GenResult(
            request=request,
            completions=tuple(e.completion for e in entries),
            usage=Usage(
                prompt_tokens=entries[0].prompt_tokens * prefills, cached_tokens=cached, generated_tokens=generated
            ),
            model=self.inner.name,
            seconds=time.perf_counter() - start,
            compute_seconds=sum(e.compute_seconds for e in entries),
        )

    async def _draw(
        self, request: GenRequest, seed: int, indices: list[int], keys: dict[int, str]
    ) -> tuple[dict[int, CacheEntry], int]:
        """Draw the samples ``indices`` concurrently and store them; re-raise the first failure.

        Also returns the prompt tokens the wrapped engine already had cached (the fewest any draw reported:
        the first of a batch computes the prompt, the rest reuse it).
        """
        if not indices:
            return {}, 0
        drawn: dict[int, CacheEntry] = {}
        results: list[GenResult | BaseException] = []
        if self.stable_samples:  # each run of consecutive missing indices is one request for that run
            runs: list[list[int]] = []
            for i in indices:
                if runs and runs[-1][-1] == i - 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            requests = [self.inner.generate_from(request.replace(n=len(run)), run[0]) for run in runs]  # type: ignore[attr-defined]
            results = list(await asyncio.gather(*requests, return_exceptions=True))
            for run, r in zip(runs, results, strict=True):
                if isinstance(r, GenResult):
                    drawn.update((i, _completion_entry(r, j, _sample_seconds(r))) for j, i in enumerate(run))
        else:
            singles = [request.replace(n=1, seed=derive_seed(seed, i)) for i in indices]
            results = list(await asyncio.gather(*(self.inner.generate(r) for r in singles), return_exceptions=True))
            for i, r in zip(indices, results, strict=True):
                if isinstance(r, GenResult):
                    drawn[i] = _completion_entry(r, 0, _sample_seconds(r))
        live = [r for r in results if isinstance(r, GenResult)]
        hit = min((min(r.usage.cached_tokens, r.usage.prompt_tokens) for r in live), default=0)
        if self.cache is not None and drawn:
            self.cache.put_many({keys[i]: entry for i, entry in drawn.items()})
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return drawn, hit


def _sample_seconds(result: GenResult) -> float:
    """Each completion's share of the compute time of ``result``."""
    seconds = result.seconds if result.compute_seconds is None else result.compute_seconds
    return seconds / max(1, len(result.completions))


def _completion_entry(result: GenResult, index: int, seconds: float) -> CacheEntry:
    """The entry of completion ``index`` of ``result``."""
    completion = result.completions[index]
    if completion.token_ids:
        generated = completion.num_tokens
    else:
        generated = round(result.usage.generated_tokens / len(result.completions))
    return CacheEntry(completion, result.usage.prompt_tokens, generated, seconds)


def _generated_tokens(result: GenResult) -> int:
    """Tokens generated: the completions' token ids, else the engine's usage."""
    if all(c.token_ids for c in result.completions):
        return sum(c.num_tokens for c in result.completions)
    return result.usage.generated_tokens
