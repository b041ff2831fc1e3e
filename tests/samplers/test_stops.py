"""find_stop / apply_stop: earliest match, longest at ties, matches straddling ``start``, cutting the text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samplers.stops import apply_stop, find_stop


def reference(text, stops, start=0):
    """Brute force: of all occurrences that end after ``start``, the earliest, then the longest."""
    hits = [(i, s) for s in stops for i in range(len(text)) if text.startswith(s, i) and i + len(s) > start]
    return min(hits, key=lambda h: (h[0], -len(h[1])), default=None)


# ---------------------------------------------------------------------------------------------- find_stop


def test_the_earliest_match_wins_whatever_the_order_of_stops():
    text = "a = b\nc = d"
    assert find_stop(text, ["=", "\n"]) == (2, "=")
    assert find_stop(text, ["\n", "="]) == (2, "=")
    assert find_stop("abcd", ["bcd", "ab"]) == (0, "ab")  # earliest start, even though "bcd" is longer


def test_ties_at_one_index_go_to_the_longest_stop():
    assert find_stop("x\n\ny", ["\n", "\n\n"]) == (1, "\n\n")
    assert find_stop("x\n\ny", ["\n\n", "\n"]) == (1, "\n\n")
    assert find_stop("x\ny", ["\n", "\n\n"]) == (1, "\n")


def test_no_match_gives_none():
    assert find_stop("abc", ["x", "abcd"]) is None
    assert find_stop("", ["x"]) is None
    assert find_stop("abc", []) is None


def test_matches_that_straddle_start_are_found():
    text = "hello world"  # "o w" spans indices 4..6
    assert find_stop(text, ["o w"], start=5) == (4, "o w")
    assert find_stop(text, ["o w"], start=6) == (4, "o w")  # its last character is at start
    assert find_stop(text, ["o w"], start=7) is None  # it ended before start: already searched
    assert find_stop(text, ["o w"], start=100) is None


def test_a_match_wholly_before_start_is_skipped_for_a_later_one():
    assert find_stop("a.b.c", ["."], start=2) == (3, ".")
    assert find_stop("a.b..c", [".", ".."], start=3) == (3, "..")
    # a longer stop straddling start beats a shorter one wholly after it
    assert find_stop("ab\n\ncd\n", ["\n\n", "\n"], start=3) == (2, "\n\n")


# ---------------------------------------------------------------------------------------------- apply_stop


def test_apply_stop_cuts_before_or_after_the_stop():
    assert apply_stop("step one\nstep two", ["\n"]) == ("step one", "\n")
    assert apply_stop("step one\nstep two", ["\n"], include_stop=True) == ("step one\n", "\n")
    assert apply_stop("x\n\ny", ["\n", "\n\n"], include_stop=True) == ("x\n\n", "\n\n")
    assert apply_stop("no stop here", ["\n"]) == ("no stop here", None)
    assert apply_stop("\nrest", ["\n"]) == ("", "\n")
    assert apply_stop("", ["\n"], include_stop=True) == ("", None)


def test_a_kept_stop_may_itself_contain_another_stop():
    # Why "the result contains no stop" holds only for include_stop=False: an overlapping stop comes along.
    text, stop = apply_stop("xab", ["ab", "b"], include_stop=True)
    assert (text, stop) == ("xab", "ab")
    assert "b" in text


# ---------------------------------------------------------------------------------------------- properties

alphabet = st.sampled_from("ab\n=")
texts = st.text(alphabet, max_size=30)
stop_lists = st.lists(st.text(alphabet, min_size=1, max_size=4), max_size=4)


@settings(max_examples=300)
@given(text=texts, stops=stop_lists, where=st.floats(0, 1.2))
def test_find_stop_matches_the_brute_force_reference(text, stops, where):
    start = int(where * len(text))  # mostly inside the text, sometimes past its end
    assert find_stop(text, stops, start) == reference(text, stops, start)


@given(text=texts, stops=stop_lists, cut=st.integers(0, 30))
def test_searching_only_the_new_tail_loses_nothing(text, stops, cut):
    """How a decoder calls it: if the text so far had no stop, searching from its end equals searching it all."""
    cut = min(cut, len(text))
    if find_stop(text[:cut], stops) is None:
        assert find_stop(text, stops, start=cut) == find_stop(text, stops)


@given(text=texts, stops=stop_lists)
def test_apply_stop_without_the_stop_leaves_no_stop_in_the_text(text, stops):
    cut, stop = apply_stop(text, stops)
    assert text.startswith(cut)
    # The cut is at the earliest start of any occurrence, so no occurrence of any stop fits before it.
    assert not any(s in cut for s in stops)
    if stop is None:
        assert cut == text
    else:
        assert stop in stops and text[len(cut) :].startswith(stop)
    assert apply_stop(cut, stops) == (cut, None)


@given(text=texts, stops=stop_lists)
def test_apply_stop_with_the_stop_ends_at_the_first_stop(text, stops):
    kept, stop = apply_stop(text, stops, include_stop=True)
    cut, same = apply_stop(text, stops)
    assert stop == same and text.startswith(kept)
    if stop is None:
        assert kept == text
    else:
        assert kept == cut + stop
        # other stops may occur inside the kept stop (see above), but none starts before it
        assert all(i >= len(cut) for s in stops for i in range(len(kept)) if kept.startswith(s, i))
    assert apply_stop(kept, stops, include_stop=True) == (kept, stop)  # idempotent


@pytest.mark.parametrize("stop", ["\n", "ab", "=="])
def test_a_single_stop_cuts_at_its_first_occurrence(stop):
    text = f"x{stop}y{stop}z"
    assert apply_stop(text, [stop]) == ("x", stop)
    assert apply_stop(text, [stop], include_stop=True) == (f"x{stop}", stop)
