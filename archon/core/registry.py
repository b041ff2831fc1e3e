"""The operator registry: operators register themselves by name with the pydantic model of their params.

The shell finds them here: the spec validator checks a node's ``op`` and ``params`` against the entry,
and the runtime calls the entry's function once per problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from archon.core.errors import ArchonError


class UnknownOperatorError(ArchonError, LookupError):
    """No operator is registered under a name; the message suggests the closest one."""


@dataclass(frozen=True, slots=True)
class Operator:
    """A registered operator: its name, its params model, its per-problem coroutine function and summary."""

    name: str
    params: type[BaseModel]
    fn: Callable[..., Any]
    summary: str = ""


class Registry:
    """Operators by name.

    Example:
        >>> from pydantic import BaseModel
        >>> reg = Registry()
        >>> class P(BaseModel):
        ...     n: int = 1
        >>> @reg.register("twice", P)
        ... async def twice(ctx, state, params):
        ...     return state
        >>> reg.get("twice").params(n=3).n
        3
        >>> reg.get("twise")
        Traceback (most recent call last):
        ...
        archon.core.registry.UnknownOperatorError: unknown op 'twise'; did you mean 'twice'?
    """

    def __init__(self) -> None:
        self._ops: dict[str, Operator] = {}

    def register(self, name: str, params: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``fn`` as operator ``name`` taking ``params``."""

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._ops and self._ops[name].fn is not fn:
                raise ValueError(f"operator {name!r} is registered twice")
            summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            self._ops[name] = Operator(name, params, fn, summary)
            return fn

        return wrap

    def get(self, name: str) -> Operator:
        """The operator called ``name``."""
        if name not in self._ops:
            close = difflib.get_close_matches(name, list(self._ops), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(self._ops))}"
            raise UnknownOperatorError(f"unknown op {name!r}{hint}")
        return self._ops[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._ops)

    def __contains__(self, name: object) -> bool:
        return name in self._ops


OPERATORS = Registry()
"""The project's registry: operator modules register into it when imported."""
