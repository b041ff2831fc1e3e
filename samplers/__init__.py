"""Generation: the engines (transformers, vLLM, OpenAI-compatible) and their micro-batching runtime.

Engines are imported on first use (``samplers.TransformersEngine`` loads torch and transformers,
``samplers.VLLMEngine`` needs the ``vllm`` extra), so ``import samplers`` stays light.
"""

from __future__ import annotations

from archon.core.lazy import lazy_exports

_EXPORTS = {
    "TransformersEngine": "samplers.transformers_engine",
    "OpenAIEngine": "samplers.openai_engine",
    "VLLMEngine": "samplers.vllm_engine",
    "EngineConfig": "samplers.engines",
    "EnginePool": "samplers.engines",
    "build_engine": "samplers.engines",
    "MicroBatcher": "archon.core.batcher",
    "PrefixCache": "archon.core.prefix_cache",
    "GenerationCache": "samplers.cache",
    "IndexSeededEngine": "samplers.indexed",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("samplers", _EXPORTS, globals())
