"""The operator kit: the base of every operator's params, typed resource references, declared cost growth.

An operator is one coroutine for one problem and one params model. The params model derives from
:class:`OperatorParams`; a parameter that names a declared resource is typed with :data:`EngineRef`,
:data:`VerifierRef` or :data:`RetrieverRef`, whatever it is called, so spec validation finds it (in
nested models and lists too, :func:`references`); and ``cost_growth`` says how the operator's cost grows
with its knobs, so that the tuner's budget repair scales them right (:func:`repair_factors`).

Example:
    >>> class Beam(OperatorParams):
    ...     cost_growth: ClassVar[Mapping[str, float]] = {"beams": 1.0, "width": 1.0}
    ...     policy: EngineRef
    ...     prm: VerifierRef
    ...     beams: int = 4
    ...     width: int = 2
    >>> [(r.path, r.section, r.name) for r in references(Beam, {"policy": "m", "prm": "p", "beams": 8})]
    [(('policy',), 'engines', 'm'), (('prm',), 'verifiers', 'p')]
    >>> {k: round(v, 3) for k, v in repair_factors(Beam.cost_growth, ["beams", "width"], 0.25).items()}
    {'beams': 0.5, 'width': 0.5}
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

Section = Literal["engines", "verifiers", "retrievers"]


@dataclass(frozen=True, slots=True)
class Ref:
    """Marks a ``str`` parameter as the name of a resource declared in a spec section."""

    section: Section

    @property
    def kind(self) -> str:
        """The resource's singular name (``engine``, ``verifier``, ``retriever``)."""
        return self.section[:-1]


EngineRef = Annotated[str, Ref("engines")]
"""A parameter naming an engine declared in the spec's ``engines`` section."""
VerifierRef = Annotated[str, Ref("verifiers")]
"""A parameter naming a verifier declared in the spec's ``verifiers`` section."""
RetrieverRef = Annotated[str, Ref("retrievers")]
"""A parameter naming a retriever declared in the spec's ``retrievers`` section."""


class OperatorParams(BaseModel):
    """The base of every operator's params: unknown keys are refused; cost knobs are declared.

    ``cost_growth`` maps each integer param the operator's cost grows with to its exponent: cost grows
    as the product of ``param ** exponent`` (``{"n": 1}`` for sampling, ``{"beams": 1, "width": 1}``
    for a search whose cost is ``beams * width``). Params not listed are left alone by budget repair.
    """

    model_config = ConfigDict(extra="forbid")

    cost_growth: ClassVar[Mapping[str, float]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, exponent in cls.cost_growth.items():
            if name not in cls.model_fields:
                raise TypeError(f"{cls.__name__}.cost_growth: {name!r} is not one of its params")
            if not exponent > 0:
                raise TypeError(f"{cls.__name__}.cost_growth[{name!r}]: the exponent must be > 0, got {exponent}")


@dataclass(frozen=True, slots=True)
class Reference:
    """One resource name found in params: where (a path of keys and indices), which section, which name."""

    path: tuple[str | int, ...]
    section: Section
    name: str


def references(
    params: type[BaseModel], values: Mapping[str, Any], *, expand: Callable[[Any], Sequence[Any]] | None = None
) -> list[Reference]:
    """Every resource name in ``values`` (raw params of ``params``), found by the fields' reference types.

    ``expand`` turns a value into the values it stands for (the spec layer gives a tuned value's
    choices); by default a value stands for itself. Values of the wrong shape are skipped: checking
    them is the params model's job.
    """
    return list(_walk_model(params, values, (), expand or (lambda v: [v])))


def _walk_model(
    model: type[BaseModel], values: Any, path: tuple[str | int, ...], expand: Callable[[Any], Sequence[Any]]
) -> Iterator[Reference]:
    if not isinstance(values, Mapping):
        return
    for name, field in model.model_fields.items():
        if name not in values:
            continue
        ref = next((m for m in field.metadata if isinstance(m, Ref)), None)
        for value in expand(values[name]):
            if ref is not None:
                if isinstance(value, str):
                    yield Reference((*path, name), ref.section, value)
            else:
                yield from _walk(field.annotation, value, (*path, name), expand)


def _walk(
    annotation: Any, value: Any, path: tuple[str | int, ...], expand: Callable[[Any], Sequence[Any]]
) -> Iterator[Reference]:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *meta = get_args(annotation)
        ref = next((m for m in meta if isinstance(m, Ref)), None)
        if ref is not None:
            if isinstance(value, str):
                yield Reference(path, ref.section, value)
            return
        yield from _walk(base, value, path, expand)
    elif origin in (Union, types.UnionType):
        for arm in get_args(annotation):
            found = list(_walk(arm, value, path, expand))
            if found:
                yield from found
                return
    elif origin in (list, tuple, set, frozenset, Sequence) and isinstance(value, list | tuple):
        args = get_args(annotation)
        for i, item in enumerate(value):
            arm = args[min(i, len(args) - 1)] if origin is tuple and args and args[-1] is not Ellipsis else args[0]
            for v in expand(item):
                yield from _walk(arm, v, (*path, i), expand)
    elif origin in (dict, Mapping) and isinstance(value, Mapping):
        arm = get_args(annotation)[1]
        for key, item in value.items():
            for v in expand(item):
                yield from _walk(arm, v, (*path, key), expand)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _walk_model(annotation, value, path, expand)


def repair_factors(growth: Mapping[str, float], knobs: Iterable[str], ratio: float) -> dict[str, float]:
    """How much to scale each tuned cost knob of one operator so that its cost scales by ``ratio``.

    Cost grows as the product of ``knob ** growth[knob]``; scaling every tuned knob by the same factor
    ``f`` scales the cost by ``f ** E`` (``E`` the sum of their exponents), so ``f = ratio ** (1 / E)``:
    ``n * width`` is scaled by the square root of ``ratio``. Knobs without declared growth are left out.

    Example:
        >>> repair_factors({"n": 1.0}, ["n", "temperature"], 0.5)
        {'n': 0.5}
    """
    tuned = [k for k in knobs if growth.get(k, 0) > 0]
    total = sum(growth[k] for k in tuned)
    if not tuned:
        return {}
    factor = ratio ** (1.0 / total)
    return {k: factor for k in tuned}
