"""Prefix-reuse credit scoped to one problem: charges that do not depend on what else ran.

An engine's prefix cache (the transformers engine's, vLLM's, a server's) reuses the KV of any earlier
request, so the cached prompt tokens it reports for a call depend on which problems ran before it in
the process and in which batch. Charged as reported, a problem's FLOPs would change with the order of
the data set, the concurrency and a ``--resume``.

:class:`ComputedPrefixes` keeps the token sequences one problem has sent to one engine (prompts, and
prompts followed by their completions). A call is credited with the cached tokens the engine reports,
but at most the longest prefix of its prompt that the same problem computed before: reuse within a
problem (the ``n`` samples of a prompt, the children of a beam, a second node on the same prompt) is
credited, reuse of another problem's work is not. A problem's records are then the same whatever ran
beside it; the tokens the engine reused across problems are real savings that this accounting leaves
out (the engine's own statistics count them).
"""

from __future__ import annotations

from collections.abc import Sequence


class ComputedPrefixes:
    """A trie of the token sequences a problem has had computed by one engine.

    Example:
        >>> seen = ComputedPrefixes()
        >>> seen.add((1, 2, 3, 4))
        >>> seen.longest((1, 2, 3, 9)), seen.longest((5, 6)), seen.longest((1, 2, 3, 4, 5))
        (3, 0, 4)
    """

    def __init__(self) -> None:
        self._root: dict[int, dict] = {}
        self.sequences = 0

    def add(self, tokens: Sequence[int]) -> None:
        """Record that ``tokens`` (and so each of its prefixes) has been computed."""
        node = self._root
        for t in tokens:
            node = node.setdefault(t, {})
        self.sequences += 1

    def longest(self, tokens: Sequence[int]) -> int:
        """Length of the longest prefix of ``tokens`` computed before."""
        node, n = self._root, 0
        for t in tokens:
            child = node.get(t)
            if child is None:
                break
            node, n = child, n + 1
        return n
