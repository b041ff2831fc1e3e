"""Speed and memory of the TransformersEngine against its baselines, on the embedded tiny-l.

    python benchmarks/engines.py            # the figures in BENCHMARKS.md (about 3 minutes on 2 cores)
    python benchmarks/engines.py --quick    # a smoke run with small sizes, no peak memory (seconds)

Cases, each timed against its baseline in one fresh process (the two alternate run by run, so both
see the same machine), and each variant's peak memory measured in a process of its own:

- ``samples``: N samples of one 256-token prompt, 64 new tokens, N in {1, 4, 16, 64}: generated
  tokens/s of ``TransformersEngine`` vs ``model.generate(num_return_sequences=N)``. Only tokens up
  to and including EOS count (``generate`` keeps computing finished rows; the engine drops them).
- ``concurrent``: 64 problems x 8 samples as 64 concurrent per-problem calls vs the same calls
  awaited one after another.
- ``prefix``: 32 problems, each continued step by step five times (each step's prompt is the
  previous prompt plus the previous step, as beam search does), with the prefix cache and without:
  prompt tokens prefilled and wall time.

Times are medians of ``--repeats`` runs after a warm-up; peak memory is the peak resident set size
one run adds to a process that has loaded the model. Writes ``benchmarks/results/engines.json``
(``engines_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- one measurement (subprocess)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_prompt(tokenizer: Any, n_tokens: int) -> list[int]:
    """A chat prompt of exactly ``n_tokens`` tokens: facts as context, then a long arith question."""
    from archon import data

    question = next(p for p in data.load("arith", "dev") if p.metadata["steps"] >= 7).question
    context = " ".join(d.text for d in data.corpus("facts")[:20])
    base = tokenizer.apply_chat_template([{"role": "user", "content": "\n" + question}], add_generation_prompt=True)
    room = n_tokens - len(base["input_ids"] if isinstance(base, dict) or hasattr(base, "keys") else base)
    messages = [{"role": "user", "content": context[:room] + "\n" + question}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    return list(ids)


def useful_tokens(rows: list[list[int]], eos: int) -> int:
    """Tokens of each row up to and including its first EOS."""
    total = 0
    for row in rows:
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def make_runner(case: str, variant: str, size: int, quick: bool) -> tuple[Any, Any]:
    """An engine and a function ``once(seed) -> generated tokens`` running one (case, variant, size)."""
    import torch

    from archon.core import GenRequest
    from samplers.transformers_engine import TransformersEngine

    # the prefix cache only where it is measured: elsewhere repeats would reuse the warm-up's prompts
    engine = TransformersEngine("tiny-l", prefix_cache_mb=256 if (case, variant) == ("prefix", "cache") else 0)
    model, tok = engine.model, engine.tokenizer
    eos = tok.eos_token_id

    if case == "samples":
        prompt = long_prompt(tok, 64 if quick else 256)
        new = 16 if quick else 64

        def once(seed: int) -> int:
            if variant == "generate":
                torch.manual_seed(seed)  # generate draws from the global stream: seed it as the engine is
                ids = torch.tensor([prompt])
                with torch.inference_mode():
                    out = model.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        do_sample=True,
                        temperature=1.0,
                        max_new_tokens=new,
                        num_return_sequences=size,
                    )
                return useful_tokens(out[:, len(prompt) :].tolist(), eos)
            req = GenRequest(prompt, n=size, max_tokens=new, temperature=1.0, seed=seed)
            return asyncio.run(engine.generate(req)).usage.generated_tokens

    elif case == "concurrent":
        from archon import data

        problems = data.load("arith", "dev")[: 8 if quick else size]
        samples = 2 if quick else 8

        def once(seed: int) -> int:
            reqs = [GenRequest(p.messages(), n=samples, max_tokens=128, temperature=1.0, seed=seed) for p in problems]

            async def together() -> list[Any]:
                return await asyncio.gather(*(engine.generate(r) for r in reqs))

            async def one_by_one() -> list[Any]:
                return [await engine.generate(r) for r in reqs]

            results = asyncio.run(together() if variant == "concurrent" else one_by_one())
            return sum(r.usage.generated_tokens for r in results)

    elif case == "prefix":
        from archon import data

        problems = [p for p in data.load("arith", "dev") if p.metadata["steps"] >= 5][: 4 if quick else size]
        context = " ".join(d.text for d in data.corpus("facts")[:20])[:200]

        def once(seed: int) -> int:
            engine.prefix_cache.clear()

            async def steps(i: int, question: str) -> int:
                msgs = [{"role": "user", "content": context + "\n" + question}]
                text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                generated = 0
                for k in range(5):
                    req = GenRequest(text, max_tokens=40, temperature=1.0, seed=seed * 1000 + i * 10 + k, stop="\n")
                    r = await engine.generate(req.replace(include_stop=True))
                    text += r.completions[0].text
                    generated += r.usage.generated_tokens
                return generated

            async def all_problems() -> list[int]:
                return await asyncio.gather(*(steps(i, p.question) for i, p in enumerate(problems)))

            return sum(asyncio.run(all_problems()))
    else:
        raise SystemExit(f"unknown case {case!r}")

    return engine, once


VARIANTS = {
    "samples": ("generate", "engine"),
    "concurrent": ("sequential", "concurrent"),
    "prefix": ("no-cache", "cache"),
}


def measure(case: str, size: int, repeats: int, quick: bool) -> list[dict[str, Any]]:
    """Time a case's baseline and engine variants in one process, alternating them run by run."""
    runners = {v: make_runner(case, v, size, quick) for v in VARIANTS[case]}
    for _, once in runners.values():
        once(0)  # warm-up
    before = {
        v: (e.stats.prefill_tokens, e.usage.cached_tokens, e.usage.prompt_tokens) for v, (e, _) in runners.items()
    }
    times: dict[str, list[float]] = {v: [] for v in runners}
    tokens: dict[str, list[int]] = {v: [] for v in runners}
    for r in range(repeats):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for v in order:
            t = time.perf_counter()
            tokens[v].append(runners[v][1](r + 1))
            times[v].append(time.perf_counter() - t)
    rows = []
    for v, (engine, _) in runners.items():
        med = statistics.median(times[v])
        row = {
            "case": case,
            "variant": v,
            "size": size,
            "seconds": med,
            "all_seconds": [round(x, 4) for x in times[v]],
            "generated_tokens": statistics.median(tokens[v]),
            "tokens_per_s": statistics.median(tokens[v]) / med,
        }
        if case in ("prefix", "concurrent"):
            p0, c0, q0 = before[v]
            row["prefill_tokens"] = (engine.stats.prefill_tokens - p0) / repeats
            row["prompt_tokens"] = (engine.usage.prompt_tokens - q0) / repeats
            row["cached_tokens"] = (engine.usage.cached_tokens - c0) / repeats
        rows.append(row)
    return rows


def peak_memory(case: str, variant: str, size: int, quick: bool) -> float:
    """Peak resident memory (MiB) one run of a variant adds over the loaded model."""
    _, once = make_runner(case, variant, size, quick)
    base = rss_mb()
    once(0)
    return round(rss_mb() - base, 1)


# ---------------------------------------------------------------------- the driver


def subprocess_json(*args: str) -> Any:
    """Run this script with ``args`` in a fresh Python process and parse its last line as JSON."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every case, print a table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument(
        "--results", type=Path, default=RESULTS, help="folder the JSON is written to (default: benchmarks/results)"
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 5; 1 quick)")
    ap.add_argument("--time", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--memory", nargs=3, metavar=("CASE", "VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    quick = ["--quick"] if args.quick else []
    if args.time:
        print(json.dumps(measure(args.time[0], int(args.time[1]), repeats, args.quick)))
        return
    if args.memory:
        case, variant, size = args.memory
        print(json.dumps(peak_memory(case, variant, int(size), args.quick)))
        return

    plan = [("samples", n) for n in ([1, 4] if args.quick else [1, 4, 16, 64])]
    plan += [("concurrent", 64), ("prefix", 32)]
    rows = []
    for case, size in plan:
        # a full run times each case in a fresh process; a quick (smoke) run in this one
        pair = (
            measure(case, size, repeats, True)
            if args.quick
            else subprocess_json("--time", case, str(size), "--repeats", str(repeats), *quick)
        )
        for r in pair:
            # peak memory takes a fresh process per variant: the full run measures it, a quick run does not
            memory = None if args.quick else subprocess_json("--memory", case, r["variant"], str(size))
            r["peak_memory_mb"] = memory
            rows.append(r)
            peak = "" if memory is None else f"  peak +{memory:.0f} MiB"
            print(
                f"{case:<11}{r['variant']:<11}{size:>4}  {r['seconds']:8.3f} s  {r['tokens_per_s']:9.0f} tok/s{peak}",
                flush=True,
            )

    def find(case: str, variant: str, size: int) -> dict[str, Any]:
        return next(r for r in rows if (r["case"], r["variant"], r["size"]) == (case, variant, size))

    summary: dict[str, Any] = {}
    for case, size in plan:
        if case == "samples":
            base = find("samples", "generate", size)
            summary[f"samples N={size}: engine / generate tokens/s"] = (
                find(case, "engine", size)["tokens_per_s"] / base["tokens_per_s"]
            )
    conc, seq = find("concurrent", "concurrent", 64), find("concurrent", "sequential", 64)
    summary["concurrent / sequential speed-up"] = seq["seconds"] / conc["seconds"]
    cache, plain = find("prefix", "cache", 32), find("prefix", "no-cache", 32)
    summary["prefix: prefill tokens without / with cache"] = plain["prefill_tokens"] / max(1, cache["prefill_tokens"])
    summary["prefix: prefill tokens saved"] = plain["prefill_tokens"] - cache["prefill_tokens"]
    summary["prefix: speed-up"] = plain["seconds"] / cache["seconds"]
    print()
    for k, v in summary.items():
        print(f"{k:<50}{v:10.2f}")

    import torch

    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "quick": args.quick,
        "repeats": repeats,
        "summary": summary,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / ("engines_quick.json" if args.quick else "engines.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
