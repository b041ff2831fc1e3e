"""Batched sampling from a causal LM with ``model.generate``, for training data and model cards.

This is the offline tool of the training scripts; the project's serving path
is the micro-batching engine in ``samplers``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from archon.models.training.data import EOS_ID, PAD_ID, encode_prompt

_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def final_answer(text: str) -> str | None:
    """The text after the last ``####`` marker, stripped; ``None`` when there is none."""
    found = _ANSWER.findall(text)
    return found[-1] if found else None


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    users: Sequence[str],
    *,
    n: int,
    temperature: float,
    max_new_tokens: int,
    seed: int = 0,
    batch_sequences: int = 512,
) -> list[list[str]]:
    """``n`` completions for each user message (greedy when ``temperature == 0``).

    Prompts are rendered with the chat template, left-padded, and batched so
    that each ``generate`` call holds about ``batch_sequences`` sequences.
    """
    from archon.models.training.data import VOCAB

    inv = {i: t for t, i in VOCAB.items()}
    model.eval()
    torch.manual_seed(seed)
    per_call = max(1, batch_sequences // n)
    out: list[list[str]] = []
    for start in range(0, len(users), per_call):
        chunk = [encode_prompt(u) for u in users[start : start + per_call]]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, width - len(seq) :] = torch.tensor(seq)
        kwargs: dict = (
            {"do_sample": False}
            if temperature == 0
            else {
                "do_sample": True,
                "temperature": temperature,
                "top_k": 0,
                "top_p": 1.0,
            }
        )
        gen = model.generate(
            input_ids=ids,
            attention_mask=(ids != PAD_ID).long(),
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            eos_token_id=EOS_ID,
            pad_token_id=PAD_ID,
            **kwargs,
        )[:, width:]
        texts = []
        for row in gen.tolist():
            toks = []
            for t in row:
                if t in (EOS_ID, PAD_ID):
                    break
                toks.append(inv[t])
            texts.append("".join(toks))
        out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
    return out
