"""A run directory: ``results.jsonl``, ``run.json``, ``pipeline.json`` and ``summary.json``.

``results.jsonl`` holds one record per problem, appended as each finishes; ``run.json`` says what was
run (the spec's hash, the seed); ``pipeline.json`` is the DAG that ran (nodes, ops, inputs, params: what
``archon view`` draws). Opening one for a new run refuses a directory that already holds
results (``force`` starts it over); opening one to resume refuses a directory written by another spec
or seed, and drops a torn last line (a record cut short by a crash or a full disk), which is then run
again. A damaged line anywhere else is an error naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from archon.core import ArchonError


class RunDirError(ArchonError, ValueError):
    """A run directory cannot be used as asked; the message names it and says what to do."""


def spec_hash(spec: Any) -> str:
    """A hash of a spec's content (``model_dump`` in JSON mode, keys sorted)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_writable(flag: str, path: str | Path, *, kind: str = "directory") -> Path:
    """``path`` if a ``kind`` (``directory`` or ``file``) can be written there; else a one-line error naming ``flag``.

    Checked before any work starts, so that a run, a study or a measurement is not lost at its end for
    an output path under a file, or in a directory that cannot be written.
    """
    target = Path(path).expanduser()
    if target.exists():
        if kind == "directory" and not target.is_dir():
            raise RunDirError(f"{flag} {path}: is a file, not a directory")
        if kind == "file" and target.is_dir():
            raise RunDirError(f"{flag} {path}: is a directory, not a file")
    parent = target if target.is_dir() else target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(f"{flag} {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(f"{flag} {path}: cannot write in {parent} (permission denied)")
    return target


def open_run(out: str | Path, identity: dict[str, Any], *, resume: bool, force: bool = False) -> list[dict[str, Any]]:
    """Prepare ``out`` for a run of ``identity`` (spec hash, seed); the records already there when resuming.

    Raises:
        RunDirError: ``out`` is a file; it holds results and neither ``resume`` nor ``force`` was given;
            or it holds the results of another spec or seed.
    """
    directory = check_writable("--out", out)
    results, meta = directory / "results.jsonl", directory / "run.json"
    if results.is_file() and not resume and not force:
        raise RunDirError(f"--out {directory}: holds the results of a run; --resume continues it, --force starts over")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {directory}: {exc.strerror or exc}") from None
    if not resume or not results.is_file():
        results.unlink(missing_ok=True)
        (directory / "summary.json").unlink(missing_ok=True)
        meta.write_text(json.dumps(identity, indent=2) + "\n")
        return []
    if meta.is_file():
        before = json.loads(meta.read_text())
        changed = [k for k in identity if before.get(k) != identity[k]]
        if changed:
            what = ", ".join(changed)
            raise RunDirError(
                f"--out {directory}: was run with another {what}; resume it with the same, or use another --out"
            )
    meta.write_text(json.dumps(identity, indent=2) + "\n")
    return read_records(results)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``results.jsonl``; a torn last line is dropped from the file, other damage is an error."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            last = all(not rest.strip() for rest in lines[i + 1 :])
            if not last:
                raise RunDirError(f"{path}:{i + 1}: not a JSON record; the file is damaged") from None
            kept = b"\n".join(lines[:i])  # a record cut short: drop it, and run its problem again
            path.write_bytes(kept + b"\n" if kept else b"")
            break
    return records


def append_record(out: str | Path, record: dict[str, Any]) -> None:
    """Append one record (one line, flushed) to ``results.jsonl``."""
    with (Path(out) / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
