"""The ``rag`` extra: retrievers import their libraries lazily and say how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from archon.core import ArchonError

INSTALL = "pip install -e \".[rag]\" (or pip install 'archon-its[rag]')"
"""How to install the retrievers' dependencies."""


class RetrievalError(ArchonError):
    """A retriever that cannot be built or used (a missing extra, a bad corpus, a bad option)."""


def require(module: str, *, what: str) -> ModuleType:
    """Import ``module`` for ``what``; missing, a one-line error naming the extra that installs it.

    Example:
        >>> require("json", what="a test").__name__
        'json'
        >>> try:
        ...     require("no_such_module_xyz", what="the bm25 retriever")
        ... except RetrievalError as e:
        ...     print(str(e).split(":")[0])
        the bm25 retriever needs no_such_module_xyz, which is not installed
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RetrievalError(f"{what} needs {module.split('.')[0]}, which is not installed: {INSTALL}") from None
