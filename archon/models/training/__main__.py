"""Train every embedded model from scratch: ``python -m archon.models.training [--out DIR]``.

Order: the tokenizer, ``tiny-l``, ``tiny-s``, then ``tiny-l``'s samples on
training-world arith problems, and the reward models ``tiny-prm`` and
``tiny-orm`` fine-tuned from ``tiny-l`` on them. Seeds are fixed; on 2 CPU
cores the whole run takes under an hour. ``--smoke`` runs a few steps of
each stage into a temporary directory (the test suite does this).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from archon.models.training.lm import LMSpec, train_lm
from archon.models.training.reward import RewardSpec, draw_samples, train_reward

EMBEDDED = Path(__file__).resolve().parents[1] / "embedded"

_L = {"hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 384}
_S = {"hidden": 64, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 192}
# Phases: first mostly copying exercises, so that the model learns to look things up
# (induction) before the arithmetic takes over; then the main mixture; for tiny-l, three
# last facts-heavy phases for reading documents, mostly from the open-ended world of
# ``training.data.open_people``, whose values can only be copied, not remembered.
# Each phase starts from the previous one's weights with a fresh optimizer.
_READ = LMSpec(**_L, steps=900, lr=1e-3, warmup=30, facts_fraction=0.2, copy_fraction=0.1, open_facts_fraction=0.45)
SPECS = {
    "tiny-l": [
        LMSpec(**_L, steps=500, lr=1e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.5, seed=0),
        LMSpec(**_L, steps=2000, lr=2e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.15, seed=1),
        replace(_READ, seed=2),
        replace(_READ, facts_fraction=0.15, open_facts_fraction=0.55, seed=3),
        replace(_READ, facts_fraction=0.0, open_facts_fraction=0.6, seed=4),
    ],
    "tiny-s": [
        LMSpec(**_S, steps=300, lr=2e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.5, seed=0),
        LMSpec(**_S, steps=900, lr=3e-3, warmup=50, facts_fraction=0.3, copy_fraction=0.15, seed=1),
    ],
}
REWARD = RewardSpec()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m archon.models.training", description=__doc__)
    ap.add_argument("--out", type=Path, default=EMBEDDED, help="where the model directories go")
    ap.add_argument("--only", nargs="*", choices=["tiny-l", "tiny-s", "rewards"], help="stages to run")
    ap.add_argument("--smoke", action="store_true", help="a few steps of every stage")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    stages = args.only or ["tiny-l", "tiny-s", "rewards"]
    timings: dict[str, float] = {}
    for name in ("tiny-l", "tiny-s"):
        if name in stages:
            t0 = time.perf_counter()
            for phase, spec in enumerate(SPECS[name]):
                if args.smoke:
                    spec = replace(spec, steps=3, warmup=1, arith_batch=4, facts_batch=2)
                print(f"== {name}, phase {phase + 1}", flush=True)
                init = args.out / name if phase else None
                train_lm(spec, args.out / name, init=init, log_every=0 if args.smoke else 100)
            timings[name] = time.perf_counter() - t0
    if "rewards" in stages:
        spec = REWARD
        if args.smoke:
            spec = replace(spec, problems=4, samples=2, steps=2, batch=4)
        from transformers import LlamaForCausalLM

        t0 = time.perf_counter()
        print("== sampling tiny-l for the reward models", flush=True)
        policy = LlamaForCausalLM.from_pretrained(str(args.out / "tiny-l"))
        data = draw_samples(policy, spec)
        timings["samples"] = time.perf_counter() - t0
        ok = sum(x.correct for x in data)
        print(f"{len(data)} samples, {ok} correct", flush=True)
        for name, process in (("tiny-prm", True), ("tiny-orm", False)):
            t0 = time.perf_counter()
            print(f"== {name}", flush=True)
            train_reward(
                args.out / "tiny-l", data, args.out / name, spec, process=process, log_every=0 if args.smoke else 50
            )
            timings[name] = time.perf_counter() - t0
    print(json.dumps({k: round(v, 1) for k, v in timings.items()}), flush=True)


if __name__ == "__main__":
    main()
