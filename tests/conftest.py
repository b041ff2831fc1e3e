"""Shared test configuration: machines are shared and noisy, so no hypothesis deadlines."""

from hypothesis import settings

settings.register_profile("archon", deadline=None)
settings.load_profile("archon")


import os  # noqa: E402
import tempfile  # noqa: E402

# Retrieval indexes go to a cache of the test session's own, never to the user's ~/.cache (CLI
# subprocesses inherit it).
os.environ.setdefault("ARCHON_CACHE_DIR", tempfile.mkdtemp(prefix="archon-test-cache-"))
