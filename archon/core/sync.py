"""Running a coroutine to its end from synchronous code, also where an event loop is already running.

A notebook's kernel (Jupyter, IPython) runs an event loop in the main thread, where ``asyncio.run``
refuses to start another; :func:`run_sync` then runs the coroutine on a fresh loop in a worker thread
and waits for it, so the Python API (``Pipeline.evaluate``, a tuning study) works the same in a
script and in a notebook.

Example:
    >>> import asyncio
    >>> async def twice(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> run_sync(twice(21))
    42
    >>> async def inside():  # as in a notebook cell: a loop is running
    ...     return run_sync(twice(4))
    >>> asyncio.run(inside())
    8
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, or the same on a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="archon-run") as pool:
        return pool.submit(asyncio.run, coro).result()
