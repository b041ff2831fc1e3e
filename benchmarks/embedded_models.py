"""Measure the embedded models against their targets and write the figures of their model cards.

    python benchmarks/embedded_models.py                 # full: all of arith dev, 64 samples
    python benchmarks/embedded_models.py --limit 40 --samples 16   # a quick look

Figures (arith ``dev`` unless said otherwise):

- ``tiny-l`` / ``tiny-s``: greedy accuracy; pass@1, coverage@N (unbiased pass@k) and majority@N
  over ``--samples`` samples at temperature 1.0; the share of problems whose own pass@1 is >= 0.8
  and <= 0.2.
- verifiers (``benchmarks/selection.py``), on tiny-l's samples: within-problem pairwise AUC,
  best-of-N and a vote weighted by the verifier at N = 4, 16, 64 next to greedy, pass@1, majority@N
  and coverage@N, and the between-problem AUC, labelled as such. The learned ones (``tiny-prm``,
  ``tiny-prm-weak``, ``tiny-orm``), tiny-l's own solution probability, the exact step checker (a
  tool) and its noisy versions (synthetic instruments, never learned verifiers).
- copy errors: a synthetic set of dev solutions in which one step copies an operand or the operator
  wrong (its arithmetic right): the share scored below the problem's reference solution.
- ``tiny-s``: non-embedding parameters against tiny-l's, and the AUROC of its next-token entropy
  for predicting that its greedy token differs from tiny-l's (along tiny-s's own greedy solutions).
- facts ``dev``: greedy accuracy with the gold document, with the gold document among five passages
  (its near-duplicate twin when it has one, and others), and with none.

It prints a table and writes ``benchmarks/results/embedded_models.json``;
``--write-cards`` also refreshes the figures in each model's ``README.md``. Samples are cached
under ``benchmarks/results/tmp/`` (``--fresh`` draws them again).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose verifiers.py would shadow the verifiers package
sys.path.insert(1, str(Path(__file__).resolve().parent))

from selection import (  # noqa: E402
    copy_error_figures,
    copy_error_set,
    policy_figures,
    score_samples,
    selection_figures,
)

from archon import data, models  # noqa: E402
from archon.core.metrics import roc_auc  # noqa: E402
from archon.data.facts import context_prompt, near_duplicate  # noqa: E402
from archon.models.training.data import PAD_ID, encode_chars, encode_prompt  # noqa: E402
from archon.models.training.sampling import final_answer, sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECOMMENDED_TEMPERATURE = 1.0
NS = (4, 16, 64)
TARGETS = {
    "tiny-l pass@1": "0.25 - 0.70",
    "tiny-l coverage@16": ">= 0.90",
    "share of problems with pass@1 >= 0.8": ">= 0.20",
    "share of problems with pass@1 <= 0.2": ">= 0.10",
    "tiny-prm within-problem AUC": ">= 0.90",
    "tiny-orm within-problem AUC": ">= 0.80",
    "best-of-16 by tiny-prm - greedy": ">= 0.10",
    "weighted vote@16 by tiny-prm - majority@16": ">= 0.10",
    "best-of-16 by tiny-orm - greedy": ">= 0.03",
    "tiny-prm-weak within-problem AUC": "0.65 - 0.85",
    "tiny-s greedy": ">= 0.30",
    "tiny-s non-embedding params / tiny-l's": "<= 0.40",
    "tiny-s entropy AUROC (greedy token differs from tiny-l's)": ">= 0.75",
    "facts greedy, gold doc (tiny-l)": ">= 0.80",
    "facts greedy, gold doc among 5 passages (tiny-l)": ">= 0.70",
    "facts greedy, no doc (tiny-l)": "<= 0.10",
}


def load_lm(name: str) -> torch.nn.Module:
    """An embedded causal LM, in eval mode."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(models.path(name)).eval()


def draw(name: str, problems: list, n: int, temperature: float, fresh: bool) -> tuple[list[str], list[list[str]]]:
    """Greedy and ``n`` sampled solutions of an LM per problem (cached on disk by their settings)."""
    cache = RESULTS / "tmp" / f"samples_{name}_{len(problems)}_{problems[0].id}_n{n}_t{temperature}.json"
    if cache.is_file() and not fresh:
        got = json.loads(cache.read_text())
        return got["greedy"], got["samples"]
    model = load_lm(name)
    qs = [p.question for p in problems]
    greedy = [g[0] for g in sample(model, qs, n=1, temperature=0.0, max_new_tokens=160)]
    samples = sample(model, qs, n=n, temperature=temperature, max_new_tokens=160, seed=1)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"greedy": greedy, "samples": samples}))
    return greedy, samples


def lm_figures(problems: list, greedy: list[str], samples: list[list[str]]) -> dict:
    """A policy's greedy, pass@1, majority@N and coverage@N, and how its problems spread."""
    n = len(samples[0])
    figures = policy_figures(problems, greedy, samples, [k for k in NS if k <= n])
    per = [sum(final_answer(s) == p.answer for s in outs) / n for p, outs in zip(problems, samples, strict=True)]
    figures["share pass@1 >= 0.8"] = sum(x >= 0.8 for x in per) / len(per)
    figures["share pass@1 <= 0.2"] = sum(x <= 0.2 for x in per) / len(per)
    return figures


def verifiers_under_test() -> dict:
    """Name -> (verifier, what it is); learned verifiers first, then the policy's own and the tools."""
    from verifiers.reward import RewardModel
    from verifiers.steps import ArithStepChecker

    out = {
        "tiny-prm": (RewardModel("tiny-prm"), "learned process verifier (min over steps)"),
        "tiny-prm-weak": (RewardModel("tiny-prm-weak"), "learned process verifier, early checkpoint"),
        "tiny-orm": (RewardModel("tiny-orm"), "learned outcome verifier"),
        "tiny-l solution probability": (
            RewardModel(
                "tiny-l",
                name="tiny-l-prob",
                config={"kind": "outcome", "read": "teacher_forced", "score": "probability"},
            ),
            "the policy's own probability of the solution (not a verifier model)",
        ),
        "arith_steps": (ArithStepChecker(), "tool: the exact step checker"),
    }
    try:
        from verifiers.noisy import NoisyStepChecker
    except ImportError:
        return out
    for auc in (0.7, 0.8, 0.9):
        out[f"noisy_arith_steps auc={auc}"] = (NoisyStepChecker(auc=auc), "synthetic instrument: a noisy exact checker")
    return out


@torch.no_grad()
def entropy_auroc(problems: list, small_greedy: list[str]) -> dict:
    """AUROC of tiny-s's next-token entropy for "its greedy token differs from tiny-l's" (tiny-s's own text)."""
    small, large = load_lm("tiny-s"), load_lm("tiny-l")
    entropies: list[float] = []
    differs: list[bool] = []
    seqs = [(encode_prompt(p.question), encode_chars(g)) for p, g in zip(problems, small_greedy, strict=True)]
    for lo in range(0, len(seqs), 64):
        part = seqs[lo : lo + 64]
        width = max(len(a) + len(b) for a, b in part)
        ids = torch.full((len(part), width), PAD_ID, dtype=torch.long)
        for r, (a, b) in enumerate(part):
            ids[r, : len(a) + len(b)] = torch.tensor(a + b)
        mask = (ids != PAD_ID).long()
        ls = small(input_ids=ids, attention_mask=mask).logits.float()
        ll = large(input_ids=ids, attention_mask=mask).logits.float()
        for r, (a, b) in enumerate(part):
            at = slice(len(a) - 1, len(a) + len(b))  # every position where tiny-s chose a token
            logp = torch.log_softmax(ls[r, at], -1)
            entropies.extend((-(logp.exp() * logp).sum(-1)).tolist())
            differs.extend((ls[r, at].argmax(-1) != ll[r, at].argmax(-1)).tolist())
    return {
        "positions": len(differs),
        "share differing": sum(differs) / len(differs),
        "entropy AUROC": roc_auc(entropies, differs),
    }


def facts_figures(name: str, limit: int | None) -> dict:
    """Greedy facts accuracy with the gold document, with it among five passages, and with none."""
    model = load_lm(name)
    problems = data.load("facts", split="dev")[:limit]
    corpus = [d for d in data.corpus("facts") if d.id.startswith("doc-")]  # the people (not the towns)
    docs = {d.id: d.text for d in corpus}
    titles = {d.id: d.title for d in corpus}
    rng = random.Random(3)
    with_gold, with_five = [], []
    for p in problems:
        gold = p.metadata["gold_doc_ids"]
        with_gold.append(context_prompt(p.question, [docs[i] for i in gold]))
        twins = [d.id for d in corpus if d.id not in gold and near_duplicate(d.title, titles[gold[0]])][:1]
        others = []
        while len(gold) + len(twins) + len(others) < 5:
            d = rng.choice(corpus).id
            if d not in gold and d not in twins and d not in others:
                others.append(d)
        five = [*gold, *twins, *others]
        rng.shuffle(five)
        with_five.append(context_prompt(p.question, [docs[i] for i in five]))
    out: dict = {}
    for key, users in (
        ("gold doc", with_gold),
        ("gold among 5", with_five),
        ("no doc", [p.question for p in problems]),
    ):
        gen = sample(model, users, n=1, temperature=0.0, max_new_tokens=128)
        right = [final_answer(g[0]) == p.answer for g, p in zip(gen, problems, strict=True)]
        out[key] = sum(right) / len(problems)
        if key != "no doc":
            by: dict[str, list[bool]] = {}
            for ok, p in zip(right, problems, strict=True):
                by.setdefault(p.metadata["attribute"], []).append(ok)
            out[f"{key} by attribute"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(by.items())}
    return out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems of each dev split")
    ap.add_argument("--samples", type=int, default=64, help="samples per problem (64 for every figure)")
    ap.add_argument("--temperature", type=float, default=RECOMMENDED_TEMPERATURE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="draw samples again instead of using the cache")
    ap.add_argument("--write-cards", action="store_true", help="refresh the figures in the model cards")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default: under benchmarks/results/)")
    args = ap.parse_args()
    if args.out is None:
        suffix = "" if args.limit is None and args.samples == 64 else f"_limit{args.limit}_n{args.samples}"
        args.out = RESULTS / f"embedded_models{suffix}.json"
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    problems = data.load("arith", split="dev")[: args.limit]
    n, T = args.samples, args.temperature
    ns = [k for k in NS if k <= n]
    l_greedy, l_samples = draw("tiny-l", problems, n, T, args.fresh)
    s_greedy, s_samples = draw("tiny-s", problems, min(n, 16), T, args.fresh)
    result: dict = {
        "machine": f"{_cpu_name()} ({platform.machine()}), {torch.get_num_threads()} threads",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "problems": len(problems),
        "samples": n,
        "temperature": T,
        "tiny-l": lm_figures(problems, l_greedy, l_samples),
        "tiny-s": lm_figures(problems, s_greedy, s_samples),
        "tiny-l pass@1 by steps": _by_difficulty(problems, l_samples),
    }
    result["tiny-s"]["non-embedding params / tiny-l's"] = _non_embedding("tiny-s") / _non_embedding("tiny-l")
    result["tiny-s"] |= entropy_auroc(problems, s_greedy)
    result["verifiers"] = {}
    cases = copy_error_set(problems)
    for name, (verifier, what) in verifiers_under_test().items():
        scores = score_samples(verifier, problems, l_samples)
        result["verifiers"][name] = {
            "what": what,
            **selection_figures(problems, l_samples, scores, ns),
            "copy errors": copy_error_figures(verifier, cases),
        }
        if hasattr(verifier, "close"):
            verifier.close()
    result["copy error set"] = len(cases)
    result["facts"] = {"tiny-l": facts_figures("tiny-l", args.limit), "tiny-s": facts_figures("tiny-s", args.limit)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["targets"] = _targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    if args.write_cards:
        write_cards(result)


def _non_embedding(name: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(models.path(name)))
    return sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()


CARD_TEXT = {
    "tiny-l": "The larger causal LM of the embedded default, trained from scratch on the arith and facts "
    "training worlds (disjoint from the shipped splits). The default policy model: clearly imperfect at "
    "arithmetic, with varied errors, so that sampling, voting and verifier-guided search visibly help; "
    "able to read a fact from a document in its prompt. Its last training phase taught it to read several "
    "passages and to write IterDRAG follow-ups while keeping its arith distribution (distilled from its "
    "own samples before that phase).",
    "tiny-s": "A smaller causal LM (under 40% of tiny-l's non-embedding parameters) trained on the same "
    "data: the cheap model for model switching, cascades and FLOP-matched comparisons. Its next-token "
    "entropy signals where it would disagree with tiny-l.",
    "tiny-prm": "The process verifier of the embedded default: a causal LM trained from scratch on the "
    "training world's isolated steps (`a op b = c`) and chains, never on a policy's samples, and read by "
    "teacher forcing (`reward_config.json`, `read: teacher_forced`): a step's score is the probability of "
    "its operands after the question and the earlier steps times the probability of its result after "
    "`a op b = ` alone. It sees the question and the solution only, never the reference answer.",
    "tiny-prm-weak": "An early checkpoint of tiny-prm's first training phase (step 1800 of 4200), read the "
    "same way: a learned but clearly imperfect process verifier, for search studies that need one next to "
    "the strong tiny-prm. The step was chosen among the kept checkpoints for a within-problem AUC near 0.75 "
    "on tiny-l's samples of 200 training-world arith problems (1800: 0.728, 2100: 0.826, 2400: 0.829, "
    "2700: 0.871), never on dev or test.",
    "tiny-orm": "The outcome verifier of the embedded default: tiny-prm's weights read as an outcome "
    "model (`reward_config.json`, `kind: outcome`): one score per solution, the product of its steps' "
    "probabilities, and no step scores.",
}

EARLIER = {
    "tiny-prm": "The first tiny-prm was a `LlamaForTokenClassification` fine-tuned from tiny-l on tiny-l's "
    "own samples: step AUC 0.900 and solution AUC (min) about 0.88, over all solutions pooled, but "
    "within-problem AUC at chance (about 0.5), and best-of-16 by it scored 0.39-0.43 against greedy "
    "0.750 and pass@1 0.576 on arith dev.",
    "tiny-orm": "The first tiny-orm was a `LlamaForSequenceClassification` fine-tuned from tiny-l on "
    "tiny-l's own samples: solution AUC 0.869 over all solutions pooled, within-problem AUC at chance, "
    "best-of-16 0.39-0.43 against greedy 0.750.",
    "tiny-s": "The first tiny-s (hidden 64, 2 layers, 12.5% of tiny-l's non-embedding parameters) had "
    "greedy accuracy 0.024 on arith dev.",
}

SHORTFALL_REASONS = {
    "best-of-16 by tiny-prm - greedy": "Missed by one problem in 500 with tiny-prm's default aggregation "
    "(min over steps); read with prod (the same weights as tiny-orm) best-of-16 is greedy + 0.126. The "
    "default was not switched after seeing these dev figures.",
    "tiny-prm-weak within-problem AUC": "The checkpoint was chosen on training-world problems (AUC 0.728 "
    "there), not on dev.",
    "facts greedy, gold doc (tiny-l)": "tiny-l copies birth years, birth places and instruments from the "
    "document (accuracy by attribute above) but may write a wrong profession.",
    "facts greedy, gold doc among 5 passages (tiny-l)": "tiny-l writes the asked person's name and then "
    "copies the values of another passage: picking the passage by a two-word name among several, by "
    "characters, is what 4 layers of 128 units have not learnt in the training time given (three "
    "multi-passage reading runs of 17-32 CPU-minutes each reached 0.20-0.29; the shipped one is the last "
    "of them). A larger reader or a word-level tokenizer would change the task; both change every other "
    "figure measured on tiny-l.",
}


def _shortfalls(targets: dict) -> str:
    missed = [k for k, v in targets.items() if not v["met"]]
    if not missed:
        return ""
    lines = ["", "## Targets not met", ""]
    for k in missed:
        lines.append(
            f"- {k}: {targets[k]['measured']:.3f} (target {targets[k]['target']}). "
            f"{SHORTFALL_REASONS.get(k, '')}".rstrip()
        )
    return "\n".join(lines) + "\n"


def write_cards(r: dict) -> None:
    """Write each embedded model's README.md: what it is, how it was trained, its measured figures."""
    t = r["targets"]
    figures = "\n".join(
        f"| {k} | {v['measured']:.3f} | {v['target']} | {'yes' if v['met'] else 'no'} |" for k, v in t.items()
    )
    for name in models.names():
        info = models.info(name)
        d = models.path(name)
        cfg = json.loads((d / "config.json").read_text())
        training = json.loads((d / "training.json").read_text()) if (d / "training.json").is_file() else {}
        body = f"""# {name}

{CARD_TEXT[name]}

- Architecture: `{info.architecture}` (hidden {cfg["hidden_size"]}, {cfg["num_hidden_layers"]} layers,
  {cfg["num_attention_heads"]} heads, {cfg["num_key_value_heads"]} KV heads, intermediate
  {cfg["intermediate_size"]}, context {cfg["max_position_embeddings"]}), {info.params:,} parameters, float32.
- Tokenizer: the project's character-level tokenizer with a chat template
  (`<s><|user|>question\\n<|assistant|>answer</s>`).
- Training: `python -m archon.models.training` (fixed seeds); this model took
  {training.get("seconds", "?")} s on 2 CPU cores. Settings: `training.json`.
- Recommended sampling temperature for the LMs: {RECOMMENDED_TEMPERATURE} (top-p 1, top-k off).

## Measured figures

Reproduced by `python benchmarks/embedded_models.py --write-cards` on {r["machine"]}:
{r["problems"]} arith dev problems, {r["samples"]} samples per problem at temperature {r["temperature"]};
verifiers scored on those tiny-l samples; a copy-error set of {r["copy error set"]} solutions.

| figure | measured | target | met |
|---|---|---|---|
{figures}

tiny-l: greedy {r["tiny-l"]["greedy"]:.3f}, pass@1 by number of steps {r["tiny-l pass@1 by steps"]};
tiny-s: greedy {r["tiny-s"]["greedy"]:.3f}, pass@1 {r["tiny-s"]["pass@1"]:.3f};
facts greedy accuracy (tiny-s): gold doc {r["facts"]["tiny-s"]["gold doc"]:.3f},
no doc {r["facts"]["tiny-s"]["no doc"]:.3f}.

facts greedy accuracy of tiny-l with the gold document, by asked attribute:
{r["facts"]["tiny-l"]["gold doc by attribute"]}.
{_verifier_table(r, name)}{_shortfalls(t)}{_earlier(name)}
## Limitations

Trained for minutes on synthetic data: it knows nothing outside the arith and facts worlds.
"""
        (d / "README.md").write_text(body)


def _verifier_table(r: dict, name: str) -> str:
    if name not in r["verifiers"]:
        return ""
    v = r["verifiers"][name]
    rows = "\n".join(f"| {k} | {x:.3f} |" for k, x in v.items() if isinstance(x, float))
    copies = ", ".join(f"{k} {x:.3f}" for k, x in v["copy errors"].items())
    base = r["tiny-l"]
    ns = [k for k in NS if f"majority@{k}" in base]
    policy = ", ".join(
        f"majority@{k} {base[f'majority@{k}']:.3f}, coverage@{k} {base[f'coverage@{k}']:.3f}" for k in ns
    )
    return (
        f"\n## As a verifier of tiny-l's samples\n\n| figure | value |\n|---|---|\n{rows}\n\n"
        f"tiny-l itself: greedy {base['greedy']:.3f}, pass@1 {base['pass@1']:.3f}, {policy}.\n"
        f"Copy errors (a step whose operand or operator was copied wrong, its arithmetic right) scored below "
        f"the reference solution: {copies}.\n"
    )


def _earlier(name: str) -> str:
    return f"\n## Earlier version\n\n{EARLIER[name]}\n" if name in EARLIER else ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _by_difficulty(problems: list, samples: list[list[str]]) -> dict[str, float]:
    """tiny-l's pass@1 by number of steps."""
    groups: dict[int, list[float]] = {}
    for p, outs in zip(problems, samples, strict=True):
        c = sum(final_answer(s) == p.answer for s in outs) / len(outs)
        groups.setdefault(p.metadata["steps"], []).append(c)
    return {str(k): round(sum(v) / len(v), 3) for k, v in sorted(groups.items())}


def _targets(r: dict) -> dict[str, dict]:
    v = r["verifiers"]
    got = {
        "tiny-l pass@1": r["tiny-l"]["pass@1"],
        "tiny-l coverage@16": r["tiny-l"].get("coverage@16", float("nan")),
        "share of problems with pass@1 >= 0.8": r["tiny-l"]["share pass@1 >= 0.8"],
        "share of problems with pass@1 <= 0.2": r["tiny-l"]["share pass@1 <= 0.2"],
        "tiny-prm within-problem AUC": _within(v["tiny-prm"]),
        "tiny-orm within-problem AUC": _within(v["tiny-orm"]),
        "best-of-16 by tiny-prm - greedy": v["tiny-prm"].get("best-of-16", float("nan")) - r["tiny-l"]["greedy"],
        "weighted vote@16 by tiny-prm - majority@16": v["tiny-prm"].get("weighted vote@16", float("nan"))
        - r["tiny-l"].get("majority@16", float("nan")),
        "best-of-16 by tiny-orm - greedy": v["tiny-orm"].get("best-of-16", float("nan")) - r["tiny-l"]["greedy"],
        "tiny-prm-weak within-problem AUC": _within(v["tiny-prm-weak"]),
        "tiny-s greedy": r["tiny-s"]["greedy"],
        "tiny-s non-embedding params / tiny-l's": r["tiny-s"]["non-embedding params / tiny-l's"],
        "tiny-s entropy AUROC (greedy token differs from tiny-l's)": r["tiny-s"]["entropy AUROC"],
        "facts greedy, gold doc (tiny-l)": r["facts"]["tiny-l"]["gold doc"],
        "facts greedy, gold doc among 5 passages (tiny-l)": r["facts"]["tiny-l"]["gold among 5"],
        "facts greedy, no doc (tiny-l)": r["facts"]["tiny-l"]["no doc"],
    }
    out = {}
    for k, value in got.items():
        t = TARGETS[k]
        if " - " in t and not t.startswith((">", "<")):
            lo, hi = (float(x) for x in t.split(" - "))
            ok = lo <= value <= hi
        elif t.startswith(">="):
            ok = value >= float(t[2:])
        else:
            ok = value <= float(t[2:])
        out[k] = {"measured": round(value, 3), "target": t, "met": bool(ok)}
    return out


def _within(figures: dict) -> float:
    return next(x for k, x in figures.items() if k.startswith("within-problem AUC"))


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Embedded models on arith/facts dev ({r['problems']} problems, {r['samples']} samples, "
        f"T={r['temperature']})"
    )
    for col in ("figure", "measured", "target", "met"):
        table.add_column(col)
    for k, v in r["targets"].items():
        table.add_row(k, f"{v['measured']:.3f}", v["target"], "yes" if v["met"] else "NO")
    Console().print(table)
    print(json.dumps({k: r[k] for k in ("tiny-l", "tiny-s", "verifiers", "facts", "tiny-l pass@1 by steps")}, indent=1))


if __name__ == "__main__":
    main()
