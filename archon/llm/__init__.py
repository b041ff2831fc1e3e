"""Archon's LLM operators: ``fuse``, ``rank``, ``critique``, ``verify`` and ``unit_test_gen``.

Each asks a language model (any engine) to do a judge's or an editor's job on a problem's candidates,
through a prompt template that ships with the package (:mod:`archon.llm.templates`) and may be
replaced in the spec. The model's output is parsed strictly (:mod:`archon.llm.parsing`): output that
does not parse is never silently replaced -- it is recorded in the node's trace event (``malformed``)
and handled by the operator's explicit policy: ``retries`` re-asks (sampling at ``retry_temperature``
when the first ask was greedy), then ``on_malformed`` says what stands in for it (see each operator).

All calls of all problems batch in the engines like every other call, and are charged to the node.
"""

from archon.llm.parsing import MalformedOutput, parse_choice, parse_ranking, parse_tests
from archon.llm.templates import TEMPLATES

__all__ = ["TEMPLATES", "MalformedOutput", "parse_choice", "parse_ranking", "parse_tests"]
