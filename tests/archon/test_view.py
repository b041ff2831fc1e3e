"""``archon view``: the page of a run, checked in a real headless browser (Debian's Chromium)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import load_spec
from archon.view import ViewError, write_view

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("view") / "beam"
    runner = Runner(load_spec(EXAMPLES / "beam_search.yaml"), seed=0)
    try:
        asyncio.run(runner.run(data.load("arith", "dev")[:3], out=out))
    finally:
        asyncio.run(runner.aclose())
    return out


def chromium(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", *flags,
           page.as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_page_is_self_contained_and_holds_the_run(beam_run: Path) -> None:
    page = write_view(beam_run)
    assert page == beam_run / "view.html"
    text = page.read_text()
    assert "<script src=" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "<link" not in text  # nothing fetched: no network
    embedded = json.loads(re.search(r'<script type="application/json" id="run-data">(.*?)</script>', text, re.S)[1])
    assert [r["id"] for r in embedded["records"]] == [
        json.loads(x)["id"] for x in (beam_run / "results.jsonl").read_text().splitlines()
    ]
    assert embedded["pipeline"]["nodes"][0]["op"] == "beam_search" and embedded["pipeline"]["output"] == "beam"


def test_bad_arguments_are_one_line_errors(beam_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ViewError, match="no such file"):
        write_view(tmp_path)
    with pytest.raises(ViewError, match="--problem nope: not a problem of"):
        write_view(beam_run, problem="nope")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; CI installs it)")
def test_the_page_draws_the_search_tree_in_a_real_browser_with_no_console_errors(
    beam_run: Path, tmp_path: Path
) -> None:
    first = json.loads((beam_run / "results.jsonl").read_text().splitlines()[0])
    tree = next(e["tree"] for e in first["trace"] if e.get("tree"))
    page = write_view(beam_run, tmp_path / "one.html", problem=first["id"])
    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="1"' in dom.stdout and "data-error" not in dom.stdout  # the script ran to its end
    assert "INFO:CONSOLE" not in dom.stderr, [x for x in dom.stderr.splitlines() if "CONSOLE" in x]
    assert dom.stdout.count('class="tnode"') == len(tree)  # every node of the beam search's tree is drawn
    assert dom.stdout.count('class="dag-node"') == 1 and first["id"] in dom.stdout
    kept = sum(n["kept"] for n in tree)
    assert 0 < kept < len(tree)  # some nodes were expanded and some pruned: both are shown
    shot = tmp_path / "view.png"
    done = chromium(page, f"--screenshot={shot}", "--window-size=1300,1400")
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert "INFO:CONSOLE" not in done.stderr


def test_the_cli_writes_the_page(beam_run: Path, tmp_path: Path) -> None:
    from tests.archon.test_cli import archon

    out = archon("view", str(beam_run), "-o", str(tmp_path / "p.html"))
    assert out.returncode == 0 and (tmp_path / "p.html").is_file(), out.stderr
    out = archon("view", str(tmp_path))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "no such file" in out.stderr
