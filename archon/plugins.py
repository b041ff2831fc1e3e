"""The one loader of operators and resource kinds: the built-in modules, then the plugins' entry points.

Validation, ``archon run``, ``archon tune``, ``archon ops`` and the Python API all call :func:`load`
before they look anything up in the registries, so an operator or kind is known everywhere or nowhere.
A plugin package declares entry points in the groups ``archon.operators``, ``archon.verifiers``,
``archon.engines`` and ``archon.retrievers`` (see ``docs/operators.md``)::

    [project.entry-points."archon.operators"]
    my_ops = "my_package.ops"          # a module whose import registers operators

    [project.entry-points."archon.verifiers"]
    my_kind = "my_package.kinds:build" # a builder, registered as verifier kind ``my_kind``
"""

from __future__ import annotations

import importlib
from functools import cache

from archon.core.registry import load_entry_points

BUILTIN = (
    "samplers.engines",  # engine kinds: transformers, openai, vllm
    "samplers.ops",  # generation operators: sample, best_of_n, self_consistency
    "samplers.cascade",  # the small-then-large model cascade
    "samplers.entropy_switch",  # token-level switching between a small and a large model
    "samplers.adaptive_sc",  # adaptive self-consistency
    "samplers.deepconf",  # confidence-filtered voting, offline and online
    "verifiers.kinds",  # verifier kinds
    "verifiers.ops",  # judgement operators: score, select, vote, weighted_vote
    "verifiers.rpc",  # rpc_vote: perplexity consistency with reasoning pruning
    "search.beam",  # step-level search: beam search
    "search.dvts",  # diverse verifier tree search
    "search.particles",  # particle filtering and particle Gibbs
    "search.mcts",  # Monte Carlo tree search
    "archon.retrieval.kinds",  # retriever kinds: bm25, dense, hybrid
    "archon.retrieval.ops",  # retrieve, with_context
    "archon.retrieval.drag",  # demonstrations (DRAG many-shot)
    "archon.retrieval.iterdrag",  # iterdrag (interleaved retrieval for multi-hop questions)
    "archon.llm.fuse",  # Archon's LLM operators: fuse,
    "archon.llm.rank",  # rank (listwise, pairwise),
    "archon.llm.critique",  # critique,
    "archon.llm.verify",  # verify (a generative verdict filter)
    "archon.llm.unit_test_gen",  # and unit_test_gen (generated tests run in the sandbox)
)
"""The project's own modules that register operators and kinds."""


@cache
def _builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


@cache
def _plugins() -> None:
    load_entry_points()


def load(*, refresh: bool = False) -> None:
    """Register every built-in operator and kind, then every installed plugin's.

    The installed entry points are read once per process (reading them takes milliseconds, and the
    registries are consulted often); ``refresh=True`` reads them again, for a plugin installed since.
    """
    _builtin()
    if refresh:
        _plugins.cache_clear()
    _plugins()
