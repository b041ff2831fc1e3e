"""Train every embedded model from scratch: ``python -m archon.models.training [--out DIR]``.

Order: ``tiny-l``, ``tiny-s``, then the verifier ``tiny-prm`` (with ``tiny-prm-weak``, an early
checkpoint of its first phase): a step-checking causal LM trained on the training world's steps and chains
(``training.checker``), not on any policy's samples; ``tiny-orm`` is ``tiny-prm``'s weights read as an
outcome verifier (``tiny-prm`` must exist when it is made). Everything comes from the training
worlds, never from the shipped dev/test problems; seeds are fixed. ``--only`` runs some stages;
``--smoke`` runs a few steps of each into a temporary directory (the test suite does this). Times on
2 CPU cores are in each model's ``training.json`` and card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from archon.models.training.checker import CheckerSpec, train_checker, write_reading
from archon.models.training.lm import LMSpec, train_lm

EMBEDDED = Path(__file__).resolve().parents[1] / "embedded"

_L = {"hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 384}
_S = {"hidden": 96, "layers": 3, "heads": 3, "kv_heads": 1, "intermediate": 256}
# Phases: first mostly copying exercises, so that the model learns to look things up
# (induction) before the arithmetic takes over; then the main mixture; for tiny-l, three
# last facts-heavy phases for reading documents, mostly from the open-ended world of
# ``training.data.open_people``, whose values can only be copied, not remembered.
# Each phase starts from the previous one's weights with a fresh optimizer.
_READ = LMSpec(**_L, steps=900, lr=1e-3, warmup=30, facts_fraction=0.2, copy_fraction=0.1, open_facts_fraction=0.45)
# The last tiny-l phase reads several passages (1-5, the twin always among them) and IterDRAG
# transcripts, while its arith batches keep the previous phase's arith distribution (distillation
# on its own samples), so that reading improves without moving the arith policy.
_KEEP_ARITH = replace(
    _READ,
    steps=1600,
    facts_fraction=0.15,
    copy_fraction=0.0,
    open_facts_fraction=0.15,
    lookup_fraction=0.1,
    multihop_fraction=0.1,
    distill_fraction=0.5,
    distill_pool=8192,
    min_distractors=0,
    max_distractors=4,
    seed=5,
)
SPECS = {
    "tiny-l": [
        LMSpec(**_L, steps=500, lr=1e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.5, seed=0),
        LMSpec(**_L, steps=2000, lr=2e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.15, seed=1),
        replace(_READ, seed=2),
        replace(_READ, facts_fraction=0.15, open_facts_fraction=0.55, seed=3),
        replace(_READ, facts_fraction=0.0, open_facts_fraction=0.6, seed=4),
        _KEEP_ARITH,
    ],
    "tiny-s": [
        LMSpec(**_S, steps=400, lr=2e-3, warmup=50, facts_fraction=0.2, copy_fraction=0.5, seed=0),
        LMSpec(**_S, steps=3000, lr=3e-3, warmup=50, facts_fraction=0.2, copy_fraction=0.1, seed=1),
    ],
}
CHECKERS = {
    "tiny-prm": [
        CheckerSpec(),
        CheckerSpec(steps=3000, lr=1e-3, warmup=50, chain_fraction=0.1, seed=13, steps_kept=()),
    ],
}
"""Each process verifier's phases (each starts from the previous one's weights)."""
WEAK = ("tiny-prm", 1, 1800)
"""``tiny-prm-weak`` is ``tiny-prm``'s checkpoint at this step of this phase (one of its ``steps_kept``).

The step was chosen, among the kept checkpoints, for a within-problem AUC near 0.75 on tiny-l's samples
of training-world arith problems (never dev/test): a learned PRM that is clearly imperfect."""
OUTCOME = {"tiny-orm": "tiny-prm"}
"""Outcome verifiers that are a process verifier's weights read as an outcome model (``reward_config.json``)."""
STAGES = ["tiny-l", "tiny-s", "tiny-prm", "tiny-orm"]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m archon.models.training", description=__doc__)
    ap.add_argument("--out", type=Path, default=EMBEDDED, help="where the model directories go")
    ap.add_argument("--only", nargs="*", choices=STAGES, help="stages to run")
    ap.add_argument("--smoke", action="store_true", help="a few steps of every stage")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    stages = args.only or STAGES
    timings: dict[str, float] = {}
    for name in ("tiny-l", "tiny-s"):
        if name in stages:
            t0 = time.perf_counter()
            for phase, spec in enumerate(SPECS[name]):
                if args.smoke:
                    spec = replace(spec, steps=3, warmup=1, arith_batch=4, facts_batch=2, distill_pool=8)
                print(f"== {name}, phase {phase + 1}", flush=True)
                init = args.out / name if phase else None
                train_lm(spec, args.out / name, init=init, log_every=0 if args.smoke else 100)
            timings[name] = time.perf_counter() - t0
    for name, phases in CHECKERS.items():
        if name not in stages:
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for phase, spec in enumerate(phases):
                if args.smoke:
                    spec = replace(spec, steps=3, warmup=1, step_batch=4, chain_batch=2, steps_kept=())
                init = args.out / name if phase else None
                train_checker(spec, args.out / name, checkpoints=tmp, init=init, log_every=0 if args.smoke else 200)
                if (name, phase + 1) == WEAK[:2]:
                    kept = Path(tmp) / f"step-{WEAK[2]}"
                    if args.smoke:  # the smoke run is shorter than any kept step
                        kept = args.out / name
                    shutil.rmtree(args.out / f"{name}-weak", ignore_errors=True)
                    shutil.copytree(kept, args.out / f"{name}-weak")
        timings[name] = time.perf_counter() - t0
    for name, source in OUTCOME.items():
        if name in stages:
            shutil.rmtree(args.out / name, ignore_errors=True)
            shutil.copytree(args.out / source, args.out / name)
            write_reading(args.out / name, "outcome")
    print(json.dumps({k: round(v, 1) for k, v in timings.items()}), flush=True)


if __name__ == "__main__":
    main()
