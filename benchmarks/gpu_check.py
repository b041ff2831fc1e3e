"""The GPU check of the TransformersEngine: correctness and the N-sample benchmark, in one short run.

    python benchmarks/gpu_check.py                 # on CUDA (about 1-2 minutes)
    python benchmarks/gpu_check.py --device cpu    # the same checks on the CPU

Checks, on the embedded tiny-l:

1. greedy equality: 16 arith problems batched through the engine equal ``model.generate(do_sample=False)``
   one by one, token for token (float32, so that kernels of different batch sizes agree);
2. seeded reproducibility: a seeded request gives the same samples alone and inside a batch;
3. bfloat16 (CUDA only): greedy agreement with float32, reported, not required;
4. the N-sample benchmark of ``benchmarks/engines.py``: generated tokens/s of the engine vs
   ``model.generate(num_return_sequences=N)``, N in {1, 4, 16, 64}, a 256-token prompt, 64 new tokens.

Prints a table, writes ``benchmarks/results/gpu_check.json`` (``gpu_check_cpu.json`` on the CPU) and
exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sync(device: str) -> None:
    """Wait for the device's queued work (so timings are honest)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def check_greedy(engine: Any, problems: list[Any]) -> dict[str, Any]:
    """Batched greedy completions equal transformers' own greedy generate, one prompt at a time."""
    import torch

    from archon.core import GenRequest

    async def batch() -> list[Any]:
        return await asyncio.gather(
            *(engine.generate(GenRequest(p.messages(), max_tokens=96, temperature=0)) for p in problems)
        )

    results = asyncio.run(batch())
    equal = 0
    for p, r in zip(problems, results, strict=True):
        ids = torch.tensor([engine.encode(p.messages())], device=engine.device)
        ref = engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=96)
        ref_tokens = ref[0, ids.shape[1] :].tolist()
        got = list(r.completions[0].token_ids)
        equal += got == ref_tokens[: len(got)]
    return {
        "check": "greedy equals model.generate",
        "passed": equal == len(problems),
        "detail": f"{equal}/{len(problems)}",
    }


def check_seeded(engine: Any, problems: list[Any]) -> dict[str, Any]:
    """A seeded request draws the same samples alone and inside a batch."""
    from archon.core import GenRequest

    req = GenRequest(problems[0].messages(), n=8, max_tokens=64, temperature=1.0, seed=11)

    async def mixed() -> list[Any]:
        others = [GenRequest(p.messages(), n=4, max_tokens=64, temperature=1.0) for p in problems[1:6]]
        return await asyncio.gather(engine.generate(req), *(engine.generate(o) for o in others))

    alone = asyncio.run(engine.generate(req)).texts
    again = asyncio.run(engine.generate(req)).texts
    inside = asyncio.run(mixed())[0].texts
    same = alone == again == inside
    return {"check": "seeded samples reproducible", "passed": same, "detail": f"{len(set(alone))} distinct of 8"}


def bf16_agreement(device: str, problems: list[Any]) -> dict[str, Any]:
    """Greedy agreement of bfloat16 with float32 (information only)."""
    from archon.core import GenRequest
    from samplers.transformers_engine import TransformersEngine

    outs = {}
    for dtype in ("float32", "bfloat16"):
        engine = TransformersEngine("tiny-l", device=device, dtype=dtype)

        async def batch(e: Any = engine) -> list[Any]:
            return await asyncio.gather(
                *(e.generate(GenRequest(p.messages(), max_tokens=96, temperature=0)) for p in problems)
            )

        outs[dtype] = [r.texts[0] for r in asyncio.run(batch())]
        engine.close()
    same = sum(a == b for a, b in zip(outs["float32"], outs["bfloat16"], strict=True))
    return {"check": "bfloat16 greedy = float32 (info)", "passed": True, "detail": f"{same}/{len(problems)}"}


def n_samples(engine: Any, repeats: int) -> list[dict[str, Any]]:
    """Tokens/s of the engine vs ``generate(num_return_sequences=N)`` for N in {1, 4, 16, 64}."""
    import torch

    from archon.core import GenRequest
    from benchmarks.engines import long_prompt, useful_tokens

    prompt = long_prompt(engine.tokenizer, 256)
    eos = engine.tokenizer.eos_token_id
    rows = []
    for n in (1, 4, 16, 64):
        timings: dict[str, list[float]] = {"generate": [], "engine": []}
        tokens: dict[str, list[int]] = {"generate": [], "engine": []}
        for r in range(repeats + 1):  # the first run warms up
            ids = torch.tensor([prompt], device=engine.device)
            sync(str(engine.device))
            t = time.perf_counter()
            with torch.inference_mode():
                out = engine.model.generate(
                    ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=64, num_return_sequences=n
                )
            sync(str(engine.device))
            if r:
                timings["generate"].append(time.perf_counter() - t)
                tokens["generate"].append(useful_tokens(out[:, len(prompt) :].tolist(), eos))
            t = time.perf_counter()
            res = asyncio.run(engine.generate(GenRequest(prompt, n=n, max_tokens=64, temperature=1.0, seed=r)))
            sync(str(engine.device))
            if r:
                timings["engine"].append(time.perf_counter() - t)
                tokens["engine"].append(res.usage.generated_tokens)
        tps = {k: statistics.median(tokens[k]) / statistics.median(timings[k]) for k in timings}
        rows.append(
            {
                "n": n,
                "generate_tok_s": tps["generate"],
                "engine_tok_s": tps["engine"],
                "speedup": tps["engine"] / tps["generate"],
            }
        )
    return rows


def main() -> int:
    """Run the checks and the benchmark; print a table; exit 1 if a check failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder the JSON is written to (default: benchmarks/results)",
    )
    args = ap.parse_args()

    import torch

    from archon import data
    from samplers.transformers_engine import TransformersEngine

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device; run with --device cpu")
        return 2
    start = time.perf_counter()
    problems = data.load("arith", "dev")[:16]
    engine = TransformersEngine("tiny-l", device=args.device, dtype="float32")
    checks = [check_greedy(engine, problems), check_seeded(engine, problems)]
    if args.device.startswith("cuda"):
        checks.append(bf16_agreement(args.device, problems))
    bench = n_samples(engine, args.repeats)
    engine.close()

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\ndevice: {name}, torch {torch.__version__}")
    for c in checks:
        print(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['check']:<36} {c['detail']}")
    print(f"\n  {'N':>3} {'generate tok/s':>15} {'engine tok/s':>13} {'speed-up':>9}")
    for r in bench:
        print(f"  {r['n']:>3} {r['generate_tok_s']:>15.0f} {r['engine_tok_s']:>13.0f} {r['speedup']:>8.2f}x")
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s")
    suffix = "" if args.device.startswith("cuda") else "_cpu"
    out = args.results / f"gpu_check{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    report = {"device": name, "torch": torch.__version__, "checks": checks, "n_samples": bench, "seconds": seconds}
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
