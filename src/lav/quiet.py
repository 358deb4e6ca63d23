"""Loading a model without side effects the user did not ask for: no bitsandbytes, no progress bars,
no import-time warnings in a notebook cell.

peft (0.17 to 0.19 at least) imports bitsandbytes whenever it is installed, at ``import peft`` and
again when it wraps layers with an adapter; bitsandbytes 0.50 then looks up a CPU kernel on the hub
and logs "Failed to load CPU gemm_4bit_forward from kernels-community" -- for a model that is not
quantized at all. While `no_bitsandbytes` is active, ``import bitsandbytes`` fails and
``importlib.util.find_spec`` says it is absent, which is what peft and transformers check; the
answers they cached meanwhile are forgotten on exit, so a quantized load later in the same process
still finds it. A bitsandbytes already imported (a quantized model is loaded) is left alone. (peft's
``helpers`` module keeps the ``None`` it saw at its first import; only its condition-number helper for
quantized layers reads it.)
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_BNB = "bitsandbytes"


@contextmanager
def no_bitsandbytes() -> Iterator[None]:
    """Hide bitsandbytes from imports inside the block, unless it is imported already."""
    if _BNB in sys.modules:  # imported (a quantized load), or hidden by an enclosing block
        yield
        return
    sys.modules[_BNB] = None  # type: ignore[assignment]  # the import system's "not importable" mark
    try:
        yield
    finally:
        if _BNB in sys.modules and sys.modules[_BNB] is None:
            del sys.modules[_BNB]
        _forget_cached_checks()


def _forget_cached_checks() -> None:
    """Clear the ``lru_cache`` of the availability checks that ran while bitsandbytes was hidden."""
    checks = [
        ("peft.import_utils", "is_bnb_available"),
        ("peft.import_utils", "is_bnb_4bit_available"),
        ("transformers.utils.import_utils", "is_bitsandbytes_available"),
    ]
    for module, name in checks:
        fn = getattr(sys.modules.get(module), name, None)
        clear = getattr(fn, "cache_clear", None)
        if callable(clear):
            clear()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' progress bars ("Loading weights", file downloads) on or off inside the block,
    then as they were: off by default, so none lands in a notebook cell unless asked for."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


@contextmanager
def quiet_imports() -> Iterator[None]:
    """Import the heavy stack without tqdm's "IProgress not found" warning: transformers imports
    ``tqdm.auto``, which warns in every notebook without ipywidgets although lav draws no bar there;
    nor peft's (0.22+) notice, at ``import peft``, that it will drop transformers < 5.6 in its 1.0:
    lav supports transformers 4.57 and says so (README), so the notice is not printed into a cell."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        warnings.filterwarnings("ignore", message="Support for Transformers < ", category=FutureWarning)
        yield


class _FastProcessorNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "is now loaded as a fast processor by default" not in record.getMessage()


@contextmanager
def processor_notes_off() -> Iterator[None]:
    """Load a processor without transformers 4.57's note that the Qwen image processor now loads
    as the fast one by default: lav takes that default on every release, so the note (a warning on
    stderr, or in a notebook cell) tells the user nothing to act on."""
    logger = logging.getLogger("transformers.models.auto.image_processing_auto")
    note = _FastProcessorNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)
