"""``python -m archon``: the same as the ``archon`` command."""

from archon.cli import run

run()
