"""MicroBatcher: coalescing concurrent submits into batches, splitting, failures, cancellation, loops."""

import asyncio
import threading
import time

import pytest

from archon.core.batcher import MicroBatcher

MODES = pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "inline"])


class Recorder:
    """A batch function that records every batch it ran (and its thread) and returns ``f(item)`` per item."""

    def __init__(self, f=lambda x: x * 10):
        self.f = f
        self.batches: list[list] = []
        self.threads: list[str] = []

    def __call__(self, items):
        self.batches.append(list(items))
        self.threads.append(threading.current_thread().name)
        return [self.f(x) for x in items]


def make(threaded, run_batch=None, **kw):
    rec = run_batch if run_batch is not None else Recorder()
    return rec, MicroBatcher(rec, threaded=threaded, **kw)


def run(main, timeout=10.0):
    """``asyncio.run`` that fails instead of hanging when a result never comes."""
    return asyncio.run(asyncio.wait_for(main, timeout))


async def wait_event(event: threading.Event, timeout: float = 5.0) -> None:
    """Wait for a thread's event without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        assert time.monotonic() < deadline, "the batch never started"
        await asyncio.sleep(0.001)


async def hops(k: int) -> None:
    for _ in range(k):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------- basics


@MODES
def test_concurrent_submits_form_one_batch_in_order(threaded):
    rec, b = make(threaded)

    async def main():
        return await asyncio.gather(*(b.submit(i) for i in range(10)))

    try:
        assert run(main()) == [i * 10 for i in range(10)]
    finally:
        b.close()
    assert rec.batches == [list(range(10))]
    assert (b.stats.batches, b.stats.items, b.stats.largest) == (1, 10, 10)


@MODES
def test_batches_run_on_the_worker_thread_only_when_threaded(threaded):
    rec, b = make(threaded, name="test-worker")

    async def main():
        return await asyncio.gather(b.submit(1), b.submit(2))

    try:
        run(main())
    finally:
        b.close()
    if threaded:
        assert rec.threads[0].startswith("test-worker")
    else:
        assert rec.threads[0] == threading.main_thread().name


@MODES
def test_successive_steps_of_each_problem_form_one_batch_per_step(threaded):
    """The operator pattern: every problem loops over steps; each step of all problems is one batch."""
    rec, b = make(threaded)

    async def problem(i):
        x = i
        for _ in range(3):
            x = await b.submit(x)
        return x

    async def main():
        return await asyncio.gather(*(problem(i) for i in range(6)))

    try:
        assert run(main()) == [i * 1000 for i in range(6)]
    finally:
        b.close()
    assert [len(batch) for batch in rec.batches] == [6, 6, 6]
    assert (b.stats.batches, b.stats.items, b.stats.largest) == (3, 18, 6)


def test_invalid_options_are_refused():
    for kw in ({"max_items": 0}, {"max_tokens": 0}, {"settle": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            MicroBatcher(lambda items: items, **kw)


# ---------------------------------------------------------------------------------------------- failures


@MODES
def test_a_per_item_exception_fails_only_that_caller(threaded):
    boom = ValueError("item 2 is bad")
    rec, b = make(threaded, Recorder(lambda x: boom if x == 2 else x + 1))

    async def main():
        return await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)

    try:
        results = run(main())
    finally:
        b.close()
    assert results[:2] == [1, 2]
    assert results[2] is boom
    assert results[3] == 4
    assert len(rec.batches) == 1


@MODES
def test_an_exception_raised_by_run_batch_fails_every_item_of_that_batch_only(threaded):
    def run_batch(items):
        if "bad" in items:
            raise KeyError("backend down")
        return [x.upper() for x in items]

    _, b = make(threaded, run_batch)

    async def main():
        first = await asyncio.gather(*(b.submit(x) for x in ("a", "bad", "c")), return_exceptions=True)
        second = await asyncio.gather(*(b.submit(x) for x in ("d", "e")))
        return first, second

    try:
        first, second = run(main())
    finally:
        b.close()
    assert all(isinstance(r, KeyError) and "backend down" in str(r) for r in first)
    assert second == ["D", "E"]  # the batcher carries on after a failed batch


@MODES
def test_a_wrong_number_of_results_fails_the_batch(threaded):
    _, b = make(threaded, lambda items: list(items)[:-1])

    async def main():
        return await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)

    try:
        results = run(main())
    finally:
        b.close()
    assert all(isinstance(r, RuntimeError) and "2 results for 3 items" in str(r) for r in results)


# ---------------------------------------------------------------------------------------------- splitting


@MODES
def test_max_items_splits_batches_in_submission_order(threaded):
    rec, b = make(threaded, max_items=4)

    async def main():
        return await asyncio.gather(*(b.submit(i) for i in range(10)))

    try:
        assert run(main()) == [i * 10 for i in range(10)]
    finally:
        b.close()
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert (b.stats.batches, b.stats.items, b.stats.largest) == (3, 10, 4)


@MODES
def test_max_tokens_splits_batches_and_an_oversize_item_runs_alone(threaded):
    rec, b = make(threaded, max_tokens=7)
    sizes = {"a": 3, "b": 3, "c": 3, "big": 10, "d": 1}

    async def main():
        return await asyncio.gather(*(b.submit(x, size=n) for x, n in sizes.items()))

    try:
        assert run(main()) == [x * 10 for x in sizes]
    finally:
        b.close()
    # Batches keep submission order (an item that does not fit closes the batch): "d" does not jump ahead.
    assert rec.batches == [["a", "b"], ["c"], ["big"], ["d"]]
    for batch in rec.batches:
        assert len(batch) == 1 or sum(sizes[x] for x in batch) <= 7


def test_sizes_below_one_count_as_one_token():
    rec, b = make(False, max_tokens=2)

    async def main():
        return await asyncio.gather(*(b.submit(i, size=0) for i in range(3)))

    try:
        run(main())
    finally:
        b.close()
    assert rec.batches == [[0, 1], [2]]


# ---------------------------------------------------------------------------------------------- concurrency


def test_items_submitted_while_a_batch_computes_go_to_the_next_batch():
    started, gate = threading.Event(), threading.Event()
    batches = []

    def run_batch(items):
        batches.append(list(items))
        if items == ["a"]:
            started.set()
            assert gate.wait(5)
        return [x.upper() for x in items]

    b = MicroBatcher(run_batch, threaded=True)

    async def main():
        first = asyncio.create_task(b.submit("a"))
        await wait_event(started)
        late = [asyncio.create_task(b.submit(x)) for x in "bc"]
        await hops(20)  # the loop stays free while the batch computes; b and c wait in the queue
        assert not first.done()
        gate.set()
        return await asyncio.gather(first, *late)

    try:
        assert run(main()) == ["A", "B", "C"]
    finally:
        gate.set()
        b.close()
    assert batches == [["a"], ["b", "c"]]


@MODES
def test_a_caller_cancelled_before_the_flush_is_skipped(threaded):
    rec, b = make(threaded)

    async def main():
        tasks = [asyncio.create_task(b.submit(i)) for i in range(4)]
        await asyncio.sleep(0)  # every task has submitted; the flush is settle iterations away
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = run(main())
    finally:
        b.close()
    assert isinstance(results[1], asyncio.CancelledError)
    assert [results[0], results[2], results[3]] == [0, 20, 30]
    assert rec.batches == [[0, 2, 3]]
    assert b.stats.items == 3


def test_a_caller_cancelled_while_its_batch_computes_does_not_break_the_others():
    started, gate = threading.Event(), threading.Event()
    batches = []

    def run_batch(items):
        batches.append(list(items))
        if len(batches) == 1:
            started.set()
            assert gate.wait(5)
        return [x * 10 for x in items]

    b = MicroBatcher(run_batch, threaded=True)

    async def main():
        tasks = [asyncio.create_task(b.submit(i)) for i in range(3)]
        await wait_event(started)
        tasks[1].cancel()
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        again = await b.submit(7)  # the batcher still works
        return results, again

    try:
        results, again = run(main())
    finally:
        gate.set()
        b.close()
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], asyncio.CancelledError)
    assert again == 70
    assert batches == [[0, 1, 2], [7]]


@MODES
def test_the_batcher_works_across_successive_event_loops(threaded):
    rec, b = make(threaded)

    async def abandon():
        # A submit still waiting when its loop ends: asyncio.run cancels it (and the loop's flusher).
        task = asyncio.create_task(b.submit(99))
        await asyncio.sleep(0)
        assert not task.done()

    async def main(base):
        return await asyncio.gather(*(b.submit(base + i) for i in range(3)))

    try:
        assert run(main(0)) == [0, 10, 20]
        run(abandon())
        assert run(main(5)) == [50, 60, 70]
        assert run(main(1)) == [10, 20, 30]
    finally:
        b.close()
    assert rec.batches == [[0, 1, 2], [5, 6, 7], [1, 2, 3]]  # the abandoned item never ran
    assert (b.stats.batches, b.stats.items, b.stats.largest) == (3, 9, 3)


@MODES
def test_an_item_left_in_a_loop_closed_without_cleanup_does_not_block_the_next_loop(threaded):
    """Regression: delivering a result to a future of a closed loop raised and killed the next loop's flusher."""
    rec, b = make(threaded)
    loop = asyncio.new_event_loop()

    async def abandon():
        task = asyncio.create_task(b.submit(99))
        await asyncio.sleep(0)
        return task

    stale = loop.run_until_complete(abandon())
    loop.close()  # closed without cancelling its tasks: the item (and a flusher) are left behind
    assert not stale.done()

    async def main():
        return await b.submit(1)

    try:
        assert run(main(), timeout=5) == 10
    finally:
        b.close()
    assert rec.batches == [[1]]


# ---------------------------------------------------------------------------------------------- settling


def batches_for(threaded, settle, straggler_hops, *, problems=8, nested=0):
    """Batches made when half the problems submit at once and the other half after ``straggler_hops`` loop hops."""
    rec, b = make(threaded, settle=settle)

    async def deep(depth, i):
        if depth == 0:
            return await b.submit(i)
        return await deep(depth - 1, i)

    async def problem(i):
        if i % 2:
            await hops(straggler_hops)
        return await deep(nested, i)

    async def main():
        return await asyncio.gather(*(problem(i) for i in range(problems)))

    try:
        assert run(main()) == [i * 10 for i in range(problems)]
    finally:
        b.close()
    return rec.batches


@MODES
def test_problems_that_hop_a_few_times_before_submitting_land_in_one_batch(threaded):
    # Nested coroutine awaits never yield to the loop; sleep(0) hops do. With settle=3, a few hops are absorbed.
    for k in range(4):
        assert len(batches_for(threaded, 3, k, nested=3)) == 1


@MODES
def test_problems_that_all_hop_equally_land_in_one_batch_however_long_the_chain(threaded):
    rec, b = make(threaded, settle=3)

    async def problem(i):
        await hops(25)
        return await b.submit(i)

    async def main():
        return await asyncio.gather(*(problem(i) for i in range(5)))

    try:
        run(main())
    finally:
        b.close()
    assert rec.batches == [[0, 1, 2, 3, 4]]


@MODES
def test_staggered_submits_keep_the_batch_open_while_each_gap_is_short(threaded):
    # Problem i submits after i hops: a new item every loop iteration keeps resetting the settle count.
    rec, b = make(threaded, settle=3)

    async def problem(i):
        await hops(i)
        return await b.submit(i)

    async def main():
        return await asyncio.gather(*(problem(i) for i in range(12)))

    try:
        run(main())
    finally:
        b.close()
    assert rec.batches == [list(range(12))]


@MODES
@pytest.mark.parametrize("settle", [1, 3, 5])
def test_the_limit_a_straggler_may_trail_by_is_settle_plus_one_loop_iterations(threaded, settle):
    """Documents the limit: a submit up to ``settle + 1`` loop iterations after the last one joins its batch.

    One more iteration and the batch has already been flushed, so the straggler goes alone to a second batch.
    """
    assert len(batches_for(threaded, settle, settle + 1)) == 1
    late = batches_for(threaded, settle, settle + 2)
    assert late == [[0, 2, 4, 6], [1, 3, 5, 7]]


@MODES
def test_awaiting_one_task_round_trip_before_submitting_still_batches_but_two_do_not(threaded):
    """Documents how many loop iterations common awaits cost against settle=3 (Python 3.11 asyncio).

    Awaiting a freshly created task whose body hops once costs 3 iterations (schedule, hop, wake the
    awaiter): one such await trails by 3 <= settle + 1 and joins; two trail by 6 and miss the batch.
    """

    async def inner():
        await asyncio.sleep(0)

    def batches_with(round_trips):
        rec, b = make(threaded, settle=3)

        async def problem(i):
            if i % 2:
                for _ in range(round_trips):
                    await asyncio.create_task(inner())
            return await b.submit(i)

        async def main():
            return await asyncio.gather(*(problem(i) for i in range(6)))

        try:
            run(main())
        finally:
            b.close()
        return len(rec.batches)

    assert batches_with(1) == 1
    assert batches_with(2) == 2
