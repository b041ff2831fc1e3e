#!/bin/bash
# Do two revisions give the same results? Runs the example specs (60 arith dev problems each) and a
# fixed-seed tuning study (10 trials) with the code of REV and of the working tree, then compares every
# problem's candidates and FLOPs and every trial's parameters and values.
#   benchmarks/same_results.sh REV [OUT]     (run from the repository root; about 20 minutes on 2 cores)
set -euo pipefail
REV=$1; OUT=${2:-benchmarks/results/tmp/same_results}; ROOT=$(pwd)
rm -rf "$OUT"; mkdir -p "$OUT"
git worktree add -f "$OUT/base" "$REV" >/dev/null
run() {  # $1: code directory, $2: output directory
  mkdir -p "$2"
  for s in greedy best_of_n self_consistency ensemble; do
    (cd "$1" && PYTHONPATH="$1" python -m archon run "examples/$s.yaml" --limit 60 --out "$2/run-$s" --json > "$2/$s.json")
  done
  (cd "$1" && PYTHONPATH="$1" python -m archon tune examples/tune_arith.yaml --budget-flops 1e9 --trials 10 \
     --minibatch 40 --limit 80 --seed 3 --out "$2/study" --json > "$2/tune.json" 2>/dev/null) || true
}
run "$ROOT/$OUT/base" "$ROOT/$OUT/before"
run "$ROOT" "$ROOT/$OUT/after"
git worktree remove --force "$OUT/base"
python - "$OUT" <<'PY'
import json, sys
import optuna
out = sys.argv[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)
same = True
for s in ["greedy", "best_of_n", "self_consistency", "ensemble"]:
    recs = {}
    for side in ("before", "after"):
        with open(f"{out}/{side}/run-{s}/results.jsonl") as f:
            recs[side] = {r["id"]: ([c["text"] for c in r["candidates"]], r["cost"]["flops"]) for r in map(json.loads, f)}
    a, b = (json.load(open(f"{out}/{side}/{s}.json")) for side in ("before", "after"))
    ok = recs["before"] == recs["after"]
    same &= ok
    print(f"{s:17s} accuracy {a['accuracy']:.3f} -> {b['accuracy']:.3f}  FLOPs/problem {a['per_problem']['flops']:.4g} -> "
          f"{b['per_problem']['flops']:.4g}  every problem's candidates and FLOPs equal: {ok}")
trials = []
for side in ("before", "after"):
    st = optuna.load_study(study_name="tune_arith", storage=f"sqlite:///{out}/{side}/study/optuna.db")
    trials.append([(t.params, t.values) for t in st.trials])
print(f"study: {len(trials[0])} trials; parameters and values equal: {trials[0] == trials[1]}")
sys.exit(0 if same and trials[0] == trials[1] else 1)
PY
