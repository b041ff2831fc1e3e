"""Answer equivalence: the hand-written path, math-verify alone, and the two together, on two tables.

    python benchmarks/answers.py

1. The project's own table (``tests/verifiers/test_answers.py``: ``EQUAL`` and ``SECOND_OPINION``), written
   for its conventions: a percent is a unit, lists are ordered, words compare whole.
2. A table of MATH-style LaTeX answer pairs written for this comparison (below), labelled by the
   mathematics: radicals, intervals, sets, matrices, choices, functions, degrees.

For each: pairs judged right by ``verifiers.answers.answers_equal`` (which asks math-verify only about
what it cannot read), by math-verify alone (``verify(parse(b), parse(a))``, either way round), and the
seconds each took. Writes ``benchmarks/results/answers.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LATEX = [
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    (r"\dfrac{3\sqrt{5}}{5}", r"\frac{3}{\sqrt{5}}", True),
    (r"(-\infty, 3)", r"(-\infty,3)", True),
    (r"(-\infty, 3]", r"(-\infty, 3)", False),
    (r"[2, 5) \cup (5, \infty)", r"[2,5)\cup(5,\infty)", True),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    (r"x \in [0, 1]", r"[0,1]", True),
    (r"\frac{\pi}{4}", r"45^\circ", False),
    (r"\frac{\pi}{3}", r"\frac{2\pi}{6}", True),
    (r"2\sqrt{2}+1", r"1+\sqrt{8}", True),
    (r"\sqrt{18}", r"3\sqrt{2}", True),
    (r"\frac{1}{2}x^2", r"\frac{x^2}{2}", True),
    (r"y = 2x + 3", r"2x+3", True),
    (r"x = 4", r"4", True),
    (r"3, 5", r"5, 3", False),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True),
    (r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}", r"\begin{pmatrix} 1 & 0 \\ 0 & 2 \end{pmatrix}", False),
    (r"\text{(C)}", r"C", True),
    (r"\textbf{(B)}", r"B", True),
    (r"12\%", r"12", True),
    (r"0.\overline{3}", r"\frac{1}{3}", True),
    (r"\frac{7}{3}", r"2\frac{1}{3}", True),
    (r"-\frac{3}{2}", r"-1.5", True),
    (r"1.5", r"\frac{3}{2}", True),
    (r"\sqrt{x^2}", r"|x|", True),
    (r"e^{i\pi}", r"-1", True),
    (r"\log_2 8", r"3", True),
    (r"\binom{5}{2}", r"10", True),
    (r"5!", r"120", True),
    (r"\infty", r"\infty", True),
    (r"x^2 - 1", r"(x-1)(x+1)", True),
    (r"\frac{x+1}{x-1}", r"1 + \frac{2}{x-1}", True),
    (r"2^{3}\cdot 3", r"24", True),
    (r"3\times 10^{-2}", r"0.03", True),
    (r"\frac{1}{4}", r"0.25", True),
    (r"\frac{1}{4}", r"0.2", False),
    (r"(1, -2)", r"(1,-2)", True),
    (r"(1, -2)", r"(-2, 1)", False),
    (r"\$5.00", r"5", True),
    (r"10\text{ inches}", r"10", True),
    (r"a=2, b=3", r"(2, 3)", True),
    (r"\tan\frac{\pi}{4}", r"1", True),
    (r"\cos 60^\circ", r"\frac12", True),
    (r"x > 3", r"(3, \infty)", True),
]


def math_verify_alone(a: str | None, b: str | None) -> bool:
    """math-verify on its own, as its documentation uses it (answers wrapped in ``$...$``)."""
    from math_verify import parse, verify

    if not a or not b:
        return False
    pa, pb = parse(a if "$" in a else f"${a}$"), parse(b if "$" in b else f"${b}$")
    return bool(pa and pb and (verify(pb, pa) or verify(pa, pb)))


def score(table: list[tuple[str | None, str | None, bool]]) -> dict[str, object]:
    """Pairs judged right and seconds taken, by each way of comparing."""
    from verifiers.answers import answers_equal

    out: dict[str, object] = {"pairs": len(table)}
    for name, equal in (("archon", answers_equal), ("math_verify", math_verify_alone)):
        start = time.perf_counter()
        verdicts = [bool(equal(a, b)) for a, b, _ in table]
        out[name] = {
            "right": sum(v == expected for v, (_, _, expected) in zip(verdicts, table, strict=True)),
            "seconds": time.perf_counter() - start,
            "wrong": [[a, b] for v, (a, b, expected) in zip(verdicts, table, strict=True) if v != expected],
        }
    return out


def main() -> None:
    """Score both tables and write the JSON."""
    import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from tests.verifiers.test_answers import EQUAL, SECOND_OPINION

    own = [(a, b, e) for a, b, e in EQUAL] + list(SECOND_OPINION)
    result = {
        "machine": {"cpu": platform.machine(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "own_table": score(own),
        "latex_table": score(LATEX),
    }
    for name in ("own_table", "latex_table"):
        r = result[name]
        print(
            f"{name:12} {r['pairs']:3} pairs: archon {r['archon']['right']:3} right ({r['archon']['seconds']:.2f} s), "
            f"math-verify alone {r['math_verify']['right']:3} ({r['math_verify']['seconds']:.2f} s)"
        )
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "answers.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
