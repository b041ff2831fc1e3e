"""The startup design of a study: a few trials that try every categorical choice before the sampler takes over.

A model-based sampler learns only from what it has seen, so a strong choice that no early trial drew (a
verifier of ``best_of_n``, say) is easily never tried in a short study. :func:`cover` gives trials in
which every choice of every ``choice`` and ``bool`` parameter appears at least once, conditional ones
included: each choice of ``answer.best_of_n.verifier`` in a trial that chose ``best_of_n``, each choice
of an optional node's parameters in a trial that kept it, and ``enabled: false`` once.

The design is built node by node (the parameters of one node never depend on another's choices). A node
gets one row per op choice, more for an op whose own categorical parameters have more choices, more
again when a parameter several ops share has more choices than those ops have rows, and one row that
leaves an optional node out. Choices are dealt in turn, in an order the seed shuffles, so every one
comes up; the rows are shuffled too, and trial ``k`` joins row ``k`` of every node (a shorter node's rows
come round again). So the design has as many trials as its longest node needs: for ``answer.op`` of
three ops, one of which has a three-way verifier, five.

Numeric parameters take the middle of their range (on a log range, the geometric middle; on a grid, the
nearest grid point): the choices are compared at one moderate setting rather than at random draws that
would confound them (best-of-n at temperature 0 looks like greedy decoding), and the sampler explores
the numbers afterwards.

Example:
    >>> from archon.spec import parse_spec
    >>> spec = parse_spec({"engines": {"m": {"model": "tiny-l"}}, "verifiers": {"v": {"kind": "arith_steps"}},
    ...     "pipeline": [{"id": "a", "op": {"tune": {"type": "choice", "choices": ["best_of_n", "sample"]}},
    ...     "params": {"engine": "m", "n": {"tune": {"type": "int", "low": 1, "high": 9}}, "verifier": "v"}}]})
    >>> sorted((t["a.op"], t["a.n"]) for t in cover(spec, seed=0))
    [('best_of_n', 5), ('sample', 5)]
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from archon.spec.models import NodeSpec, Spec, Tunable, TuneRange
from archon.tune.space import op_space, walk

STARTUPS = ("cover", "none")
"""The startup designs a study may begin with: ``cover`` (every categorical choice) or ``none``."""


def cover(spec: Spec, *, seed: int = 0) -> list[dict[str, Any]]:
    """The parameters of startup trials in which every categorical choice of ``spec``'s space appears.

    Each trial holds exactly the parameters the define-by-run walk asks for (what ``enqueue_trial``
    needs); numeric ones at the middle of their range. The same spec and seed give the same design; a
    space without ``choice`` or ``bool`` parameters gives none.
    """
    rng = random.Random(seed)
    plans = [rows for rows in (_node_rows(node, rng) for node in spec.pipeline) if rows]
    size = max((len(rows) for rows in plans), default=0)
    trials: list[dict[str, Any]] = []
    for k in range(size):
        planned: dict[str, Any] = {}
        for rows in plans:
            planned.update(rows[k % len(rows)])
        trial = _realize(spec, planned)
        if trial not in trials:
            trials.append(trial)
    return trials


def middle(r: TuneRange) -> Any:
    """The middle of a numeric range (geometric on a log scale), on its grid; the first of a choice's choices.

    Example:
        >>> middle(TuneRange(type="int", low=1, high=32, log=True))
        6
        >>> middle(TuneRange(type="float", low=0.0, high=1.0, step=0.25))
        0.5
    """
    if r.type in ("choice", "bool"):
        return _choices(r)[0]
    low, high = float(r.low or 0.0), float(r.high or 0.0)
    mid = math.sqrt(low * high) if r.log else (low + high) / 2
    step = r.step if r.step is not None else (1 if r.type == "int" else None)
    if step:
        top = math.floor((high - low) / step + 1e-9)  # the highest grid point within the range
        mid = low + min(top, max(0, round((mid - low) / step))) * step
    return round(mid) if r.type == "int" else float(mid)


def _node_rows(node: NodeSpec, rng: random.Random) -> list[dict[str, Any]]:
    """One node's planned categorical values per row (rows that keep it, and one that leaves it out)."""
    ops: Sequence[Any] = (node.op.tune.choices or []) if isinstance(node.op, Tunable) else [node.op]
    spaces = {op: {n: r for n, r in op_space(node, str(op)).items() if r.type in ("choice", "bool")} for op in ops}
    optional = isinstance(node.enabled, Tunable)
    if not optional and not isinstance(node.op, Tunable) and not any(spaces.values()):
        return []
    gates: dict[str, list[Any]] = {}  # a categorical parameter -> the ops that have it
    ranges: dict[str, TuneRange] = {}
    for op in ops:
        for name, r in spaces[op].items():
            gates.setdefault(name, []).append(op)
            ranges[name] = r
    per_op = {op: 1 for op in ops}
    for name in sorted(gates, key=lambda n: len(gates[n])):  # an op's own parameters first; stable
        while sum(per_op[op] for op in gates[name]) < len(_choices(ranges[name])):
            per_op[min(gates[name], key=lambda op: per_op[op])] += 1
    order = {name: rng.sample(_choices(r), len(_choices(r))) for name, r in ranges.items()}
    dealt = dict.fromkeys(ranges, 0)
    rows: list[dict[str, Any]] = []
    for op in ops:
        for _ in range(per_op[op]):
            row: dict[str, Any] = {f"{node.id}.enabled": True} if optional else {}
            if isinstance(node.op, Tunable):
                row[f"{node.id}.op"] = op
            for name in spaces[op]:
                row[name] = order[name][dealt[name] % len(order[name])]
                dealt[name] += 1
            rows.append(row)
    if optional:
        rows.append({f"{node.id}.enabled": False})
    rng.shuffle(rows)
    return rows


def _realize(spec: Spec, planned: dict[str, Any]) -> dict[str, Any]:
    """The parameters the walk asks for, taking ``planned`` values and the middle of the others."""
    chosen: dict[str, Any] = {}

    def pick(name: str, r: TuneRange) -> Any:
        chosen[name] = planned[name] if name in planned else middle(r)
        return chosen[name]

    walk(spec, pick)
    return chosen


def _choices(r: TuneRange) -> list[Any]:
    return [True, False] if r.type == "bool" else list(r.choices or [])
