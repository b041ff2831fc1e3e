"""Shared test configuration: machines are shared and noisy, so no hypothesis deadlines."""

from hypothesis import settings

settings.register_profile("archon", deadline=None)
settings.load_profile("archon")
