"""Generation: the engines (transformers, vLLM, OpenAI-compatible) and their micro-batching runtime.

Engines are imported on first use (``samplers.TransformersEngine`` loads torch and transformers,
``samplers.VLLMEngine`` needs the ``vllm`` extra), so ``import samplers`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TransformersEngine": "samplers.transformers_engine",
    "OpenAIEngine": "samplers.openai_engine",
    "VLLMEngine": "samplers.vllm_engine",
    "EngineConfig": "samplers.engines",
    "EnginePool": "samplers.engines",
    "build_engine": "samplers.engines",
    "MicroBatcher": "archon.core.batcher",
    "PrefixCache": "samplers.prefix_cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'samplers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
