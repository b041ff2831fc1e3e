"""The pipeline spec: pydantic models of a YAML/JSON spec file.

Sections: ``engines`` (named models), ``verifiers``, ``retrievers``, ``dataset``, ``budget``,
``pipeline`` (nodes: ``id``, ``op``, ``inputs``, ``params``) and ``tune``. Any param — and a node's
``op`` and ``enabled`` — may be ``{tune: {...}}`` instead of a value (:class:`Tunable`), which makes it
part of the tuning search space.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archon.core.registry import RETRIEVER_KINDS, VERIFIER_KINDS, UnknownOperatorError
from budgets import LIMITS, ProfileError, profile
from samplers.engines import EngineConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TuneRange(_Strict):
    """A search dimension: ``int`` / ``float`` in ``[low, high]`` (``log`` scale optional), ``choice``, ``bool``."""

    type: Literal["int", "float", "choice", "bool"]
    low: Annotated[float, Field(allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(allow_inf_nan=False)] | None = None
    log: bool = False
    step: Annotated[float, Field(allow_inf_nan=False)] | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> TuneRange:
        given = [k for k in ("low", "high", "step", "choices") if getattr(self, k) is not None] + ["log"] * self.log
        takes = {"int": {"low", "high", "step", "log"}, "float": {"low", "high", "step", "log"}, "choice": {"choices"}}
        extra = [k for k in given if k not in takes.get(self.type, set())]
        if extra:
            allowed = ", ".join(sorted(takes.get(self.type, ()))) or "nothing but its type"
            raise ValueError(f"a tuned {self.type} takes no {extra[0]} (it takes {allowed})")
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"a tuned {self.type} needs low and high")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is above high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
            if self.log and self.step is not None:
                raise ValueError("a log-scale range takes no step")
            if self.step is not None and not self.step > 0:
                raise ValueError(f"step must be > 0, got {self.step}")
        elif self.type == "choice":
            if not self.choices:
                raise ValueError("a tuned choice needs a non-empty list of choices")
            odd = [c for c in self.choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if odd:
                raise ValueError(f"choices must be strings, numbers, booleans or null, got {odd[0]!r}")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError("choices must be distinct")
            kinds = {_kind_of(c) for c in self.choices if c is not None}
            if len(kinds) > 1:
                raise ValueError(f"choices mix types ({', '.join(sorted(kinds))}): give them all as one type")
        return self


def _kind_of(value: Any) -> str:
    """A choice's type for the mixing check: booleans, numbers (int and float together) and strings."""
    if isinstance(value, bool):
        return "booleans"
    return "numbers" if isinstance(value, int | float) else "strings"


class Tunable(_Strict):
    """``{tune: {...}}``: a value the tuner chooses."""

    tune: TuneRange


def _tunables(params: dict[str, Any]) -> dict[str, Any]:
    """Params with each ``{tune: {...}}`` parsed; a bad range is an error naming its parameter."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if not (isinstance(v, dict) and "tune" in v):
            out[k] = v
            continue
        if set(v) != {"tune"}:
            other = sorted(str(x) for x in v if x != "tune")
            raise ValueError(f"@{k}: a tuned value takes only the key 'tune', got also {', '.join(other)}")
        try:
            out[k] = Tunable(**v)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"@{k}.{where}: {msg}" if where else f"@{k}: {msg}") from None
    return out


class NodeSpec(_Strict):
    """One node of the pipeline DAG.

    When ``op`` is tuned, each chosen op takes the ``params`` it accepts (the others exist only for the
    ops that take them: conditional parameters) plus its own ``by_op`` entry, which overrides them. A
    node whose ``enabled`` is tuned is optional: when left out, the nodes reading it read its inputs.
    """

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    op: str | Tunable
    inputs: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    by_op: dict[str, dict[str, Any]] = Field(default_factory=dict, description="params for one op choice only")
    enabled: bool | Tunable = True

    @field_validator("params")
    @classmethod
    def _tuned_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _tunables(params)

    @field_validator("op")
    @classmethod
    def _tuned_op(cls, op: str | Tunable) -> str | Tunable:
        if isinstance(op, Tunable) and (
            op.tune.type != "choice" or not all(isinstance(c, str) for c in op.tune.choices or [])
        ):
            raise ValueError("@tune: a tuned op is a choice of op names ({tune: {type: choice, choices: [...]}})")
        return op

    @field_validator("enabled")
    @classmethod
    def _tuned_enabled(cls, enabled: bool | Tunable) -> bool | Tunable:
        if isinstance(enabled, Tunable) and enabled.tune.type != "bool":
            raise ValueError("@tune: a tuned enabled is a bool ({tune: {type: bool}})")
        return enabled

    @field_validator("by_op")
    @classmethod
    def _tuned_by_op(cls, by_op: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for op, params in by_op.items():
            try:
                out[op] = _tunables(params)
            except ValueError as exc:
                raise ValueError(f"@{op}.{str(exc).removeprefix('@')}") from None
        return out

    def op_choices(self) -> list[str]:
        """The ops this node may run: the tuned choices, or its one op."""
        return [str(c) for c in self.op.tune.choices or []] if isinstance(self.op, Tunable) else [self.op]

    def params_for(self, op: str, accepted: set[str] | None = None) -> dict[str, Any]:
        """The params of this node when it runs ``op``, ``by_op[op]`` overriding ``params``.

        With a tuned op and ``accepted`` given, only the ``params`` in ``accepted`` are kept.
        """
        base = self.params
        if isinstance(self.op, Tunable) and accepted is not None:
            base = {k: v for k, v in base.items() if k in accepted}
        return {**base, **self.by_op.get(op, {})}


class VerifierSpec(_Strict):
    """A named verifier: its kind, the model or engine it uses, its options."""

    kind: str = Field(
        description="reward_model, arith_steps, noisy_arith_steps, answer, yes_no_judge, generative_judge, "
        "self_certainty, or a plugin's verifier kind (`archon ops --kinds`)"
    )
    model: str | None = None
    engine: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_kind(self) -> VerifierSpec:
        from archon import plugins

        plugins.load()
        try:
            kind = VERIFIER_KINDS.get(self.kind)
        except UnknownOperatorError as exc:
            raise ValueError(str(exc)) from None
        for what, need in (("model", kind.model), ("engine", kind.engine)):
            given = getattr(self, what) is not None
            if need == "none" and given:
                raise ValueError(f"@{what}: kind {self.kind!r} takes no {what}")
            if need == "required" and not given:
                raise ValueError(f"kind {self.kind!r} needs an {what} ({what}: the name of a declared {what})")
        if kind.check is not None:  # options a kind can check before anything is built
            kind.check(self.options)
        return self


class RetrieverSpec(_Strict):
    """A named retriever: its kind, the corpus it indexes (or the retrievers it combines), its options."""

    kind: str = Field(description="bm25, dense, hybrid, or a plugin's retriever kind (`archon ops --kinds`)")
    corpus: str | None = Field(None, description="an embedded corpus name (facts) or a JSONL file of documents")
    of: list[str] = Field(default_factory=list, description="declared retrievers this one combines (hybrid)")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_kind(self) -> RetrieverSpec:
        from archon import plugins

        plugins.load()
        try:
            kind = RETRIEVER_KINDS.get(self.kind)
        except UnknownOperatorError as exc:
            raise ValueError(str(exc)) from None
        if kind.corpus == "none" and self.corpus is not None:
            raise ValueError(f"@corpus: kind {self.kind!r} takes no corpus (it searches what it combines)")
        if kind.corpus == "required" and not self.corpus:
            raise ValueError(f"kind {self.kind!r} needs a corpus (corpus: an embedded corpus name or a JSONL file)")
        if kind.check is not None:
            kind.check(self.options)
        return self


class DatasetSpec(_Strict):
    """The data set a run evaluates: an embedded name or a JSONL path, a split and an optional limit."""

    name: str
    split: str = "dev"
    limit: int | None = Field(None, ge=1)


class BudgetSpec(_Strict):
    """Limits per problem and per run (``flops``, ``tokens``, ``calls``, ``seconds``, ``latency``, ``dollars``)."""

    per_problem: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)
    per_run: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)
    hardware: str | None = Field(None, description="hardware profile for idealized latency (h100, a100, l4, cpu ...)")

    @field_validator("per_problem", "per_run")
    @classmethod
    def _known_limits(cls, limits: dict[str, float]) -> dict[str, float]:
        return _known_limits(limits)

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, name: str | None) -> str | None:
        return _known_hardware(name)


def _known_limits(limits: dict[str, float]) -> dict[str, float]:
    """``limits`` if every key is a quantity of the cost vocabulary."""
    for k, v in limits.items():
        if k not in LIMITS:
            raise ValueError(f"unknown limit {k!r}; limits are {', '.join(LIMITS)}")
        if v == 0 and k != "dollars":  # free local calls fit a zero dollar limit; nothing fits a zero of the rest
            raise ValueError(f"limit {k} is 0: no model call could run (leave it out for no limit)")
    return limits


def check_storage_url(url: str) -> str:
    """``url`` if it is a database URL whose scheme SQLAlchemy has a driver for (checked without connecting)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = url.split("://", 1)[0] if "://" in url else None
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        if scheme is None:
            raise ValueError(f"not a database URL: {url!r} (postgresql://user@host/db, sqlite:///path.db)") from None
        raise ValueError(f"unknown storage scheme {scheme!r} (postgresql://..., mysql://..., sqlite:///...)") from None
    except ImportError as exc:  # the scheme is known but its driver is not installed
        raise ValueError(f"{url.split(':', 1)[0]}: its database driver is not installed ({exc.name})") from None
    return url


def _known_hardware(name: str | None) -> str | None:
    """``name`` if it is a known hardware profile (or ``None``)."""
    if name is not None:
        try:
            profile(name)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
    return name


LIMIT_NAMES = LIMITS
"""What a tuning budget may limit, per problem (means over the evaluated problems): the cost vocabulary."""


class TuneSpec(_Strict):
    """What ``archon tune`` optimises, under which limits, and how.

    ``objectives``: ``[accuracy]`` (maximised, subject to ``budget``) or ``[accuracy, flops]`` /
    ``[accuracy, latency]`` (a Pareto front). ``budget``: limits per problem, given to Optuna as
    constraints. ``minibatch``: evaluate each trial on this many problems of the split, then re-evaluate
    the best ``reevaluate`` trials on the whole split (among those within every limit on the minibatch, or
    over one by at most ``cost_slack`` of it: a minibatch's cost is an estimate too). ``repair``: a trial
    over the budget is tried again next with its cost knobs (the chosen ops' ``n``) scaled down by the
    budget's share of its cost.
    ``startup``: ``cover`` begins a new study with a few queued trials in which every categorical
    choice (conditional ones included) appears, before the sampler proposes; ``none`` leaves it out.
    ``workers``: processes sharing the study.

    ``archon tune``'s flags override these fields one for one (:meth:`with_overrides`), so the command
    line is validated by this model and nowhere else.

    Example:
        >>> TuneSpec().with_overrides(trials=3, budget={"flops": 1e9}).trials
        3
        >>> try:
        ...     TuneSpec().with_overrides(objectives=["accuracy", "joules"])
        ... except ValueError as e:
        ...     print(e.errors()[0]["msg"])
        Value error, unknown cost 'joules'; costs are flops, tokens, calls, seconds, latency, dollars
    """

    objectives: list[str] = Field(
        default_factory=lambda: ["accuracy"],
        min_length=1,
        max_length=2,
        description="accuracy, optionally followed by one cost (flops, latency ...) for a Pareto front",
    )
    budget: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="per-problem limits: flops, latency ..."
    )
    hardware: str | None = Field(None, description="hardware profile for the idealized latency")
    trials: int = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds for the whole study")
    storage: str | None = Field(None, description="an Optuna RDB URL; default: SQLite in the study directory")
    study: str | None = Field(None, description="the study's name; default: the spec file's stem")
    sampler: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    pruner: Literal["wilcoxon", "none"] = "wilcoxon"
    minibatch: int | None = Field(None, ge=1)
    reevaluate: int = Field(3, ge=0)
    cost_slack: float = Field(
        0.1,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="with a minibatch: trials at most this share over a limit there may be re-scored too "
        "(a minibatch's cost is an estimate; only what fits on the whole split is reported)",
    )
    cache: bool = Field(True, description="share generations between trials (a content-addressed cache)")
    repair: bool = Field(
        True, description="after a trial over the budget, try it next with its sample counts (n) scaled to fit"
    )
    seed: int = 0
    startup: Literal["cover", "none"] = Field(
        "cover", description="cover: first try every categorical choice once (queued trials); none: the sampler only"
    )
    workers: int = Field(1, ge=1, description="worker processes sharing the study")

    @field_validator("budget")
    @classmethod
    def _limits(cls, budget: dict[str, float]) -> dict[str, float]:
        return _known_limits(budget)

    @field_validator("hardware")
    @classmethod
    def _hardware(cls, name: str | None) -> str | None:
        return _known_hardware(name)

    @field_validator("storage")
    @classmethod
    def _storage(cls, url: str | None) -> str | None:
        return None if url is None else check_storage_url(url)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, objectives: list[str]) -> list[str]:
        if objectives[0] != "accuracy" or "accuracy" in objectives[1:]:
            raise ValueError("the first objective is accuracy; a second one is a cost (flops, latency ...)")
        for cost in objectives[1:]:
            if cost not in LIMITS:
                raise ValueError(f"unknown cost {cost!r}; costs are {', '.join(LIMITS)}")
        return objectives

    @model_validator(mode="after")
    def _hardware_for_latency(self) -> TuneSpec:
        if ("latency" in self.budget or "latency" in self.objectives) and not self.hardware:
            raise ValueError(
                "a latency limit or objective needs a hardware profile: --hardware NAME or tune.hardware "
                "(see archon hardware list)"
            )
        return self

    @property
    def directions(self) -> list[str]:
        """Maximise accuracy; minimise a second, cost objective."""
        return ["maximize"] + ["minimize"] * (len(self.objectives) - 1)

    def with_overrides(self, **overrides: Any) -> TuneSpec:
        """These settings with the given non-``None`` values replacing them (``budget`` limits merged in)."""
        data = self.model_dump()
        budget = {**data["budget"], **(overrides.pop("budget", None) or {})}
        data.update({k: v for k, v in overrides.items() if v is not None}, budget=budget)
        return TuneSpec(**data)

    @classmethod
    def of(cls, spec: Spec, **overrides: Any) -> TuneSpec:
        """A spec's ``tune`` section (the defaults when it has none) with ``overrides`` applied."""
        return (spec.tune or cls()).with_overrides(**overrides)


class Spec(_Strict):
    """A whole pipeline spec."""

    extends: str | None = Field(None, description="a spec file this one overrides (resolved when loading)")
    engines: dict[str, EngineConfig] = Field(default_factory=dict)
    verifiers: dict[str, VerifierSpec] = Field(default_factory=dict)
    retrievers: dict[str, RetrieverSpec] = Field(default_factory=dict)
    dataset: DatasetSpec | None = None
    budget: BudgetSpec | None = None
    pipeline: list[NodeSpec] = Field(min_length=1)
    tune: TuneSpec | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Spec:
        seen: set[str] = set()
        for node in self.pipeline:
            if node.id in seen:
                raise ValueError(f"node id {node.id!r} is used twice")
            seen.add(node.id)
        return self

    @model_validator(mode="after")
    def _combined_retrievers(self) -> Spec:
        for name, r in self.retrievers.items():
            for member in r.of:
                if member == name:
                    raise ValueError(f"retrievers.{name}.of: a retriever cannot combine itself")
                if member not in self.retrievers:
                    known = ", ".join(sorted(set(self.retrievers) - {name})) or "none"
                    raise ValueError(f"retrievers.{name}.of: no retriever {member!r} declared (declared: {known})")
                if self.retrievers[member].of:
                    raise ValueError(f"retrievers.{name}.of: {member!r} combines retrievers itself (one level only)")
        return self

    def tunables(self) -> dict[str, TuneRange]:
        """Every tuned value, by its spec path (``pipeline[1].params.n``)."""
        out: dict[str, TuneRange] = {}
        for i, node in enumerate(self.pipeline):
            if isinstance(node.op, Tunable):
                out[f"pipeline[{i}].op"] = node.op.tune
            if isinstance(node.enabled, Tunable):
                out[f"pipeline[{i}].enabled"] = node.enabled.tune
            for k, v in node.params.items():
                if isinstance(v, Tunable):
                    out[f"pipeline[{i}].params.{k}"] = v.tune
            for op, params in node.by_op.items():
                for k, v in params.items():
                    if isinstance(v, Tunable):
                        out[f"pipeline[{i}].by_op.{op}.{k}"] = v.tune
        return out
