"""Retrieval indexes cached on disk, keyed by the corpus's content and the retriever's settings.

An index is built once and stored in ``<root>/<key>/`` (``root``: a retriever's ``cache_dir`` option,
else ``$ARCHON_CACHE_DIR/indexes``, else ``$XDG_CACHE_HOME/archon/indexes`` or
``~/.cache/archon/indexes``). The key hashes the corpus's documents (ids, titles, texts, in order), the
retriever's kind and every setting that changes the index, and the library versions that wrote it, so
a changed corpus or setting builds a new index. Every file's SHA-256 is kept in ``manifest.json``; an
entry whose files are missing, changed or unreadable is rebuilt with a warning, never used. Entries
are written to a temporary directory and renamed into place, so a killed build leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from archon.data import Document

T = TypeVar("T")
FORMAT = 1
"""The layout version of an entry; a new layout gets new keys."""


def cache_root(option: str | os.PathLike[str] | None = None) -> Path:
    """Where indexes are kept (see the module docstring)."""
    if option:
        return Path(option).expanduser()
    if os.environ.get("ARCHON_CACHE_DIR"):
        return Path(os.environ["ARCHON_CACHE_DIR"]).expanduser() / "indexes"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "archon" / "indexes"


def corpus_hash(docs: Sequence[Document]) -> str:
    """A SHA-256 of the documents' ids, titles and texts, in order."""
    h = hashlib.sha256()
    for d in docs:
        for part in (d.id, d.title, d.text):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def index_key(kind: str, settings: Mapping[str, Any], corpus: str) -> str:
    """The entry name of an index of ``kind`` with ``settings`` over the corpus hashed ``corpus``."""
    blob = json.dumps({"format": FORMAT, "kind": kind, "settings": settings, "corpus": corpus}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class IndexCache:
    """Entries of one cache root: :meth:`load` a verified entry, :meth:`store` a new one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> Path:
        """The directory of entry ``key``."""
        return self.root / key

    def load(self, key: str, read: Callable[[Path], T]) -> tuple[T, dict[str, Any]] | None:
        """``read`` the entry ``key`` and its metadata, or ``None`` when there is no usable entry.

        An entry that fails verification (a file missing, changed or unreadable by ``read``) is removed
        with a warning naming it and why; the caller builds the index again.
        """
        path = self.entry(key)
        manifest = path / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            meta = json.loads(manifest.read_text())
            for name, digest in meta["files"].items():
                f = path / name
                if not f.is_file():
                    raise ValueError(f"{name} is missing")
                if _digest(f) != digest:
                    raise ValueError(f"{name} does not match its checksum")
            return read(path), meta
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"retrieval index {path} is corrupt ({reason}); rebuilding it", RuntimeWarning, stacklevel=2)
            shutil.rmtree(path, ignore_errors=True)
            return None

    def store(self, key: str, write: Callable[[Path], None], meta: Mapping[str, Any]) -> Path:
        """Write an entry with ``write(directory)`` and ``meta``; returns its directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            write(tmp)
            files = {p.relative_to(tmp).as_posix(): _digest(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / "manifest.json").write_text(json.dumps({**meta, "key": key, "files": files}, indent=1))
            final = self.entry(key)
            if final.exists():  # another process built it meanwhile, or a corrupt one was left
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
