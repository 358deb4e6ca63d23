"""``python -m lav.cli``: the ``lav`` program."""

from . import entry

entry()
