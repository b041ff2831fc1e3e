"""A corpus of malformed specs (``specs/``, one intended fault per file, its expected message on line 1).

Every one is refused by ``archon validate`` with a non-zero exit, at most three lines naming the file,
the expected message, and no traceback. Run in process (through the console entry point) to stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archon import cli

SPECS = sorted((Path(__file__).parent / "specs").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_the_corpus_is_there():
    assert len(SPECS) >= 40


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_a_malformed_spec_is_refused_in_one_line(path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["archon", "validate", str(path)])
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code not in (0, None)
    out = capsys.readouterr()
    err = out.err.strip()
    assert "Traceback" not in err and out.out.strip() == ""
    assert 1 <= len(err.splitlines()) <= 3, err
    message = " ".join(err.split())  # rich may wrap a long line
    assert path.name in message, message
    assert expected(path) in message, message
