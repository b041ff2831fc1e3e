"""A corpus of malformed data files (``data/``, one intended fault per file, its expected message in :data:`EXPECT`).

Each is given to ``archon run examples/greedy.yaml --dataset FILE --limit 1``, in process. Data are read
before any model is loaded, so every one must be refused at once: a non-zero exit, at most three lines
on stderr naming the file (and, for a fault of one line, ``FILE:LINE`` or ``line LINE``), the expected
message, and no traceback. Loading a model is itself a failure here (:func:`no_model`): a bad file that
gets as far as the engines was not refused. Cases that cannot live in the repository (a
directory, a missing path) are made in ``tmp_path``.

A byte-order mark at the start of a file is accepted (editors on Windows write one); one on a later
line is a fault (``bom-on-line-2.jsonl``). A question longer than a model's context is not a malformed
file: the run fails that problem and says so (``tests/archon/test_rundir.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from archon import cli

DATA = Path(__file__).parent / "data"
GREEDY = Path(__file__).resolve().parents[2] / "examples" / "greedy.yaml"

EXPECT: dict[str, tuple[int | None, str]] = {
    # file: (the line at fault, or None for a fault of the whole file; a substring of the message)
    "not-json-line-3.jsonl": (3, "invalid JSON"),
    "array-not-object.jsonl": (2, "expected a JSON object, got list"),
    "string-not-object.jsonl": (1, "expected a JSON object, got str"),
    "missing-question.jsonl": (2, "field 'question' is missing"),
    "duplicate-ids.jsonl": (3, "field 'id': 'q1' repeats line 1"),
    "id-a-float.jsonl": (2, "field 'id' must be a string or an integer"),
    "id-empty.jsonl": (2, "field 'id' must not be empty"),
    "question-empty.jsonl": (1, "field 'question' must be a non-empty string or a list of messages"),
    "question-a-number.jsonl": (2, "field 'question' must be a non-empty string or a list of messages"),
    "question-null.jsonl": (1, "field 'question' must be a non-empty string or a list of messages"),
    "answer-an-object.jsonl": (2, "field 'answer' must be a string or a number"),
    "answer-a-bool.jsonl": (1, "field 'answer' must be a string or a number"),
    "metadata-a-list.jsonl": (1, "field 'metadata' must be an object"),
    "message-without-role.jsonl": (2, "field 'question[0]' must be an object with string 'role' and 'content'"),
    "message-content-a-number.jsonl": (1, "field 'question[0]' must be an object with string 'role' and 'content'"),
    "message-unknown-role.jsonl": (1, "field 'question[0].role' is 'tool'"),
    "messages-empty.jsonl": (2, "field 'question' is an empty list of messages"),
    "unknown-field.jsonl": (2, "unknown field 'anwser' (did you mean 'answer'?)"),
    "tests-a-list.jsonl": (1, "field 'tests' must be a string"),
    "trailing-garbage.jsonl": (2, "invalid JSON (Extra data"),
    "truncated-last-line.jsonl": (3, "invalid JSON"),
    "non-utf8-line-2.jsonl": (2, "not UTF-8 text"),
    "bom-on-line-2.jsonl": (2, "invalid JSON (Unexpected UTF-8 BOM"),
    "empty.jsonl": (None, "no problems in file"),
    "blank-lines.jsonl": (None, "no problems in file"),
}

GENERATED: dict[str, tuple[int | None, str]] = {
    "a-directory": (None, "it is a directory, not a JSONL file"),
    "no-such-file.jsonl": (None, "no data set or file named"),
}


@pytest.fixture(autouse=True)
def no_model(refuse_model_loads: Callable[[str], None]) -> None:
    """Loading any model's weights fails the test: a bad data file must be refused before that."""
    refuse_model_loads("the data file")


def generate(name: str, tmp: Path) -> Path:
    """The cases made in ``tmp``: a directory and a path that does not exist."""
    path = tmp / name
    if name == "a-directory":
        path.mkdir()
    return path


def refused(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line message with which ``archon run`` refuses the data file ``path``."""
    monkeypatch.setattr(sys, "argv", ["archon", "run", str(GREEDY), "--dataset", str(path), "--limit", "1"])
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert 1 <= len(err.splitlines()) <= 3, err
    return " ".join(err.split())  # rich may wrap a long line


def check(message: str, name: str, line: int | None, expected: str) -> None:
    assert name in message, message
    if line is not None:
        assert f"{name}:{line}" in message or f"line {line}" in message, message
    assert expected in message, message


def test_the_corpus_is_there() -> None:
    files = {p.name for p in DATA.iterdir()}
    assert files == set(EXPECT), files ^ set(EXPECT)
    assert len(EXPECT) + len(GENERATED) >= 18


@pytest.mark.parametrize("name", sorted(EXPECT), ids=[n.removesuffix(".jsonl") for n in sorted(EXPECT)])
def test_a_malformed_data_file_is_refused_in_one_line(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line, expected = EXPECT[name]
    check(refused(DATA / name, monkeypatch, capsys), name, line, expected)


@pytest.mark.parametrize("name", sorted(GENERATED), ids=[n.removesuffix(".jsonl") for n in sorted(GENERATED)])
def test_a_bad_data_path_is_refused_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line, expected = GENERATED[name]
    check(refused(generate(name, tmp_path), monkeypatch, capsys), name, line, expected)
