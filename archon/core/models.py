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


def resolve_model(model: str | Path, *, check_hub: bool = False) -> str:
    """What ``from_pretrained`` should load: an embedded model's directory, a local directory, or a hub id.

    A name that is neither embedded nor an existing directory is passed on as a
    hub id (``org/name``); anything else raises :class:`ModelNotFoundError`. With
    ``check_hub``, a hub id must be in the local cache or the hub reachable
    (:func:`reachable_or_cached`): callers about to load the model ask for it.

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
        if check_hub:
            reachable_or_cached(text)
        return text
    close = difflib.get_close_matches(text, embedded_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(f"model {text!r} is not an embedded model, a local directory or a hub id (org/name){hint}")


def reachable_or_cached(repo_id: str, *, timeout: float = 3.0) -> None:
    """Fail at once, in one line, for a hub id that is neither in the local cache nor downloadable.

    Without this, loading it offline retries for half a minute and prints a line per retry. The check is
    the local Hugging Face cache first (a ``config.json`` there), then one TCP connection to the hub
    (``HF_ENDPOINT``, default huggingface.co) within ``timeout`` seconds; ``HF_HUB_OFFLINE=1`` skips the
    connection.
    """
    import os
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings it
        return
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            return
        except OSError as exc:
            reason = f"{host} cannot be reached: {exc.strerror or exc}"
    raise ModelNotFoundError(
        f"model {repo_id!r} is a hub id that is not in the local Hugging Face cache, and {reason}; "
        "download it where there is a network (huggingface-cli download), or give a local directory"
    )
