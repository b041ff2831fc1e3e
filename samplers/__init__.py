"""Generation engines with the micro-batching runtime, and the sampling operators."""
