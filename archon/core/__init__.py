"""The shared kernel: data types, protocols and errors. Imports no torch."""

from archon.core.errors import ArchonError, DataError, ModelNotFoundError
from archon.core.problem import Message, Problem

__all__ = ["ArchonError", "DataError", "Message", "ModelNotFoundError", "Problem"]
