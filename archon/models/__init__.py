"""The embedded models and model-name resolution.

The package ships five small models trained from scratch by
``python -m archon.models.training`` (see each model's ``README.md`` card):

=============  ==========================================================
name           what it is for
=============  ==========================================================
tiny-l         the larger causal LM (arith and facts); the default policy
tiny-s         a smaller causal LM: the cheap model
tiny-prm       process verifier: one score per arith solution step
tiny-prm-weak  an early checkpoint of tiny-prm: a learned, imperfect PRM
tiny-orm       outcome verifier: one score per arith solution
=============  ==========================================================

Everywhere the project takes a model it takes an embedded name, a local
Hugging Face model directory, or a hub id (:func:`resolve`).
"""

from __future__ import annotations

import difflib
import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from archon.core import ModelNotFoundError
from archon.core.models import EMBEDDED_DIR, resolve_model

PURPOSES = {
    "tiny-l": "causal LM, arith + facts; default policy model",
    "tiny-s": "smaller causal LM, arith + facts; cheap model",
    "tiny-prm": "process verifier: a score per arith step",
    "tiny-prm-weak": "an early checkpoint of tiny-prm: a weaker PRM",
    "tiny-orm": "outcome verifier: a score per arith solution",
}


def names() -> list[str]:
    """Names of the embedded models."""
    return list(PURPOSES)


def path(name: str) -> Path:
    """The directory of an embedded model.

    Example:
        >>> path("tiny-l").name
        'tiny-l'
    """
    if name not in PURPOSES:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; embedded models are {', '.join(names())}"
        raise ModelNotFoundError(f"no embedded model named {name!r}{hint}")
    return EMBEDDED_DIR / name


def resolve(model: str | Path) -> str:
    """What ``from_pretrained`` should load: an embedded model's directory, a local directory, or a hub id.

    A name that is neither embedded nor an existing directory is passed on as a
    hub id (``org/name``); anything else raises :class:`ModelNotFoundError`.
    """
    return resolve_model(model)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Facts about one embedded model, for ``archon models``."""

    name: str
    architecture: str
    params: int
    bytes_on_disk: int
    purpose: str


def parameter_count(directory: Path) -> int:
    """Number of parameters in a directory's safetensors files (read from their headers)."""
    total = 0
    for f in sorted(directory.glob("*.safetensors")):
        with f.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        total += sum(prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def info(name: str) -> ModelInfo:
    """Architecture, parameter count, size on disk and purpose of an embedded model."""
    d = path(name)
    if not (d / "config.json").is_file():
        raise ModelNotFoundError(f"embedded model {name!r} is missing from {d}: run python -m archon.models.training")
    config = json.loads((d / "config.json").read_text())
    return ModelInfo(
        name=name,
        architecture=(config.get("architectures") or ["?"])[0],
        params=parameter_count(d),
        bytes_on_disk=sum(f.stat().st_size for f in d.iterdir() if f.is_file()),
        purpose=PURPOSES[name],
    )


__all__ = ["EMBEDDED_DIR", "ModelInfo", "info", "names", "parameter_count", "path", "resolve"]
