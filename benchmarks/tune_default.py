"""Does the README's main command find what works? The same study over several seeds, scored on test.

    python benchmarks/tune_default.py                 # both specs, seeds 0 1 2 (about half an hour, 2 cores)
    python benchmarks/tune_default.py --seeds 0 --specs tune_arith

For each spec (``examples/tune_arith.yaml``, and ``examples/tune_arith_learned.yaml``: learned
verifiers only) and each seed, it runs exactly the README's main command with ``--seed`` added::

    archon tune SPEC --budget-flops 1e9 --trials 16 --minibatch 60 --seed S --out DIR
    archon run DIR/best.yaml --split test --json

and compares the test accuracy of the configuration it returns with greedy tiny-l on test
(``examples/greedy.yaml``). Every seed is reported. Writes ``benchmarks/results/tune_default.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from cli_runs import archon, chosen  # noqa: E402  (a sibling script's helpers)

RESULTS = ROOT / "benchmarks" / "results"
COMMAND = ["--budget-flops", "1e9", "--trials", "16", "--minibatch", "60"]


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--specs", nargs="+", default=["tune_arith", "tune_arith_learned"])
    ap.add_argument("--out", type=Path, default=RESULTS / "tune_default.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    greedy = archon("run", str(ROOT / "examples" / "greedy.yaml"), "--split", "test")["accuracy"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.specs:
            for seed in args.seeds:
                study_dir = Path(tmp) / f"{name}-{seed}"
                start = time.perf_counter()
                tuned = archon(
                    "tune",
                    str(ROOT / "examples" / f"{name}.yaml"),
                    *COMMAND,
                    "--seed",
                    str(seed),
                    "--out",
                    str(study_dir),
                )
                minutes = (time.perf_counter() - start) / 60
                test = archon("run", str(study_dir / "best.yaml"), "--split", "test")
                row = {
                    "spec": name,
                    "seed": seed,
                    "chosen": chosen(study_dir / "best.yaml"),
                    "dev (whole split)": tuned["best"]["full"],
                    "test accuracy": test["accuracy"],
                    "test FLOPs per problem": test["per_problem"].get("flops"),
                    "test - greedy": test["accuracy"] - greedy,
                    "study minutes": round(minutes, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": "archon tune SPEC " + " ".join(COMMAND) + " --seed S",
        "greedy test accuracy": greedy,
        "rows": rows,
        "every seed beats greedy by >= 0.05": {
            name: all(r["test - greedy"] >= 0.05 for r in rows if r["spec"] == name) for name in args.specs
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
