"""Model names: an embedded model's name, a local model directory, or a hub id.

Lives in the kernel so that every layer (engines in ``samplers``, reward models in ``verifiers``)
takes the same names; :mod:`archon.models` documents the embedded models themselves.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from archon.core.errors import ModelNotFoundError

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "models" / "embedded"
"""Where the package's embedded models live (``archon/models/embedded``)."""


def embedded_names() -> list[str]:
    """Names of the embedded models (the directories holding a ``config.json``)."""
    if not EMBEDDED_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model(model: str | Path) -> str:
    """What ``from_pretrained`` should load: an embedded model's directory, a local directory, or a hub id.

    A name that is neither embedded nor an existing directory is passed on as a
    hub id (``org/name``); anything else raises :class:`ModelNotFoundError`.

    Example:
        >>> Path(resolve_model("tiny-l")).name
        'tiny-l'
    """
    text = str(model)
    if text in embedded_names():
        return str(EMBEDDED_DIR / text)
    p = Path(text).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {p} has no config.json")
        return str(p)
    if "/" in text and not text.startswith((".", "/", "~")) and text.count("/") == 1:
        return text
    close = difflib.get_close_matches(text, embedded_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(f"model {text!r} is not an embedded model, a local directory or a hub id (org/name){hint}")
