"""Reading spec files: YAML or JSON, ``extends:`` resolved, errors that name the file and the spec path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from archon.core import ArchonError
from archon.spec.models import Spec


class SpecError(ArchonError, ValueError):
    """A spec is invalid; the message names the file and the path in it (``pipeline[2].params.n``)."""


def spec_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a spec path.

    Example:
        >>> spec_path(("pipeline", 2, "params", "n"))
        'pipeline[2].params.n'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "tagged-union") or str(part).startswith(("function-", "union[")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


def parse_spec(data: Any, *, source: str = "<spec>") -> Spec:
    """Validate a spec given as a dict; the first error becomes one :class:`SpecError` line."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping with a pipeline, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        errors = _distinct(exc.errors())
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpecError(f"{source}: {_message(errors[0])}{more}") from None


_UNION_MEMBERS = re.compile(r"^(str|int|float|bool|none|Tunable|list\[.*\]|dict\[.*\])$")


def _distinct(errors: list[Any]) -> list[Any]:
    """Pydantic's errors with the union members tried left out of their locations, one per location.

    ``op: str | Tunable`` given ``3`` fails as ``op.str`` and as ``op.Tunable``: that is one error at ``op``.
    """
    out: dict[tuple[Any, ...], Any] = {}
    for err in errors:
        loc = tuple(p for i, p in enumerate(err["loc"]) if not (i and isinstance(p, str) and _UNION_MEMBERS.match(p)))
        out.setdefault(loc, {**err, "loc": loc})
    return list(out.values())


def _message(err: Any) -> str:
    """``path: message`` of one pydantic error; a message ``@sub.path: ...`` names a path below the error's."""
    loc, msg = tuple(err["loc"]), err["msg"].removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong type
        return f"{spec_path(loc[:-2])}: keys must be strings, got {loc[-2]!r}"
    if msg.startswith("@"):
        below, _, msg = msg[1:].partition(": ")
        return f"{spec_path(loc)}.{below}: {msg}" if loc else f"{below}: {msg}"
    return f"{spec_path(loc)}: {msg}"


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (YAML itself keeps the last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)  # merge keys (<<: *anchor) first: overriding a merged key is allowed
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise SpecError(f"{key_node.start_mark.name}:{line}: key {key!r} is given twice in one mapping")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Named:
    """A loader class whose marks carry the file's name (for ``file:line`` messages)."""

    @staticmethod
    def of(name: str) -> Any:
        def make(stream: str) -> _StrictLoader:
            loader = _StrictLoader(stream)
            loader.name = name
            return loader

        return make


def read_spec_data(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The spec file's data with its ``extends:`` chain merged (the extending file wins).

    Top-level keys starting with ``x-`` are left out (the Compose convention: a place for YAML anchors).
    """
    p = Path(path).expanduser().resolve()
    if p in _seen:
        chain = " -> ".join(str(x.name) for x in (*_seen, p))
        raise SpecError(f"{p}: extends itself ({chain})")
    if not p.is_file():
        raise SpecError(f"{path}: no such spec file" + (" (it is a directory)" if p.is_dir() else ""))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = _json(text, p) if p.suffix == ".json" else yaml.load(text, Loader=_Named.of(str(p)))
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)
        where = f":{line}" if line is not None else ""
        raise SpecError(f"{p}{where}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p}: a spec is a mapping with a pipeline")
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise SpecError(f"{p}: extends: the path of the spec file this one overrides, got {parent!r}")
    if not (p.parent / parent).expanduser().is_file():
        kind = " (it is a directory)" if (p.parent / parent).expanduser().is_dir() else ""
        raise SpecError(f"{p}: extends: {parent}: no such spec file{kind}")
    try:
        base = read_spec_data(p.parent / parent, _seen=(*_seen, p))
    except SpecError as exc:
        if _seen and str(exc).startswith(f"{p}"):  # a cycle through this file: said once, by the first
            raise
        message, written = str(exc), str((p.parent / parent).expanduser().resolve())
        if message.startswith(written):  # name the base as this file does
            message = parent + message[len(written) :]
        raise SpecError(f"{p}: extends: {message}") from None
    return _merge(base, data)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _json(text: str, path: Path) -> Any:
    """JSON that refuses a key given twice in one object (``json`` keeps the last one silently)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise _DuplicateKey(k)
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _DuplicateKey as dup:
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(dup.key)) + r"\s*:", text)]
        line = f":{text.count(chr(10), 0, hits[1]) + 1}" if len(hits) > 1 else ""
        raise SpecError(f"{path}{line}: key {dup.key!r} is given twice in one object") from None


def load_spec(path: str | Path) -> Spec:
    """Read, merge (``extends:``) and validate a spec file."""
    return parse_spec(read_spec_data(path), source=str(path))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; the override wins; lists are replaced, except ``pipeline``, merged by node id."""
    out = dict(base)
    for key, value in override.items():
        if key == "pipeline" and isinstance(value, list) and isinstance(base.get(key), list):
            out[key] = _merge_nodes(base[key], value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value)
        else:
            out[key] = value
    return out


def _merge_nodes(base: list[Any], override: list[Any]) -> list[Any]:
    """Nodes of ``override`` replace (merge into) the base's nodes with the same id; new ids are appended."""
    index = {n.get("id"): i for i, n in enumerate(base) if isinstance(n, dict)}
    out = list(base)
    for node in override:
        i = index.get(node.get("id")) if isinstance(node, dict) else None
        if i is None:
            out.append(node)
        else:
            out[i] = _merge(out[i], node)
    return out
