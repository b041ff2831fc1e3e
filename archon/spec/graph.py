"""The pipeline as a networkx DiGraph, validated before anything runs.

A node without ``inputs`` reads the problem itself. Validation reports every problem it finds, one line
each, naming the spec path: a cycle (with its nodes), unknown inputs (with the closest node id), not
exactly one output node, nodes whose results never reach the output, and references to engines,
verifiers or retrievers that the spec does not declare. References are found by the types of the
operator's params (:data:`~archon.core.EngineRef`, :data:`~archon.core.VerifierRef`,
:data:`~archon.core.RetrieverRef`), whatever a parameter is called, in nested models and lists too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import networkx as nx
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from archon import plugins
from archon.core.operators import references
from archon.core.registry import OPERATORS, UnknownOperatorError
from archon.spec.load import SpecError, spec_path
from archon.spec.models import NodeSpec, Spec, Tunable


def build_graph(spec: Spec) -> nx.DiGraph:
    """The DAG of ``spec`` (nodes carry their :class:`~archon.spec.models.NodeSpec` as ``node``)."""
    g = nx.DiGraph()
    for i, node in enumerate(spec.pipeline):
        g.add_node(node.id, node=node, index=i)
    for node in spec.pipeline:
        for src in node.inputs:
            if src in g:
                g.add_edge(src, node.id)
    return g


def problems(spec: Spec) -> list[str]:
    """Everything wrong with the pipeline's structure and references, one line each (empty: valid)."""
    plugins.load()
    g = build_graph(spec)
    out: list[str] = []
    ids = [n.id for n in spec.pipeline]
    for i, node in enumerate(spec.pipeline):
        for j, src in enumerate(node.inputs):
            if src not in g:
                close = difflib.get_close_matches(src, ids, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; nodes are {', '.join(ids)}"
                out.append(f"pipeline[{i}].inputs[{j}]: no node {src!r}{hint}")
            elif src == node.id:
                out.append(f"pipeline[{i}].inputs[{j}]: node {node.id!r} reads its own output")
            elif src in node.inputs[:j]:
                out.append(f"pipeline[{i}].inputs[{j}]: node {src!r} is listed twice")
        out.extend(dict.fromkeys(_reference_problems(spec, i, node)))
        out.extend(_op_problems(i, node))
    for name, v in spec.verifiers.items():
        if v.engine is not None and v.engine not in spec.engines:
            out.append(f"verifiers.{name}.engine: no engine {v.engine!r}{_declared(spec.engines)}")
    out.extend(_resource_problems(spec))
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        out.append(f"pipeline: cycle {path}")
        return out
    if any(src not in g for node in spec.pipeline for src in node.inputs):
        return out  # with an edge missing, which node is the output is not known: say only what is wrong
    outputs = [n for n in g if g.out_degree(n) == 0]
    if len(outputs) != 1:
        out.append(f"pipeline: exactly one node must be the output (read by no other), found {', '.join(outputs)}")
        return out
    final = outputs[0]
    if g.nodes[final]["node"].enabled is not True:
        out.append(f"pipeline[{g.nodes[final]['index']}].enabled: the output node cannot be left out")
    feeding = nx.ancestors(g, final) | {final}
    for n in g:
        if n not in feeding:
            out.append(f"pipeline[{g.nodes[n]['index']}]: node {n!r} never reaches the output {final!r}")
    return out


def compile_pipeline(spec: Spec) -> nx.DiGraph:
    """The validated DAG; raises :class:`~archon.spec.load.SpecError` listing every problem."""
    found = problems(spec)
    if found:
        raise SpecError("; ".join(found))
    return build_graph(spec)


def output_node(graph: nx.DiGraph) -> str:
    """The id of the pipeline's output node."""
    return next(n for n in graph if graph.out_degree(n) == 0)


def _op_problems(i: int, node: NodeSpec) -> list[str]:
    """An unknown op (with the closest name), or params its operator rejects (tuned params aside).

    With a tuned op, each choice is checked with the params it accepts; a param no choice accepts, and a
    ``by_op`` entry for an op that is not a choice, are errors.
    """
    out = []
    tuned_op = isinstance(node.op, Tunable)
    for op in node.by_op:
        if op not in node.op_choices():
            out.append(f"pipeline[{i}].by_op.{op}: not one of this node's ops ({', '.join(node.op_choices())})")
    accepted_any: set[str] = set()
    for name in node.op_choices():
        try:
            op = OPERATORS.get(name)
        except UnknownOperatorError as exc:
            out.append(f"pipeline[{i}].op: {exc}")
            continue
        fields = set(op.params.model_fields)
        accepted_any |= fields
        params = node.params_for(name, fields)
        fixed = {k: v for k, v in params.items() if not isinstance(v, Tunable)}
        for key, value in params.items():
            if isinstance(value, Tunable) and key in op.params.model_fields:
                where = "params" if key not in node.by_op.get(name, {}) else f"by_op.{name}"
                for sub, message in _tuned_value_problems(op.params.model_fields[key], value):
                    out.append(f"pipeline[{i}].{where}.{key}.tune{sub}: {message}")
        try:
            op.params(**fixed)
        except ValidationError as exc:
            for err in exc.errors():
                key = err["loc"][0] if err["loc"] else None
                if key is not None and isinstance(params.get(str(key)), Tunable):
                    continue
                where = "params" if key not in node.by_op.get(name, {}) else f"by_op.{name}"
                msg = str(err["msg"]).removeprefix("Value error, ")
                if not err["loc"]:  # a check of several params together: the node's params as a whole
                    out.append(f"pipeline[{i}].{where}: {msg}")
                    continue
                out.append(f"pipeline[{i}].{where}.{spec_path(tuple(err['loc']))}: {msg}")
    if tuned_op and accepted_any:
        for k in node.params:
            if k not in accepted_any:
                out.append(f"pipeline[{i}].params.{k}: none of the ops {', '.join(node.op_choices())} takes it")
    return out


def _tuned_value_problems(field: FieldInfo, value: Tunable) -> Iterable[tuple[str, str]]:
    """The values a tuned param may take (its choices; its range's ends) that the param itself refuses."""
    r = value.tune
    if r.type == "choice":
        candidates = [(f".choices[{j}]", c) for j, c in enumerate(r.choices or [])]
    elif r.type in ("int", "float"):
        cast = int if r.type == "int" else float
        candidates = [(".low", cast(r.low)), (".high", cast(r.high))]
    else:
        candidates = [("", False), ("", True)]
    adapter = TypeAdapter(Annotated[field.annotation, field])
    for sub, candidate in candidates:
        try:
            adapter.validate_python(candidate)
        except ValidationError as exc:
            yield sub, exc.errors()[0]["msg"]
            return


def _resource_problems(spec: Spec) -> Iterable[str]:
    """What can be checked of the data set and the models without loading anything."""
    from archon import data
    from archon.core.errors import ModelNotFoundError
    from archon.core.models import resolve_model

    if spec.dataset is not None:
        name, split = spec.dataset.name, spec.dataset.split
        known = {**data.EMBEDDED, **data.PACKAGED}
        if name in known:
            if split not in known[name]:
                yield f"dataset.split: {name!r} has no split {split!r}; splits: {', '.join(known[name])}"
        elif not Path(name).expanduser().is_file():
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; data sets: {', '.join(known)}"
            yield f"dataset.name: no data set or file named {name!r}{hint}"
    models = [(f"engines.{n}.model", e.model) for n, e in spec.engines.items() if e.kind in ("transformers", "vllm")]
    models += [
        (f"verifiers.{n}.model", v.model or "tiny-prm") for n, v in spec.verifiers.items() if v.kind == "reward_model"
    ]
    for where, model in models:
        try:
            resolved = resolve_model(model, check_hub=True)
        except ModelNotFoundError as exc:
            yield f"{where}: {exc}"
            continue
        name = where.split(".")[1]
        if where.startswith("verifiers.") and "config" not in spec.verifiers[name].options:
            local = Path(resolved)
            if local.is_dir() and not (local / "reward_config.json").is_file():
                yield (
                    f"{where}: {model!r} is not a reward model (no reward_config.json; "
                    "give options.config: {kind: process | outcome, ...} to read it as one)"
                )


def _declared(section: dict[str, Any]) -> str:
    return f" (declared: {', '.join(section)})" if section else " (none declared)"


def _reference_problems(spec: Spec, i: int, node: NodeSpec) -> Iterable[str]:
    """Resource names in the node's params (for every op it may run) that the spec does not declare."""
    for op_name in node.op_choices():
        if op_name not in OPERATORS:
            continue  # reported as an unknown op
        model = OPERATORS.get(op_name).params
        params = node.params_for(op_name, set(model.model_fields))
        for ref in references(model, params, expand=_choices):
            section = getattr(spec, ref.section)
            if ref.name in section:
                continue
            key = str(ref.path[0])
            where = f"by_op.{op_name}" if key in node.by_op.get(op_name, {}) else "params"
            close = difflib.get_close_matches(ref.name, list(section), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else _declared(section)
            yield f"pipeline[{i}].{where}.{spec_path(ref.path)}: no {ref.section[:-1]} {ref.name!r}{hint}"


def _choices(value: Any) -> list[Any]:
    """The values a param may take: a tuned value's choices, or the value itself."""
    if isinstance(value, Tunable):
        return list(value.tune.choices or [])
    return [value]
