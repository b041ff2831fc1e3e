r"""Final answers: extraction from a solution, a canonical form for voting, and mathematical equivalence.

Three functions, used together by voting and scoring::

    extract_answer(text)   -> "\frac{1}{2}"      the final answer of a solution, as written
    normalize_answer(ans)  -> "0.5"              a canonical key: equal keys mean equal answers
    answers_equal(a, b)    -> True               equivalence, exact for numbers, symbolic for expressions

Decisions (documented once, here):

* **Numbers are exact rationals.** Integers, decimals, thousands separators
  (``1,234``: groups of exactly three digits), fractions (``3/4``, ``\frac34``,
  ``\dfrac{3}{4}``, ``\tfrac``), scientific notation (``1e3``,
  ``1.5\times10^{3}``) and mixed numbers (an integer followed by a *proper*
  fraction, ``2\frac{1}{2}`` or ``2 1/2``, means 2.5) are parsed with
  :class:`fractions.Fraction`. The canonical form is an integer (``"5"``, never
  ``"5.0"`` or ``"-0"``), else a terminating decimal (``"0.5"`` for ``1/2``,
  ``\frac12`` and ``.50``), else a reduced fraction (``"1/3"``). No tolerance:
  ``0.333`` is not ``1/3`` and ``1.414`` is not ``\sqrt{2}``.
* **A percent sign is a unit and is dropped**, as the MATH and GSM8K graders
  do: ``50\%`` equals ``50`` and does *not* equal ``0.5``. Other units go too:
  ``\$``, degrees (``^\circ``), and up to four words of two or more letters
  after a number (``18 cm``, ``5 apples``, ``\text{ dollars}``; also
  ``5 or more`` -> ``5``, while ``3 hours 20 minutes`` stays text).
* **Lists are ordered.** ``1,2`` (not a thousands number) is the list (1, 2),
  never 12; lists are equal element by element, with the same brackets, so
  ``(1,2)`` and ``[1,2]`` (open and closed intervals) differ.
* **Words** compare case- and whitespace-insensitively, whole: ``Paris`` is not
  ``Parisian`` and ``18`` is not ``180``; nothing is ever matched as a substring.
* **Expressions** (``2x+2`` and ``2(x+1)``, ``\sqrt{8}`` and ``2\sqrt{2}``)
  are translated from a small LaTeX subset into a whitelisted Python AST (no
  ``eval`` of model output). Constant rational expressions (``0.1+0.2``) are
  decided exactly in-process; otherwise a floating-point evaluation at a few
  fixed points rejects most unequal pairs in-process, and only pairs that
  survive it go to ``sympy.simplify(a - b) == 0``.
* **Beyond that subset, math-verify decides.** When the hand-written path cannot read one of the two
  answers (sets ``\{1,2\}``, ``x \in [0,1]``, ``\binom{5}{2}``, ``5!``, ``\log_2 8``, ``|x|``,
  inequalities) and their normal forms differ, Hugging Face's ``math-verify`` parser compares them
  (in the child process below, to 12 digits, either way round: its check is one-sided). On a table
  of MATH-style LaTeX pairs (``benchmarks/answers.py``) the hand-written path alone was right on 33 of
  44, math-verify alone on 39, the two together on 40. On the project's own table (plain-text
  conventions: a percent is a unit, lists are ordered, words are whole) math-verify alone was right on
  66 of 73 and the two together on all, so math-verify never overrides a verdict the hand-written
  path can give.
* **A bare expression ending a solution is the answer**, as an expression: ``\sqrt{8}``,
  ``x = 2(x+1)`` or ``x**2`` on the last line, not their last number.
* **The symbolic check cannot block past its timeout.** sympy can hang (or
  allocate without bound) on inputs like ``9^{9^{9}}``, and a thread cannot be
  killed, so it runs in a child process (``fork`` where the platform has it,
  ``spawn`` elsewhere) whose memory is capped; the parent waits on a pipe for
  at most ``timeout`` seconds, then kills the child and answers ``False``.
  Numbers and words never start a process.
"""

from __future__ import annotations

import ast
import cmath
import multiprocessing
import re
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["answers_equal", "extract_answer", "normalize_answer"]

# --------------------------------------------------------------------------- extraction

_HASH_LINE = re.compile(r"(?<!#)####(?!#)[ \t]*([^\n]*)")
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_TOKEN_AFTER_BOX = re.compile(r"[^\s$]*")
_PHRASE = re.compile(r"\banswer(?:[ \t]+is\b[ \t]*:?|(?:\*\*)?[ \t]*:)", re.IGNORECASE)
_NUMBER_TEXT = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?|\.\d+"
_LAST_NUMBER = re.compile(rf"(?<![\w.])[-−]?(?:\\[dt]?frac\{{\d+\}}\{{\d+\}}|{_NUMBER_TEXT})")
_LEADING_NUMBER = re.compile(rf"([-−]?(?:{_NUMBER_TEXT})),?\s+[A-Za-z]{{2}}")
_SENTENCE_END = re.compile(
    r"\.(?=\s|$)|;|,\s+(?:which|where|since|because|so|as|that|this|it)\b|\s+(?:because|since)\b", re.IGNORECASE
)


def extract_answer(text: str) -> str | None:
    r"""The final answer of a solution, as written, or ``None`` when there is none.

    In priority order: the last ``#### x`` line (the rest of the line; a
    ``\boxed{}`` written *after* that line wins over it, so a markdown
    ``####`` heading cannot hide a boxed answer); the last ``\boxed{...}`` or
    ``\fbox{...}`` whose braces match, nested braces included; the last "the
    answer is x" / "final answer: x" phrase (case-insensitive, up to the end
    of the sentence, ``$`` and ``**`` removed); the last number in the text.

    Args:
        text: A solution, e.g. a model's completion.

    Returns:
        The answer's text, stripped but otherwise unnormalized (see
        :func:`normalize_answer`), or ``None``.

    Example:
        >>> extract_answer("47 + 38 = 85\n85 * 3 = 255\n#### 255")
        '255'
        >>> extract_answer(r"so $x = \boxed{\frac{1}{2}}$ after 3 steps")
        '\\frac{1}{2}'
        >>> extract_answer("The answer is 18. Not 180.")
        '18'
        >>> extract_answer("I paid 1,234 dollars in total")
        '1,234'
        >>> extract_answer("no digits here") is None
        True
    """
    hashed = _last_hash_line(text)
    boxed = _last_box(text)
    if hashed is not None and (boxed is None or boxed[0] < hashed[0]):
        return hashed[1]
    if boxed is not None:
        return boxed[1]
    for m in reversed(list(_PHRASE.finditer(text))):
        eol = text.find("\n", m.end())
        found = _trim_phrase(text[m.end() : eol if eol >= 0 else len(text)])
        if found:
            return found
    expression = _final_expression(text)
    if expression is not None:
        return expression
    numbers = _LAST_NUMBER.findall(text)
    return numbers[-1].replace("−", "-") if numbers else None


_HAS_SYMBOL = re.compile(r"[A-Za-z\\(]")


def _final_expression(text: str) -> str | None:
    r"""A bare expression ending the text (``\sqrt{8}``, ``x = 2(x+1)``, ``x**2``), or ``None``.

    The last line's right-hand side (after its last ``=``), the line itself, or its last word, whichever
    comes first that reads as an expression of the supported subset with a variable, a function or a
    bracket in it (plain numbers and words are left to the last-number rule).
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1].strip("$ ").rstrip(".").strip("$ ")
    for candidate in (last.rsplit("=", 1)[-1].strip(), last, last.split()[-1] if last.split() else ""):
        candidate = candidate.strip("$ ")
        if not candidate or not _HAS_SYMBOL.search(candidate) or len(candidate) > _MAX_MATH_CHARS:
            continue
        if _python_source(normalize_answer(candidate)) is not None and re.search(r"[\d\\(*^]", candidate):
            return candidate
    return None


def _last_hash_line(text: str) -> tuple[int, str] | None:
    """(position, rest of line) of the last non-empty ``####`` line."""
    for m in reversed(list(_HASH_LINE.finditer(text))):
        if rest := m.group(1).strip():
            return m.start(), rest
    return None


def _last_box(text: str) -> tuple[int, str] | None:
    r"""(position, content) of the last ``\boxed`` with matched braces and non-empty content."""
    boxes = list(_BOX.finditer(text))
    closing = _closing_braces(text) if boxes else {}
    for m in reversed(boxes):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            content = text[i + 1 : closing[i]].strip() if i in closing else ""
        else:  # MATH's "\boxed 5": one token
            content = _TOKEN_AFTER_BOX.match(text, i).group(0)  # type: ignore[union-attr]
        if content:
            return m.start(), content
    return None


def _trim_phrase(rest: str) -> str:
    """The answer in the text that follows "the answer is", up to the end of its sentence."""
    s = rest.strip().lstrip("*").strip()
    math = re.match(r"\$\$?(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", s)
    if math:
        s = next(g for g in math.groups() if g is not None)
    else:
        s = _SENTENCE_END.split(s, maxsplit=1)[0]
        if lead := _LEADING_NUMBER.match(s):  # "18 because ...", "5 apples", "5, and so ..."
            s = lead.group(1)
    return s.strip().strip("*$").rstrip(".").strip()


def _closing_braces(s: str) -> dict[int, int]:
    r"""Index of the matching ``}`` of every balanced ``{`` in one pass (``\{`` is literal)."""
    out: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 1
        elif s[i] == "{":
            stack.append(i)
        elif s[i] == "}" and stack:
            out[stack.pop()] = i
        i += 1
    return out


def _brace_group(s: str, i: int) -> tuple[str, int] | None:
    r"""The content of the brace group opening at ``s[i] == "{"`` and the index after it; ``\{`` is literal."""
    depth = 0
    j = i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return None


# --------------------------------------------------------------------------- LaTeX rewriting


def _latex_arg(s: str, i: int) -> tuple[str, int] | None:
    r"""One argument of a command at ``s[i:]``: a brace group or one character (``\frac12``)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return None
    if s[i] == "{":
        return _brace_group(s, i)
    if s[i] in "}\\^_":
        return None
    return s[i], i + 1


_COMMAND = re.compile(r"\\([a-zA-Z]+|.?)")
_Handler = Callable[[str, int], tuple[str, int] | None]


def _rewrite(s: str, handlers: dict[str, _Handler], unknown: Callable[[str], str | None]) -> str | None:
    r"""Rewrite every ``\command`` of ``s``: ``handlers[name](s, end_of_name)`` gives (replacement, resume index).

    Commands without a handler become ``unknown(name)``; ``None`` from either aborts the rewrite.
    """
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] != "\\":
            out.append(s[i])
            i += 1
            continue
        m = _COMMAND.match(s, i)
        name = m.group(1)  # type: ignore[union-attr]
        end = i + 1 + len(name)
        if name in handlers:
            done = handlers[name](s, end)
            if done is None:
                return None
            out.append(done[0])
            i = done[1]
        else:
            repl = unknown(name)
            if repl is None:
                return None
            out.append(repl)
            i = end
    return "".join(out)


_TEXT_COMMANDS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "textnormal",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mbox",
    "hbox",
    "operatorname",
    "boxed",
    "fbox",
)
_DROPPED_COMMANDS = frozenset(
    {
        "left",
        "right",
        "displaystyle",
        "textstyle",
        ",",
        ";",
        ":",
        "!",
        " ",
        "quad",
        "qquad",
        "$",
        "%",
        "circ",
        "big",
        "Big",
        "bigl",
        "bigr",
        "Bigl",
        "Bigr",
    }
)


def _clean_latex(s: str) -> str:
    r"""Drop formatting (``\text{}``-like wrappers, ``\left``, ``\right``, spacing, ``\%``); ``\dfrac`` -> ``\frac``."""

    def unwrap(src: str, i: int) -> tuple[str, int] | None:
        arg = _latex_arg(src, i)
        if arg is None:
            return None
        inner = _clean_latex(arg[0])
        return inner, arg[1]

    def frac(src: str, i: int) -> tuple[str, int] | None:
        num = _latex_arg(src, i)
        den = _latex_arg(src, num[1]) if num else None
        if num is None or den is None:
            return None
        return rf"\frac{{{_clean_latex(num[0])}}}{{{_clean_latex(den[0])}}}", den[1]

    handlers: dict[str, _Handler] = {name: unwrap for name in _TEXT_COMMANDS}
    handlers.update(frac=frac, dfrac=frac, tfrac=frac)
    out = _rewrite(s, handlers, lambda name: "" if name in _DROPPED_COMMANDS else "\\" + name)
    return s if out is None else out


# --------------------------------------------------------------------------- normalization

_DEC = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_PLAIN_NUMBER = re.compile(rf"(?:{_DEC})(?:[eE][-+]?\d{{1,3}})?")
_TIMES_TEN = re.compile(rf"({_DEC})\s*(?:\\times|\\cdot|\*)\s*10\^(?:\{{([-+]?\d{{1,3}})\}}|([-+]?\d))")
_SLASH = re.compile(rf"({_DEC})\s*/\s*({_DEC})")
_MIXED = re.compile(r"(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}|(\d+)\s+(\d+)/(\d+)")
_MATH_WORDS = frozenset({"pi", "sqrt", "sin", "cos", "tan", "log", "ln", "exp", "inf", "infty", "e"})
_UNIT_TAIL = re.compile(r"(.*?\d)\s*([a-zA-Z]{2,}\.?(?:\^\d)?(?:\s+[a-zA-Z]{2,}\.?(?:\^\d)?){0,3})")
_UNIT_MAX_LEN = 64
_ASSIGNMENT = re.compile(r"[a-zA-Z]\s*=\s*([^=]+)")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ")


def normalize_answer(text: str) -> str:
    r"""The canonical form of an answer, for voting: equal forms mean equal answers.

    Removes ``$``, ``\(``/``\)``, ``**``, ``\boxed{}``, ``\text{}``-like
    wrappers, ``\left``/``\right``, LaTeX spacing, a trailing period, units
    (``\%``, ``%``, ``\$``, degrees, unit words after a number) and a leading
    ``x =``. Numbers become exact canonical rationals (see the module
    docstring: ``"5.0"`` -> ``"5"``, ``"1,000"`` -> ``"1000"``, ``"1/2"``,
    ``"\frac{1}{2}"`` and ``".50"`` -> ``"0.5"``, ``"2/6"`` -> ``"1/3"``);
    lists are normalized element by element; anything else is lowercased
    (LaTeX command names excepted) with whitespace collapsed, and removed
    where it touches a symbol. Expressions are *not* simplified here:
    ``2x+2`` and ``2(x+1)`` keep different forms (:func:`answers_equal`
    knows they are equal).

    Args:
        text: An answer, e.g. from :func:`extract_answer`.

    Returns:
        The canonical string; empty when nothing is left.

    Example:
        >>> normalize_answer(r"$\dfrac{1}{2}$")
        '0.5'
        >>> normalize_answer("1,000.")
        '1000'
        >>> normalize_answer(r"50\%")
        '50'
        >>> normalize_answer(r"\text{ New  York }")
        'new york'
    """
    try:
        return _normalize(text)
    except RecursionError:  # absurdly nested input: fall back to the plain text form
        return _canonical_text(text)


def _normalize(text: str) -> str:
    s = _clean_latex(_DEGREES.sub(" ", text.replace("\\$", " ")))
    s = s.replace("$", " ").replace("\\(", " ").replace("\\)", " ").replace("\\[", " ").replace("\\]", " ")
    s = s.replace("**", " ").replace("−", "-").replace("°", " ").replace("%", " ")
    s = s.strip().rstrip(".").strip()
    if m := _ASSIGNMENT.fullmatch(s):
        s = m.group(1).strip()
    if len(s) <= _UNIT_MAX_LEN and (m := _UNIT_TAIL.fullmatch(s)):
        words = {w.strip(".").split("^")[0].lower() for w in m.group(2).split()}
        if not words & _MATH_WORDS and _parse_number_safely(m.group(1)) is not None:
            s = m.group(1)
    number = _parse_number_safely(s)
    if number is not None:
        return _format_number(number)
    listed = _split_list(s)
    if listed is not None:
        opener, items, closer = listed
        if len(items) > 1:
            return opener + ",".join(_normalize(x) for x in items) + closer
        if opener == "(":  # "(5)", "(A)"
            return _normalize(items[0])
    return _canonical_text(s)


def _parse_number(s: str) -> Fraction | None:
    r"""An exact rational from a number literal (``-1,234.5``, ``1e3``, ``3/4``, ``\frac{3}{4}``, ``2 1/2``)."""
    s = s.strip()
    sign = -1 if s.startswith("-") else 1
    if s.startswith(("-", "+")):
        s = s[1:].strip()
    if not s or s.startswith(("-", "+")):
        return None
    value: Fraction | None = None
    if _PLAIN_NUMBER.fullmatch(s):
        value = Fraction(s.replace(",", ""))
    elif m := _TIMES_TEN.fullmatch(s):
        value = Fraction(m.group(1).replace(",", "")) * Fraction(10) ** int(m.group(2) or m.group(3))
    elif m := _SLASH.fullmatch(s):
        den = Fraction(m.group(2).replace(",", ""))
        value = Fraction(m.group(1).replace(",", "")) / den if den else None
    elif m := _MIXED.fullmatch(s):
        whole, num, den = (int(g) for g in (m.groups()[:3] if m.group(1) else m.groups()[3:]))
        value = whole + Fraction(num, den) if 0 < num < den else None
    elif s.startswith("\\frac"):
        num = _latex_arg(s, 5)
        den = _latex_arg(s, num[1]) if num else None
        if num is not None and den is not None and den[1] == len(s):
            top, bottom = _parse_number(num[0]), _parse_number(den[0])
            value = top / bottom if top is not None and bottom else None
    return None if value is None else sign * value


def _parse_number_safely(s: str) -> Fraction | None:
    try:
        return _parse_number(s)
    except (ValueError, ZeroDivisionError):  # a literal too long for int(), or x/0
        return None


def _format_number(q: Fraction) -> str:
    """An integer, else a terminating decimal, else ``p/q`` in lowest terms."""
    if q.denominator == 1:
        return str(q.numerator)
    d, twos, fives = q.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{q.numerator}/{q.denominator}"
    places = max(twos, fives)
    digits = str(abs(q.numerator) * 10**places // q.denominator).rjust(places + 1, "0")
    return ("-" if q < 0 else "") + digits[:-places] + "." + digits[-places:]


def _split_list(s: str) -> tuple[str, list[str], str] | None:
    """(opener, items, closer) of ``s`` split at top-level commas; ``None`` when brackets do not balance."""
    opener = closer = ""
    if s.startswith(("(", "[")) and s.endswith((")", "]")) and _matching_close(s) == len(s) - 1:
        opener, closer, s = s[0], s[-1], s[1:-1]
    items, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(s[start:i].strip())
            start = i + 1
        if depth < 0:
            return None
    items.append(s[start:].strip())
    return (opener, items, closer) if depth == 0 else None


def _matching_close(s: str) -> int:
    """Index of the bracket that closes ``s[0]``, any bracket kind (intervals mix them), or -1."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _canonical_text(s: str) -> str:
    """Whitespace collapsed and dropped next to symbols, lowercase outside LaTeX commands, ``^{2}`` -> ``^2``."""
    s = re.sub(r"\s+", " ", s).strip().strip("\"'").strip()
    s = re.sub(r" (?=\W)|(?<=\W) ", "", s)
    s = re.sub(r"([\^_])\{(\w)\}", r"\1\2", s)
    return re.sub(r"\\[a-zA-Z]+|[^\\]+", lambda m: m.group(0) if m.group(0)[0] == "\\" else m.group(0).lower(), s)


# --------------------------------------------------------------------------- equivalence


def answers_equal(a: str | None, b: str | None, *, timeout: float = 2.0) -> bool:
    r"""Whether two answers are mathematically equal.

    Equal normal forms (:func:`normalize_answer`) are equal; numbers compare
    as exact rationals (``0.50`` == ``.5`` == ``\frac12`` == ``1/2``,
    ``50%`` == ``50``); lists compare element by element; words compare whole,
    ignoring case and whitespace; expressions compare exactly when they are
    constant and rational (``0.1+0.2`` == ``0.3``), otherwise symbolically
    with sympy (``2x+2`` == ``2(x+1)``, ``\sqrt{8}`` == ``2\sqrt{2}``) in a
    child process that is killed after ``timeout`` seconds.

    Args:
        a: An answer, or ``None`` (which equals nothing, not even ``None``).
        b: Another answer, or ``None``.
        timeout: Seconds the symbolic comparison may take; past it the
            answers count as different. ``0`` skips it.

    Returns:
        ``True`` when the answers are equal; ``False`` when they differ or
        equality could not be shown in time.

    Example:
        >>> answers_equal("0.50", r"\frac{1}{2}")
        True
        >>> answers_equal("18", "180")
        False
        >>> answers_equal("2x+2", "2(x+1)")
        True
        >>> answers_equal(" Paris", "paris."), answers_equal("Paris", "Parisian")
        (True, False)
        >>> answers_equal(None, None)
        False
    """
    if a is None or b is None:
        return False
    deadline = time.monotonic() + timeout
    na, nb = normalize_answer(a), normalize_answer(b)
    if _equal_normalized(na, nb, deadline):
        return True
    if na and nb and not (_understood(na) and _understood(nb)):
        return _in_child(_math_verify_worker, (a, b), deadline - time.monotonic())
    return False


def _understood(n: str) -> bool:
    """Whether the hand-written path reads a normal form: a number, a list, an expression of its subset, a word."""
    if len(n) > _MAX_MATH_CHARS or re.fullmatch(r"[^\\\d^_{}|!<>=]+", n):
        return True  # too long for math, or words (no digit, no LaTeX, no operator beyond + - * /)
    split = _split_list(n)
    if split is not None and len(split[1]) > 1:
        return all(_understood(x) for x in split[1])
    return _python_source(n) is not None


def _equal_normalized(na: str, nb: str, deadline: float) -> bool:
    """Equality of two normal forms; the symbolic checks of all list elements share one deadline."""
    if not na or not nb:
        return False
    if na == nb:
        return True
    la, lb = _split_list(na), _split_list(nb)
    if la is not None and lb is not None and (len(la[1]) > 1 or len(lb[1]) > 1):
        same_shape = la[0] == lb[0] and la[2] == lb[2] and len(la[1]) == len(lb[1])
        return same_shape and all(_equal_normalized(x, y, deadline) for x, y in zip(la[1], lb[1], strict=True))
    if len(na) > _MAX_MATH_CHARS or len(nb) > _MAX_MATH_CHARS:
        return False
    try:
        src_a, src_b = _python_source(na), _python_source(nb)
        if src_a is None or src_b is None:
            return False  # words, or math outside the supported subset: only equal normal forms are equal
        tree_a, tree_b = _parse(src_a), _parse(src_b)
        if tree_a is None or tree_b is None:
            return False
        exact_a, exact_b = _exact(tree_a), _exact(tree_b)
        if exact_a is not None and exact_b is not None:
            return exact_a == exact_b
        if _numerically_different(tree_a, tree_b):
            return False
    except RecursionError:
        return False
    return _symbolic_equal(src_a, src_b, deadline - time.monotonic())


# LaTeX subset -> Python source over whitelisted names ----------------------------------------

_MAX_MATH_CHARS = 400
"""Longer normal forms compare as strings only: answers are short, and this bounds every recursion."""
_FUNCTIONS = {"sqrt", "sin", "cos", "tan", "log", "ln", "exp"}
_CONSTANTS = {"pi"}
_TOKEN = re.compile(r"\s+|(?P<num>\d+\.\d*|\.\d+|\d+)|(?P<name>[a-zA-Z]+(?:_[a-zA-Z0-9]+)?)|(?P<op>\*\*|[-+*/()])")
_SYMBOL_COMMANDS = {"pi": " pi ", "cdot": "*", "times": "*", "ast": "*", "div": "/"}


def _python_source(s: str) -> str | None:
    r"""Python source for a normalized answer in the supported LaTeX subset, or ``None``.

    ``\frac``, ``\sqrt`` (with an index too), ``\pi``, ``\cdot``/``\times``/``\div``,
    ``\sin``-like functions, ``^``, braces, implicit multiplication (``2x``,
    ``2(x+1)``, ``x\sqrt{3}``); decimals become exact ratios. Identifiers are
    single letters (``x``, ``x_1``), the functions and ``pi``: a word is not math.
    """

    def frac(src: str, i: int) -> tuple[str, int] | None:
        num = _latex_arg(src, i)
        den = _latex_arg(src, num[1]) if num else None
        if num is None or den is None:
            return None
        top, bottom = _python_source(num[0]), _python_source(den[0])
        return None if top is None or bottom is None else (f"(({top})/({bottom}))", den[1])

    def sqrt(src: str, i: int) -> tuple[str, int] | None:
        index = re.match(r"\s*\[([^\]]*)\]", src[i:])
        arg = _latex_arg(src, i + index.end() if index else i)
        if arg is None:
            return None
        body = _python_source(arg[0])
        root = _python_source(index.group(1)) if index else "2"
        if body is None or root is None:
            return None
        return (f"(sqrt({body}))" if not index else f"(({body})**(1/({root})))"), arg[1]

    def word(name: str) -> str | None:
        if name in _SYMBOL_COMMANDS:
            return _SYMBOL_COMMANDS[name]
        return f" {name} " if name in _FUNCTIONS else None

    s = s.replace("×", "*").replace("·", "*").replace("÷", "/")
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)
    out = _rewrite(s, {"frac": frac, "sqrt": sqrt}, word)
    if out is None:
        return None
    out = out.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")").replace("^", "**")
    return _tokens_to_source(out)


def _tokens_to_source(s: str) -> str | None:
    """Validate tokens, make multiplication explicit and decimals exact; ``None`` on anything else."""
    out: list[str] = []
    prev = ""  # kind of the previous token: "operand", "function", "(", ")" or "operator"
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            return None
        pos = m.end()
        if m.group("num") is not None:
            tok, kind = m.group("num"), "operand"
            if "." in tok:
                whole, frac = tok.split(".")
                tok = f"({(whole + frac).lstrip('0') or '0'}/1{'0' * len(frac)})"
            else:
                tok = tok.lstrip("0") or "0"
        elif m.group("name") is not None:
            tok = m.group("name")
            if tok in _FUNCTIONS:
                kind = "function"
            elif tok in _CONSTANTS or re.fullmatch(r"[a-zA-Z](?:_[a-zA-Z0-9]+)?", tok):
                kind = "operand"
            else:
                return None
        elif m.group("op") is not None:
            tok = m.group("op")
            kind = tok if tok in "()" else "operator"
        else:
            continue  # whitespace
        if prev == "function" and tok != "(":
            return None
        if prev in ("operand", ")") and kind in ("operand", "function", "("):
            out.append("*")
        out.append(tok)
        prev = kind
    return "".join(out) if out else None


_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load)
_NODES += (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def _parse(src: str) -> ast.expr | None:
    """The validated AST of ``src``: arithmetic, integer constants, whitelisted calls and names only."""
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            return None
        if isinstance(node, ast.Constant) and type(node.value) is not int:
            return None
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name)
            or node.func.id not in _FUNCTIONS
            or len(node.args) != 1
            or node.keywords
        ):
            return None
    return tree.body


# In-process evaluation ------------------------------------------------------------------------

_MAX_BITS = 1 << 16


def _exact(node: ast.expr) -> Fraction | None:
    """The exact value of a constant rational expression; ``None`` otherwise (symbols, roots, huge powers)."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        x = _exact(node.operand)
        return None if x is None else (-x if isinstance(node.op, ast.USub) else x)
    if not isinstance(node, ast.BinOp):
        return None
    x, y = _exact(node.left), _exact(node.right)
    if x is None or y is None:
        return None
    if isinstance(node.op, ast.Add):
        return x + y
    if isinstance(node.op, ast.Sub):
        return x - y
    if isinstance(node.op, ast.Mult):
        return x * y
    if isinstance(node.op, ast.Div):
        return x / y if y else None
    if y.denominator != 1 or (x == 0 and y < 0):
        return None
    size = max(x.numerator.bit_length(), x.denominator.bit_length(), 1) * abs(y.numerator)
    return x**y.numerator if size <= _MAX_BITS else None


_POINTS = ((0.7548, 1.3215, 2.1731, 0.5862), (1.8934, 0.9311, 1.4427, 2.6170), (1.1283, 2.3389, 0.8147, 1.6692))
_REL_TOL = 1e-6


def _numerically_different(a: ast.expr, b: ast.expr) -> bool:
    """Whether ``a`` and ``b`` clearly differ at one of a few fixed points (complex floating point)."""
    names = sorted({n.id for t in (a, b) for n in ast.walk(t) if isinstance(n, ast.Name)} - _FUNCTIONS - _CONSTANTS)
    for point in _POINTS:
        env = {name: point[i % len(point)] + 0.37 * (i // len(point)) for i, name in enumerate(names)}
        va, vb = _approx(a, env), _approx(b, env)
        if va is not None and vb is not None and abs(va - vb) > _REL_TOL * max(1.0, abs(va), abs(vb)):
            return True
    return False


_CMATH = {"sqrt": cmath.sqrt, "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan}
_CMATH.update(log=cmath.log, ln=cmath.log, exp=cmath.exp)


def _approx(node: ast.expr, env: dict[str, float]) -> complex | None:
    """The complex value of ``node`` at ``env``; ``None`` on overflow, a pole, or a non-finite result."""
    try:
        value = _approx_unchecked(node, env)
    except (ArithmeticError, ValueError):
        return None
    return value if cmath.isfinite(value) else None


def _approx_unchecked(node: ast.expr, env: dict[str, float]) -> complex:
    if isinstance(node, ast.Constant):
        return complex(node.value)
    if isinstance(node, ast.Name):
        return complex(cmath.pi if node.id == "pi" else env[node.id])
    if isinstance(node, ast.Call):
        return _CMATH[node.func.id](_approx_unchecked(node.args[0], env))  # type: ignore[attr-defined]
    if isinstance(node, ast.UnaryOp):
        x = _approx_unchecked(node.operand, env)
        return -x if isinstance(node.op, ast.USub) else x
    assert isinstance(node, ast.BinOp)
    x, y = _approx_unchecked(node.left, env), _approx_unchecked(node.right, env)
    if isinstance(node.op, ast.Pow) and abs(y) > 1e6:
        raise OverflowError("exponent too large to evaluate in floating point")
    return _binop(node.op, x, y)


def _binop(op: ast.operator, x: Any, y: Any) -> Any:
    """``x op y`` for the whitelisted operators (complex numbers and sympy expressions alike)."""
    if isinstance(op, ast.Add):
        return x + y
    if isinstance(op, ast.Sub):
        return x - y
    if isinstance(op, ast.Mult):
        return x * y
    if isinstance(op, ast.Div):
        return x / y
    return x**y


# Symbolic comparison in a killable child process ---------------------------------------------

_CHILD_MEMORY = 2 << 30


def _symbolic_equal(src_a: str, src_b: str, timeout: float) -> bool:
    """``sympy.simplify(a - b) == 0``, decided in a child process that is killed after ``timeout`` seconds."""
    return _in_child(_symbolic_worker, (src_a, src_b), timeout)


def _in_child(worker: Callable[..., None], args: tuple[str, str], timeout: float) -> bool:
    """``worker(*args, send)``'s verdict, computed in a child process that is killed after ``timeout`` seconds."""
    if timeout <= 0:
        return False
    try:
        import sympy  # noqa: F401  (loaded before the fork, so a forked child starts with it)
    except ImportError as e:
        raise ImportError("answers_equal compares expressions with sympy: pip install sympy") from e

    if worker is _math_verify_worker:
        try:  # loaded before the fork too, once per process, not once per comparison
            import math_verify  # noqa: F401
        except ImportError:
            return False
    fork = "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=worker, args=(*args, send), name="answers-sympy")
    child.start()
    send.close()
    try:
        return bool(receive.poll(timeout) and receive.recv())
    except (EOFError, OSError):  # the child died: out of memory, or a crash inside sympy
        return False
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def _symbolic_worker(src_a: str, src_b: str, send: Connection) -> None:
    """Child process: compare with sympy and send the verdict."""
    _cap_memory(_CHILD_MEMORY)
    try:
        import sympy

        a, b = _parse(src_a), _parse(src_b)
        if a is None or b is None:
            verdict = False
        else:
            diff = _to_sympy(a, sympy) - _to_sympy(b, sympy)
            verdict = diff == 0 or sympy.simplify(diff) == 0
            if not verdict and not diff.free_symbols:
                verdict = diff.equals(0) is True
    except Exception:  # any failure inside sympy means "not shown equal"
        verdict = False
    send.send(bool(verdict))
    send.close()


def _math_verify_worker(a: str, b: str, send: Connection) -> None:
    """Child process: math-verify's verdict on two answers the hand-written path cannot read (sets, binomials ...)."""
    _cap_memory(_CHILD_MEMORY)
    try:
        import logging

        from math_verify import parse, verify

        logging.getLogger("math_verify").setLevel(logging.ERROR)  # the timeout is this process's, not theirs

        def read(s: str) -> Any:
            return parse(s if "$" in s else f"${s}$", parsing_timeout=None)  # type: ignore[arg-type]

        def same(gold: Any, target: Any) -> bool:
            return bool(verify(gold, target, float_rounding=12, timeout_seconds=None))

        pa, pb = read(a), read(b)
        verdict = bool(pa and pb and (same(pb, pa) or same(pa, pb)))  # math-verify's check is one-sided
    except Exception:  # not installed, or it could not read them: not shown equal
        verdict = False
    send.send(verdict)
    send.close()


def _cap_memory(extra: int) -> None:
    """Limit the address space to its current size plus ``extra`` bytes, where the platform allows it."""
    try:
        import os
        import resource

        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = current + extra
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def _to_sympy(node: ast.expr, sympy):  # sympy: the module, imported lazily by the caller
    if isinstance(node, ast.Constant):
        return sympy.Integer(node.value)
    if isinstance(node, ast.Name):
        return sympy.pi if node.id == "pi" else sympy.Symbol(node.id)
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        fn = sympy.log if name == "ln" else getattr(sympy, name)
        return fn(_to_sympy(node.args[0], sympy))
    if isinstance(node, ast.UnaryOp):
        x = _to_sympy(node.operand, sympy)
        return -x if isinstance(node.op, ast.USub) else x
    assert isinstance(node, ast.BinOp)
    return _binop(node.op, _to_sympy(node.left, sympy), _to_sympy(node.right, sympy))
