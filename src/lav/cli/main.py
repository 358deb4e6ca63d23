"""`lav`'s entry: parse, run the command, and turn every way it can end into an exit status (0 done,
2 bad input on one line, 130 Ctrl-C, 143 SIGTERM), never a traceback for the user's mistakes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence

from ..errors import LavError, LavWarning
from .commands import build_parser, runner

EXIT_BAD_INPUT = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that cleanup (``finally``, temporary folders) runs."""


class _Signals:
    """While `main` runs: SIGINT and SIGTERM raise once, and later ones are ignored until it returns."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.received is not None:
            return  # already stopping: a second Ctrl-C must not interrupt the cleanup
        self.received = signum
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line: lav's own as ``lav: warning: ...``, others with their category."""
    text = str(message).strip().splitlines()
    first = text[0] if text else ""
    kind = "" if issubclass(category, LavWarning) else f"{category.__name__}: "
    print(f"lav: warning: {kind}{first}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``lav ...``: the exit status. 0 done, 2 bad input (one line on stderr), 130 Ctrl-C, 143 SIGTERM.

    Only light modules are imported before this runs, so the signal handlers are in place before
    torch and transformers load: Ctrl-C at any moment ends with one line, never a traceback.
    """
    with _Signals() as signals:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                args = build_parser().parse_args(argv)
                _demo_names(args)
                return runner(args.command)(args)
        except KeyboardInterrupt as exc:
            return _stopped(exc)
        except LavError as exc:
            print(f"lav: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except MemoryError:
            print(
                "lav: error: out of memory; try a smaller image (--max-pixels) or a machine with more memory",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        except BaseException as exc:
            if signals.received is None:
                raise
            # An import or a library call that wrapped our KeyboardInterrupt in its own error.
            return _stopped(exc, signals.received)


def _demo_names(args: argparse.Namespace) -> None:
    """``--model demo`` / ``--adapter demo`` (``--adapters demo``) of every command -> the shipped folders."""
    from ..demo import assets

    if getattr(args, "model", None) is not None:
        args.model = assets.model_path(args.model)
    if getattr(args, "adapter", None) is not None:
        args.adapter = assets.adapter_path(args.adapter)
    if isinstance(getattr(args, "adapters", None), list):
        args.adapters = [assets.adapter_path(a) for a in args.adapters]


def _stopped(exc: BaseException, signum: int | None = None) -> int:
    if isinstance(exc, Terminated) or signum == signal.SIGTERM:
        print("lav: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("lav: interrupted", file=sys.stderr)
    return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")).strip()


def entry(run: Callable[[], int] = main) -> None:
    """The ``lav`` program: `main`, then an exit that a late Ctrl-C or SIGTERM cannot turn into a traceback.

    A signal that lands after `main` returned (while the interpreter joins threads and runs its exit
    handlers) ends the process at once with the status `main` chose, or 128 + the signal when `main`
    itself finished normally. ``run``: the `main` to call (`lav.cli.entry` hands in the package's own,
    looked up when called).
    """
    code = run()

    def _exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code if code in (130, 128 + signal.SIGTERM) else 128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_now)
    sys.exit(code)
