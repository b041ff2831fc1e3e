"""Engines declared by name: a validated :class:`EngineConfig` and a pool that builds each engine once.

A spec declares its models once (``models: {policy: {kind: transformers, model: tiny-l}}``) and every
node refers to them by name; the :class:`EnginePool` builds one engine per distinct configuration,
lazily, and hands the same object to every user, so all their calls share one micro-batcher, one
prefix cache and one copy of the weights.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archon.core import Engine, Prices, RequestError
from archon.core.registry import ENGINE_KINDS, UnknownOperatorError, accepts, load_entry_points

DTYPES = ("auto", "float32", "float16", "bfloat16")
"""Number formats an engine loads weights in (``auto``: float32 on CPU, bfloat16 on a GPU that has it)."""
_DEVICE = re.compile(r"^(cpu|mps|meta|(cuda|xpu|npu|hpu)(:\d+)?)$")

TRANSFORMERS_OPTIONS = ("tokenizer", "name", "prefill_chunk_tokens", "seed", "attn_implementation", "worker_thread")
"""``options`` of a transformers engine: the keyword arguments of
:class:`~samplers.transformers_engine.TransformersEngine` that the config's own fields do not set."""
OPENAI_OPTIONS = ("name", "backoff", "max_backoff", "supports_n", "server_stop", "return_token_ids", "config")
"""``options`` of an OpenAI-compatible engine (:class:`~samplers.openai_engine.OpenAIEngine`)."""
VLLM_OPTIONS = ("max_batch_tokens", "gpu_memory_utilization", "seed", "llm_kwargs", "sampling_params", "entropy_top_k")
"""``options`` of a vLLM engine (:class:`~samplers.vllm_engine.VLLMEngine`)."""


class EngineConfig(BaseModel):
    """How to build one engine.

    Example:
        >>> EngineConfig(model="tiny-l").kind
        'transformers'
        >>> try:
        ...     EngineConfig(kind="openai", model="tiny-l")
        ... except ValueError as e:
        ...     print(e.errors()[0]["msg"][:46])
        Value error, kind 'openai' needs base_url (the
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("transformers", description="transformers, openai, vllm, or a plugin's engine kind")
    model: str = Field(description="embedded model name, local directory, hub id, or the server's model name")
    device: str = Field("cpu", description="transformers: cpu, cuda, cuda:1 ...")
    dtype: str = Field("auto", description="auto, float32, bfloat16, float16")
    base_url: str | None = Field(None, description="openai: the server's URL, ending in /v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the key")
    max_batch: int = Field(4096, ge=1, description="most requests in one batch")
    concurrency: int = Field(16, ge=1, description="openai: most requests in flight")
    timeout: float = Field(60.0, gt=0, description="openai: seconds per HTTP request")
    max_retries: int = Field(4, ge=0, description="openai: retries on 429, 5xx and timeouts")
    prefix_cache_mb: float = Field(256, ge=0, description="transformers: memory for cached prefixes")
    kv_budget_mb: float = Field(1024, gt=0, description="transformers: KV memory of one decode batch")
    price_per_mtok_in: float = Field(0.0, ge=0, description="dollars per million prompt tokens computed")
    price_per_mtok_out: float = Field(0.0, ge=0, description="dollars per million generated tokens")
    price_per_mtok_cached: float | None = Field(None, ge=0, description="dollars per million cached prompt tokens")
    options: dict[str, Any] = Field(default_factory=dict, description="further keyword options of the engine class")

    @model_validator(mode="after")
    def _check(self) -> EngineConfig:
        if self.kind not in ENGINE_KINDS:
            load_entry_points(("archon.engines",))
        try:
            kind = ENGINE_KINDS.get(self.kind)
        except UnknownOperatorError as exc:
            raise ValueError(str(exc)) from None
        if self.dtype not in DTYPES:
            raise ValueError(f"@dtype: unknown dtype {self.dtype!r}; one of {', '.join(DTYPES)}")
        if not _DEVICE.match(self.device):
            raise ValueError(f"@device: unknown device {self.device!r}; cpu, cuda, cuda:1, mps ...")
        if kind.check is not None:
            kind.check(self.options)
        if self.kind == "openai" and not self.base_url:
            raise ValueError(
                "kind 'openai' needs base_url (the server's URL, e.g. http://localhost:8000/v1) "
                "and the model name the server expects"
            )
        if self.kind != "openai" and self.base_url:
            raise ValueError(f"base_url is only for kind 'openai', not {self.kind!r}")
        return self

    def prices(self) -> Prices:
        """The declared prices, for charging calls to a ledger."""
        return Prices(input=self.price_per_mtok_in, output=self.price_per_mtok_out, cached=self.price_per_mtok_cached)

    def key(self) -> str:
        """A canonical form: two configs with the same key build the same engine."""
        return self.model_dump_json()


def build_engine(config: EngineConfig) -> Engine:
    """Build the engine a config describes, with its kind's registered builder."""
    return ENGINE_KINDS.get(config.kind).build(config)


@ENGINE_KINDS.register("transformers", check=accepts(*TRANSFORMERS_OPTIONS))
def transformers_engine(config: EngineConfig) -> Engine:
    """A Hugging Face causal LM run in this process by transformers (CPU or GPU), micro-batched."""
    from samplers.transformers_engine import TransformersEngine

    return TransformersEngine(
        config.model,
        device=config.device,
        dtype=config.dtype,
        max_batch=config.max_batch,
        kv_budget_mb=config.kv_budget_mb,
        prefix_cache_mb=config.prefix_cache_mb,
        **config.options,
    )


@ENGINE_KINDS.register("openai", check=accepts(*OPENAI_OPTIONS))
def openai_engine(config: EngineConfig) -> Engine:
    """Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, an API), over HTTP."""
    import os

    from samplers.openai_engine import OpenAIEngine

    return OpenAIEngine(
        config.model,
        base_url=str(config.base_url),
        api_key=os.environ.get(config.api_key_env),
        concurrency=config.concurrency,
        timeout=config.timeout,
        max_retries=config.max_retries,
        **config.options,
    )


@ENGINE_KINDS.register("vllm", check=accepts(*VLLM_OPTIONS))
def vllm_engine(config: EngineConfig) -> Engine:
    """VLLM's offline engine in this process (the ``vllm`` extra; unverified on CPU-only machines)."""
    from samplers.vllm_engine import VLLMEngine

    return VLLMEngine(config.model, dtype=config.dtype, max_batch=config.max_batch, **config.options)


class EnginePool:
    """Named engines, each built once on first use and shared by every caller.

    Args:
        configs: Engine configurations by name (as a spec's ``models`` section declares them).

    Example:
        >>> pool = EnginePool({"policy": EngineConfig(model="tiny-l"), "same": {"model": "tiny-l"}})
        >>> pool.get("policy") is pool.get("same")
        True
        >>> pool.close()
    """

    def __init__(self, configs: dict[str, EngineConfig | dict[str, Any]] | None = None) -> None:
        self._configs: dict[str, EngineConfig] = {}
        self._engines: dict[str, Engine] = {}
        for name, cfg in (configs or {}).items():
            self.declare(name, cfg)

    def declare(self, name: str, config: EngineConfig | dict[str, Any]) -> EngineConfig:
        """Declare (or redeclare, before first use) the engine called ``name``."""
        cfg = config if isinstance(config, EngineConfig) else EngineConfig(**config)
        built = self._configs.get(name)
        if built is not None and built.key() != cfg.key() and built.key() in self._engines:
            raise RequestError(f"engine {name!r} is already built with another configuration")
        self._configs[name] = cfg
        return cfg

    @property
    def names(self) -> list[str]:
        """The declared engine names."""
        return list(self._configs)

    def config(self, name: str) -> EngineConfig:
        """The configuration of the engine called ``name``."""
        try:
            return self._configs[name]
        except KeyError:
            known = ", ".join(self._configs) or "none"
            raise RequestError(f"no engine named {name!r} (declared: {known})") from None

    def get(self, name: str) -> Engine:
        """The engine called ``name``, built on first use; engines with equal configs are one object."""
        cfg = self.config(name)
        key = cfg.key()
        if key not in self._engines:
            self._engines[key] = build_engine(cfg)
        return self._engines[key]

    def built(self) -> list[Engine]:
        """The engines built so far."""
        return list(self._engines.values())

    async def aclose(self) -> None:
        """Close every built engine."""
        for engine in self._engines.values():
            await engine.aclose()
        self._engines.clear()

    def close(self) -> None:
        """Close every built engine (outside an event loop)."""
        for engine in self._engines.values():
            closer = getattr(engine, "close", None)
            if closer is not None and not inspect.iscoroutinefunction(closer):
                closer()
            else:
                asyncio.run(engine.aclose())
        self._engines.clear()
