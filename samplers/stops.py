"""Stop strings: find the earliest match in generated text and cut the text there."""

from __future__ import annotations

from collections.abc import Sequence


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[int, str] | None:
    r"""The earliest stop string in ``text`` that ends after ``start``: ``(index, stop)`` or ``None``.

    Matches that begin before ``start`` are found too, as long as they end at or after it, so a caller
    can search only the newly decoded tail of a growing text. Ties at one index go to the longest stop.

    Example:
        >>> find_stop("12 + 3 = 15\n4", ["\n", " = "])
        (6, ' = ')
        >>> find_stop("abc", ["x"]) is None
        True
    """
    best: tuple[int, str] | None = None
    for stop in stops:
        i = text.find(stop, max(0, start - len(stop) + 1))
        if i >= 0 and (best is None or i < best[0] or (i == best[0] and len(stop) > len(best[1]))):
            best = (i, stop)
    return best


def apply_stop(text: str, stops: Sequence[str], *, include_stop: bool = False) -> tuple[str, str | None]:
    r"""Cut ``text`` at its earliest stop string: ``(text, matched stop or None)``.

    Example:
        >>> apply_stop("step one\nstep two", ["\n"])
        ('step one', '\n')
        >>> apply_stop("step one\nstep two", ["\n"], include_stop=True)
        ('step one\n', '\n')
    """
    hit = find_stop(text, stops)
    if hit is None:
        return text, None
    i, stop = hit
    return text[: i + len(stop)] if include_stop else text[:i], stop
