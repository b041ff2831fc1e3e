"""A corpus of malformed specs (``specs/``, one intended fault per file, its expected message on line 1).

Every one is refused by ``archon validate`` with a non-zero exit, at most three lines naming the file,
the expected message, and no traceback. Run in process (through the console entry point) to stay fast.

A file that cannot hold a ``# expect:`` comment (a JSON spec, an empty file) has its expected message in a
sibling ``NAME.expect`` file. ``specs/bases/`` holds the files that specs of the corpus extend; they are no
cases themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archon import cli

HERE = Path(__file__).parent / "specs"
SPECS = sorted([*HERE.glob("*.yaml"), *HERE.glob("*.json")])


def expected(path: Path) -> str:
    sibling = path.with_suffix(".expect")
    if sibling.is_file():
        return sibling.read_text(encoding="ascii").strip()
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_the_corpus_is_there() -> None:
    assert len(SPECS) >= 95
    assert len({p.stem for p in SPECS}) == len(SPECS)  # ids stay unique across .yaml and .json


def test_every_expect_file_has_its_spec() -> None:
    assert all(e.with_suffix(".yaml") in SPECS or e.with_suffix(".json") in SPECS for e in HERE.glob("*.expect"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_a_malformed_spec_is_refused_in_one_line(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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


def test_a_missing_input_is_said_once_without_its_consequences(monkeypatch, capsys) -> None:
    spec = Path(__file__).parent / "specs" / "missing-input.yaml"
    monkeypatch.setattr(sys, "argv", ["archon", "validate", str(spec)])
    with pytest.raises(SystemExit):
        cli.run()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no node 'x'" in lines[0] and "output" not in lines[0]


@pytest.mark.parametrize(
    ("env", "reason"),
    [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"), ({"HF_ENDPOINT": "https://hub.invalid"}, "cannot be reached")],
    ids=["offline", "unreachable"],
)
def test_a_hub_id_that_cannot_be_downloaded_is_refused_at_once(
    env: dict[str, str], reason: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spec = tmp_path / "hub.yaml"
    spec.write_text(
        "engines: {policy: {model: nosuchorg/nosuchmodel}}\n"
        "pipeline:\n  - {id: a, op: sample, params: {engine: policy}}\n"
    )
    monkeypatch.setattr(sys, "argv", ["archon", "validate", str(spec)])
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "engines.policy.model: model 'nosuchorg/nosuchmodel' is a hub id that is not in the local" in err
    assert reason in err and "Traceback" not in err
