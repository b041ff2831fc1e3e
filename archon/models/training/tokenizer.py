"""The shared character-level tokenizer of the embedded models.

One token per character of printable ASCII plus newline, and the special
tokens ``<pad>``, ``<s>`` (BOS), ``</s>`` (EOS), ``<unk>`` and the chat role
markers. It is saved as a standard ``tokenizer.json`` (a WordLevel model over
single characters with a Fuse decoder), so ``AutoTokenizer.from_pretrained``
loads it with no custom code, and vLLM could too.
"""

from __future__ import annotations

from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ROLES = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIALS = (PAD, BOS, EOS, UNK, *ROLES)
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' }}{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
"""Renders ``<s><|user|>question\\n<|assistant|>answer</s>``."""


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """Build the tokenizer object (imports ``tokenizers``/``transformers`` lazily)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in CHARS:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLES),
        model_max_length=2048,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(directory: str | Path) -> None:
    """Write the tokenizer files into ``directory``."""
    build_tokenizer().save_pretrained(str(directory))
