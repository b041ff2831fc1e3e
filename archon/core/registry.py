"""The registries: operators by name, and builders of resources (verifiers, engines, retrievers) by kind.

Operators register themselves with the :class:`~archon.core.operators.OperatorParams` model of their
params; the spec validator checks a node's ``op`` and ``params`` against the entry, and the runtime calls
the entry's coroutine once per problem. Resource kinds register a builder the same way, so the shell
has one rule for every kind: the spec's ``kind`` names a registered builder.

Plugins outside this repository add entries through entry-point groups (:data:`ENTRY_POINT_GROUPS`),
loaded by :func:`load_entry_points`: an entry point that names a module registers by being imported; one
that names a builder is registered under the entry point's name, in its group's kind registry.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from archon.core.errors import ArchonError
from archon.core.operators import OperatorParams

F = TypeVar("F", bound=Callable[..., Any])


class UnknownOperatorError(ArchonError, LookupError):
    """No operator (or resource kind) is registered under a name; the message suggests the closest one."""


class PluginError(ArchonError, ImportError):
    """A plugin's entry point could not be loaded; the message names the entry point and the cause."""


@dataclass(frozen=True, slots=True)
class Operator:
    """A registered operator: its name, its params model, its per-problem coroutine function and summary."""

    name: str
    params: type[OperatorParams]
    fn: Callable[..., Any]
    summary: str = ""
    module: str = ""


Need = Literal["none", "optional", "required"]
"""Whether a resource kind takes a ``model`` (or an ``engine``): never, may, must."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A registered resource kind: its name, its builder, a one-line summary, what it takes."""

    name: str
    build: Callable[..., Any]
    summary: str = ""
    module: str = ""
    check: Callable[[dict[str, Any]], None] | None = None
    """Validates a declaration's ``options`` without building anything (raises ``ValueError``)."""
    model: Need = "optional"
    engine: Need = "optional"
    corpus: Need = "optional"
    """Whether a declaration takes a ``corpus`` (retrievers)."""


def accepts(*names: str, values: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], None]:
    """An options ``check`` that refuses any option not in ``names``, then runs ``values`` (if any).

    Its error names the option as a path below the declaration (``@options.NAME: ...``), which spec
    errors join onto the declaration's path.

    Example:
        >>> check = accepts("delimiter")
        >>> check({"delimiter": ";"})
        >>> check({"delimeter": ";"})
        Traceback (most recent call last):
        ...
        ValueError: @options.delimeter: unknown option; did you mean 'delimiter'?
    """

    def check(options: dict[str, Any]) -> None:
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"options are {', '.join(names) or 'none'}"
                raise ValueError(f"@options.{key}: unknown option; {hint}")
        if values is not None:
            values(options)

    return check


def _summary(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _unknown(what: str, name: str, known: list[str]) -> UnknownOperatorError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known)) or 'none'}"
    return UnknownOperatorError(f"unknown {what} {name!r}{hint}")


class Registry:
    """Operators by name.

    Example:
        >>> reg = Registry()
        >>> class P(OperatorParams):
        ...     n: int = 1
        >>> @reg.register("twice", P)
        ... async def twice(ctx, state, params):
        ...     '''Return the state as it is.'''
        ...     return state
        >>> reg.get("twice").params(n=3).n, reg.get("twice").summary
        (3, 'Return the state as it is.')
        >>> reg.get("twise")
        Traceback (most recent call last):
        ...
        archon.core.registry.UnknownOperatorError: unknown op 'twise'; did you mean 'twice'?
    """

    def __init__(self) -> None:
        self._ops: dict[str, Operator] = {}

    def register(self, name: str, params: type[OperatorParams]) -> Callable[[F], F]:
        """Decorator: register ``fn`` as operator ``name`` taking ``params`` (an ``OperatorParams``)."""
        if not (isinstance(params, type) and issubclass(params, OperatorParams)):
            raise TypeError(f"operator {name!r}: params must be an archon.core.OperatorParams subclass")

        def wrap(fn: F) -> F:
            if name in self._ops and self._ops[name].fn is not fn:
                raise ValueError(f"operator {name!r} is registered twice")
            self._ops[name] = Operator(name, params, fn, _summary(fn), getattr(fn, "__module__", ""))
            return fn

        return wrap

    def get(self, name: str) -> Operator:
        """The operator called ``name``."""
        if name not in self._ops:
            raise _unknown("op", name, list(self._ops))
        return self._ops[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._ops)

    def __contains__(self, name: object) -> bool:
        return name in self._ops


B = TypeVar("B", bound=Callable[..., Any])


class Kinds(Generic[B]):
    """Builders of one resource (verifiers, engines or retrievers) by ``kind``.

    Example:
        >>> kinds: Kinds = Kinds("verifier")
        >>> @kinds.register("always_one")
        ... def build(decl):
        ...     '''Scores 1 for everything.'''
        ...     return "built"
        >>> kinds.get("always_one").build(None), kinds.names()
        ('built', ['always_one'])
        >>> kinds.get("always")
        Traceback (most recent call last):
        ...
        archon.core.registry.UnknownOperatorError: unknown verifier kind 'always'; did you mean 'always_one'?
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._kinds: dict[str, Kind] = {}

    def register(
        self,
        kind: str,
        *,
        check: Callable[[dict[str, Any]], None] | None = None,
        model: Need = "optional",
        engine: Need = "optional",
        corpus: Need = "optional",
    ) -> Callable[[B], B]:
        """Decorator: register ``build`` as the builder of ``kind``.

        ``check`` validates a declaration's options (see :func:`accepts`); ``model``, ``engine`` and
        ``corpus`` say whether a declaration of this kind takes a model, an engine or a corpus, so that
        spec validation can refuse one that is missing or out of place.
        """

        def wrap(build: B) -> B:
            self.add(kind, build, check=check, model=model, engine=engine, corpus=corpus)
            return build

        return wrap

    def add(
        self,
        kind: str,
        build: Callable[..., Any],
        *,
        check: Callable[[dict[str, Any]], None] | None = None,
        model: Need = "optional",
        engine: Need = "optional",
        corpus: Need = "optional",
    ) -> None:
        """Register ``build`` under ``kind`` (the same builder twice is fine; another one is an error)."""
        if kind in self._kinds and self._kinds[kind].build is not build:
            raise ValueError(f"{self.what} kind {kind!r} is registered twice")
        module = getattr(build, "__module__", "")
        self._kinds[kind] = Kind(kind, build, _summary(build), module, check, model, engine, corpus)

    def get(self, kind: str) -> Kind:
        """The kind called ``kind``."""
        if kind not in self._kinds:
            raise _unknown(f"{self.what} kind", kind, list(self._kinds))
        return self._kinds[kind]

    def names(self) -> list[str]:
        """The registered kinds, sorted."""
        return sorted(self._kinds)

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds


OPERATORS = Registry()
"""The project's operators: operator modules register into it when imported."""
VERIFIER_KINDS: Kinds[Callable[..., Any]] = Kinds("verifier")
"""Verifier builders by kind: ``build(decl: VerifierDecl) -> OutcomeVerifier | ProcessVerifier``."""
ENGINE_KINDS: Kinds[Callable[..., Any]] = Kinds("engine")
"""Engine builders by kind: ``build(config: samplers.EngineConfig) -> Engine``."""
RETRIEVER_KINDS: Kinds[Callable[..., Any]] = Kinds("retriever")
"""Retriever builders by kind: ``build(decl: archon.retrieval.RetrieverDecl) -> Retriever``."""

ENTRY_POINT_GROUPS: dict[str, Registry | Kinds[Any]] = {
    "archon.operators": OPERATORS,
    "archon.verifiers": VERIFIER_KINDS,
    "archon.engines": ENGINE_KINDS,
    "archon.retrievers": RETRIEVER_KINDS,
}
"""The entry-point groups a plugin package may declare, and the registry each one fills."""

_loaded: set[tuple[str, str, str]] = set()


def load_entry_points(groups: tuple[str, ...] = tuple(ENTRY_POINT_GROUPS)) -> list[str]:
    """Load every installed plugin entry point of ``groups`` (once each); returns the ones loaded now.

    An entry point naming a module (``pkg.ops``) registers by being imported. One naming an object is,
    in a kind group, registered as the builder of the kind named by the entry point; in
    ``archon.operators`` it must be a registered operator's function. A plugin that fails to load raises
    :class:`PluginError` naming it.
    """
    loaded: list[str] = []
    for group in groups:
        target = ENTRY_POINT_GROUPS[group]
        for ep in importlib.metadata.entry_points(group=group):
            key = (group, ep.name, ep.value)
            if key in _loaded:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin: say which one, in one line
                raise PluginError(f"plugin entry point {ep.name} = {ep.value} ({group}): {exc}") from exc
            if isinstance(target, Kinds) and not isinstance(obj, types.ModuleType):
                target.add(ep.name, obj)
            _loaded.add(key)
            loaded.append(f"{group}:{ep.name}")
    return loaded
