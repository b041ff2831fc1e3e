"""What the study benchmarks share: running the ``archon`` CLI for its JSON, and reading a best.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def archon(*args: str, may_fail: bool = False) -> dict:
    """Run the CLI with ``--json`` and return its JSON (the last line of its output).

    With ``may_fail``, a failure returns ``{"error": its last line}`` instead of stopping the benchmark.
    """
    done = subprocess.run(
        [sys.executable, "-m", "archon", *args, "--json"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        if may_fail:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(done.returncode)}
        raise SystemExit(f"archon {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def chosen(best: Path) -> dict:
    """The answering node of a best.yaml: its op and params."""
    spec = yaml.safe_load(best.read_text())
    node = spec["pipeline"][-1]
    return {"op": node["op"], **{k: v for k, v in node.get("params", {}).items() if k not in ("max_tokens",)}}
