"""Step-level search over solutions: beam search, tree search, particle Monte Carlo."""
