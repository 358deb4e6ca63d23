"""Errors that say what is wrong with the user's input and what to do about it.

Every error the library raises on bad input is a `LavError`; the CLI prints its message as one line
and exits 2. Anything else escaping is a bug in `lav`.
"""

from __future__ import annotations


class LavError(Exception):
    """Bad input or an unsupported setup. The message names the problem and the fix."""


class UnsupportedModelError(LavError):
    """The model is not one of the supported Qwen-VL families, or uses a variant we have not checked."""


class ImageError(LavError):
    """The image is missing, unreadable, empty or too large."""


class AdapterError(LavError):
    """The adapter folder is missing, is not a PEFT adapter, or was trained for another base model."""


class CaptureError(LavError):
    """Attention capture saw something it cannot map faithfully (e.g. the vision tower ran twice)."""


class InputError(LavError):
    """Other bad arguments: an empty instruction, an unknown layer index, an unknown option."""


class BatchError(LavError):
    """An item of `Visualizer.analyze_many` failed after earlier batches finished.

    ``finished``: the `Result` of every item that finished, by item index; ``failed``: the indices of
    the batch that raised (the cause is ``__cause__``). Rerun only the items missing from ``finished``.
    """

    def __init__(self, message: str, finished: dict, failed: list[int]):
        super().__init__(message)
        self.finished = finished
        self.failed = failed


class LavWarning(UserWarning):
    """Something the user should know that does not stop the analysis; the CLI prints it as one line."""


class AdapterWarning(LavWarning):
    """The adapter names another base model than the one loaded (it may still be the same weights)."""
