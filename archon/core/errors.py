"""Errors shared by every layer of the project."""

from __future__ import annotations


class ArchonError(Exception):
    """Base class of the project's errors: its message is one line meant for the user."""


class DataError(ArchonError, ValueError):
    """A data file or data set name is invalid; the message names the file, line and field."""


class ModelNotFoundError(ArchonError, LookupError):
    """A model name is neither embedded, nor a local directory, nor a hub id."""
