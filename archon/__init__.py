"""Archon: inference-time compute scaling with exact compute accounting.

Composable inference-time techniques (sampling, voting, verifier-guided search,
retrieval, model switching, LLM fusion) form DAG pipelines that run on a data
set with FLOP/token/latency accounting and are tuned with Optuna under budgets.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("archon-its")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
