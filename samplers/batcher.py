"""The micro-batcher lives in the kernel (:mod:`archon.core.batcher`), shared by engines and verifiers."""

from archon.core.batcher import BatchFn, BatchStats, MicroBatcher

__all__ = ["BatchFn", "BatchStats", "MicroBatcher"]
