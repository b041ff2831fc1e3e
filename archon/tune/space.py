"""The search space of a spec: every ``{tune: ...}``, walked define-by-run.

A spec's tuned values become Optuna parameters named after the node: ``answer.n``, ``answer.op``,
``rerank.enabled``; a ``by_op`` value is named with its op too (``answer.best_of_n.verifier``). The walk
goes node by node in spec order, so a choice made early decides which parameters exist later: the
parameters of an op exist only in trials that chose that op, and the parameters of an optional node only
in trials that kept it. The same walk, fed a finished trial's parameters, rebuilds its concrete spec.

Example:
    >>> from archon.spec import parse_spec
    >>> spec = parse_spec({"engines": {"m": {"model": "tiny-l"}}, "pipeline": [{"id": "a", "op": "sample",
    ...     "params": {"engine": "m", "n": {"tune": {"type": "int", "low": 1, "high": 8}}}}]})
    >>> concretize(spec, {"a.n": 4}).pipeline[0].params["n"]
    4
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from archon import plugins
from archon.core.registry import OPERATORS
from archon.spec.load import SpecError
from archon.spec.models import NodeSpec, Spec, Tunable, TuneRange

Chooser = Callable[[str, TuneRange], Any]
"""Picks the value of one search dimension, given its parameter name and range."""


def suggest(trial: optuna.Trial, spec: Spec) -> Spec:
    """The concrete spec of one trial: each tuned value suggested by ``trial`` (define-by-run)."""
    return walk(spec, lambda name, r: _suggest(trial, name, r))


def concretize(spec: Spec, params: Mapping[str, Any]) -> Spec:
    """The concrete spec for parameter values by name (a finished trial's ``params``)."""

    def pick(name: str, r: TuneRange) -> Any:
        if name not in params:
            raise SpecError(f"{name}: no value given for this tuned parameter")
        return _cast(params[name], r)

    return walk(spec, pick)


def space_names(spec: Spec) -> list[str]:
    """Every parameter name the space can produce (over all op choices and optional nodes)."""
    names: list[str] = []
    for node in spec.pipeline:
        if isinstance(node.enabled, Tunable):
            names.append(f"{node.id}.enabled")
        if isinstance(node.op, Tunable):
            names.append(f"{node.id}.op")
        for op in node.op_choices():
            names.extend(name for name in op_space(node, op) if name not in names)
    return names


def op_space(node: NodeSpec, op: str) -> dict[str, TuneRange]:
    """The tuned parameters ``node`` has in a trial that keeps it and chose ``op``, by name, in walk order.

    Example:
        >>> from archon.spec import parse_spec
        >>> s = parse_spec({"engines": {"m": {"model": "tiny-l"}}, "pipeline": [{"id": "a", "op": "sample",
        ...     "params": {"engine": "m", "n": {"tune": {"type": "int", "low": 1, "high": 8}}}}]})
        >>> list(op_space(s.pipeline[0], "sample"))
        ['a.n']
    """
    return {
        _param_name(node, op, key): value.tune
        for key, value in node.params_for(op, _fields(op)).items()
        if isinstance(value, Tunable)
    }


def cost_knobs(spec: Spec, params: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The parameters among a trial's ``params`` that its cost grows with, by node, with their exponents.

    For each node the trial keeps, the tuned integer params that its chosen operator declares in
    ``cost_growth`` (cost grows as ``param ** exponent``); nodes without such a param are left out.

    Example:
        >>> from archon.spec import parse_spec
        >>> s = parse_spec({"engines": {"m": {"model": "tiny-l"}}, "pipeline": [{"id": "a", "op": "sample",
        ...     "params": {"engine": "m", "n": {"tune": {"type": "int", "low": 1, "high": 8}}}}]})
        >>> cost_knobs(s, {"a.n": 4})
        {'a': {'a.n': 1.0}}
    """
    out: dict[str, dict[str, float]] = {}
    for node in spec.pipeline:
        enabled = params.get(f"{node.id}.enabled") if isinstance(node.enabled, Tunable) else node.enabled
        if not enabled:
            continue
        op = str(params.get(f"{node.id}.op") if isinstance(node.op, Tunable) else node.op)
        growth = OPERATORS.get(op).params.cost_growth
        knobs: dict[str, float] = {}
        for key, value in node.params_for(op, _fields(op)).items():
            name = _param_name(node, op, key)
            if key in growth and isinstance(value, Tunable) and value.tune.type == "int" and name in params:
                knobs[name] = float(growth[key])
        if knobs:
            out[node.id] = knobs
    return out


def walk(spec: Spec, choose: Chooser) -> Spec:
    """The spec with every tuned value replaced by ``choose``'s pick, optional nodes left out or kept.

    A node left out is bypassed: the nodes that read it read its inputs instead. ``by_op`` entries are
    folded into the chosen op's params, so the result has no tuned value and no ``by_op``.
    """
    kept: list[NodeSpec] = []
    bypass: dict[str, list[str]] = {}
    for node in spec.pipeline:
        if not _value(node.enabled, f"{node.id}.enabled", choose):
            bypass[node.id] = list(node.inputs)
            continue
        op = str(_value(node.op, f"{node.id}.op", choose))
        params = {
            key: _value(value, _param_name(node, op, key), choose)
            for key, value in node.params_for(op, _fields(op)).items()
        }
        kept.append(NodeSpec(id=node.id, op=op, inputs=list(node.inputs), params=params))
    for node in kept:
        node.inputs = _resolve(node.inputs, bypass)
    return spec.model_copy(update={"pipeline": kept})


def _param_name(node: NodeSpec, op: str, key: str) -> str:
    return f"{node.id}.{op}.{key}" if key in node.by_op.get(op, {}) else f"{node.id}.{key}"


def _fields(op: str) -> set[str]:
    plugins.load()
    return set(OPERATORS.get(op).params.model_fields)


def _value(value: Any, name: str, choose: Chooser) -> Any:
    return choose(name, value.tune) if isinstance(value, Tunable) else value


def _resolve(inputs: list[str], bypass: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for i in inputs:
        for j in _resolve(bypass[i], bypass) if i in bypass else [i]:
            if j not in out:
                out.append(j)
    return out


def _suggest(trial: optuna.Trial, name: str, r: TuneRange) -> Any:
    if r.type == "int":
        step = int(r.step or 1)
        return trial.suggest_int(name, int(r.low or 0), int(r.high or 0), step=step, log=r.log)
    if r.type == "float":
        return trial.suggest_float(name, float(r.low or 0.0), float(r.high or 0.0), step=r.step, log=r.log)
    if r.type == "bool":
        return trial.suggest_categorical(name, [True, False])
    return trial.suggest_categorical(name, list(r.choices or []))


def _cast(value: Any, r: TuneRange) -> Any:
    if r.type == "int":
        return int(value)
    if r.type == "float":
        return float(value)
    if r.type == "bool":
        return bool(value)
    return value
