"""`lav serve`: the interactive visualizer in the browser (a thin shell over `create_app`).

Without ``--model`` and ``--results`` it serves the shipped demo model and adapter (no download);
``--results`` alone serves saved results and evaluations without loading a model (and without
importing torch). It binds to loopback unless told otherwise.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
import threading
from typing import NoReturn

from .. import argtypes
from ..errors import InputError, LavError
from .options import layers, say

NAME = "serve"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: After SIGTERM: open requests get this long, the running job this long after them, and the
#: process ends at `_STOP_S` whatever a handler or the model is still doing.
_GRACEFUL_S = 3
_JOB_GRACE_S = 5.0
_STOP_S = 9.5


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``lav`` command's sub-parsers (with the model options of ``lav run``);
    returns its parser."""
    from .options import MAPS_HELP, add_model_args

    p = subparsers.add_parser(
        "serve",
        help="the interactive visualizer in the browser",
        description=(
            "Serves the visualizer page and its JSON API: analyse screenshots live, explore layers and "
            "heads, browse saved results and lav eval outputs. Without --model and --results it serves "
            "the shipped demo model and adapter; --results alone browses without a model."
        ),
    )
    p.add_argument(
        "--model", help="Hugging Face model id or local checkpoint folder ('demo': the shipped one)"
    )
    p.add_argument("--adapter", help="PEFT LoRA adapter folder ('demo': the shipped demo adapter)")
    p.add_argument(
        "--results", nargs="+", default=[], metavar="DIR", help="folders of saved results / lav eval outputs"
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    p.add_argument(
        "--port",
        type=argtypes.port,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument(
        "--max-queue",
        type=argtypes.max_queue,
        default=8,
        help="jobs that may wait for the model (503 beyond; default 8)",
    )
    p.add_argument(
        "--cache-mb",
        type=argtypes.cache_mb,
        default=512,
        help="memory for finished jobs' results and opened saved results, in MiB (default 512)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="also answer requests from this origin / for this host, e.g. http://myhost:8765 "
        "(default: the server's own loopback address only)",
    )
    p.add_argument(
        "--edge-layers", nargs="+", metavar="I", help="vision blocks recorded (default: -2 -1; the demo: all)"
    )
    p.add_argument(
        "--focus-layers", nargs="+", metavar="I", help="decoder layers recorded (default: -1; the demo: all)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=argtypes.max_new_tokens,
        help="longest answer to generate, in tokens (default: the preset's, else 64)",
    )
    p.add_argument(
        "--maps",
        metavar="NAME,...",
        help=MAPS_HELP
        + "; what a request naming none gets (edge, focus always come; focus_selected: lav run only)",
    )
    add_model_args(p)
    return p


def _stop_within(seconds: float) -> None:
    """End the process after ``seconds`` unless it ended by itself (once, on the first signal).

    A handler blocked in a read, or a model call that runs for minutes, cannot be interrupted from
    Python; a daemon timer ends the process instead, so SIGTERM always ends the server in time.
    """
    global _timer
    if _timer is not None:
        return

    def stop() -> None:
        print(f"lav: stopped after {seconds:g} s with a request still running", file=sys.stderr, flush=True)
        os._exit(128 + signal.SIGTERM)

    _timer = threading.Timer(seconds, stop)
    _timer.daemon = True
    _timer.start()


_timer: threading.Timer | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be from 0 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise LavError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Start the server; returns the exit status when it stops."""
    try:
        import uvicorn  # noqa: F401

        from ..serve.app import create_app
    except ImportError as exc:
        raise LavError(
            f"lav serve needs the 'serve' extra ({exc.name} is missing): pip install -e '.[serve]' (make install does it)"
        ) from None
    if args.max_queue < 1:
        raise InputError(f"--max-queue must be at least 1, got {args.max_queue}")
    from ..options import AnalysisOptions

    model, adapter = args.model, args.adapter
    from ..demo import assets

    # `lav.cli.main` has already turned --model demo into the shipped folder.
    demo = model in (assets.NAME, str(assets.BASE)) or (model is None and not args.results)
    default_layers = ("all", "all") if demo else ((-2, -1), -1)
    # The server's analysis options, checked here once; a request may change its maps and base pass.
    options = AnalysisOptions(
        edge_layers=layers(args.edge_layers, default_layers[0]),
        focus_layers=layers(args.focus_layers, default_layers[1]),
        max_new_tokens=args.max_new_tokens,
    )
    if args.maps is not None and not (demo or model is not None):
        raise InputError(
            "--maps chooses what analyses compute, and --results alone loads no model: add --model"
        )
    maps = _maps(args.maps)
    options = options if maps is None else options.replace(maps=maps)
    origins = [_origin(o) for o in args.allow_origin]
    sock = _bind(args.host, args.port)
    try:
        worker = None
        if demo or model is not None:
            worker = _load(args, model, adapter, demo, options)
        port = sock.getsockname()[1]
        app = create_app(
            worker,
            args.results,
            max_queue=args.max_queue,
            shutdown_timeout=_JOB_GRACE_S,
            cache_bytes=args.cache_mb * 1024 * 1024,
            hosts=_own_hosts(args.host, port),
            allow_origins=origins,
        )
        return _serve(app, sock, args.host)
    finally:
        sock.close()


def _origin(text: str) -> str:
    """``--allow-origin``: ``http(s)://host[:port]`` (a bare ``host:port`` means http)."""
    value = text.strip().rstrip("/").lower()
    if "://" not in value:
        value = "http://" + value
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or "/" in rest or any(c.isspace() for c in rest):
        raise InputError(f"--allow-origin {text!r}: give an origin such as http://myhost:8765")
    return value


def _own_hosts(host: str, port: int) -> list[str]:
    """The ``Host`` values that name this server: its loopback names, and the address it is bound to."""
    from ..serve.app import LOOPBACK_NAMES

    names = set(LOOPBACK_NAMES)
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host else host)
    hosts = {f"{n}:{port}" for n in names}
    if port == 80:  # browsers leave the default port out of Host
        hosts |= names
    return sorted(hosts)


def _maps(text: str | None) -> list[str] | None:
    """``--maps``: the names, refused before the model loads when unknown or not servable."""
    from ..serve.model import check_servable
    from .options import map_names

    names = map_names(text)
    check_servable(names or ())
    return names


def _load(args, model, adapter, demo: bool, options):
    from ..files import check_adapter_folder, check_model_source
    from ..serve.model import ModelWorker
    from .options import load_options

    if demo:
        from ..demo import assets

        model, adapter = assets.BASE, (adapter or assets.ADAPTER)
    check_model_source(str(model))
    if adapter is not None:
        check_adapter_folder(adapter)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say(
        f"loading {'the demo model' if demo else model}"
        + (f" with adapter {adapter}" if adapter and not demo else "")
    )
    worker = ModelWorker.load(model, adapter, load_options(args), options)
    say(f"loaded {worker.viz.parts.family} on {worker.viz.device}")
    return worker


def _serve(app, sock: socket.socket, host: str) -> NoReturn:
    import uvicorn

    received: list[int] = []

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # Progress streams end and nothing new is queued before uvicorn waits for open requests.
            app.state.begin_shutdown()
            received.append(sig)
            _stop_within(_STOP_S)
            super().handle_exit(sig, frame)

    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if _is_loopback(host):
        say(f"serving on http://{shown}:{port}/ (loopback only: only this machine can connect)")
    else:
        say(f"serving on http://{shown}:{port}/")
        say(
            f"warning: listening on {host}, so anyone on the network who can reach this machine can use "
            "the model and read the results; use --host 127.0.0.1 unless you mean to share it "
            "(other machines reach it under a name of their own: add --allow-origin http://NAME:PORT)"
        )
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=_GRACEFUL_S)
    code, last = 0, "stopped"
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn hands SIGTERM / Ctrl-C on to lav's own handler
        sigterm = signal.SIGTERM in received
        code, last = (128 + signal.SIGTERM, "terminated") if sigterm else (130, "interrupted")
    if _timer is not None:
        _timer.cancel()
    if app.state.job_left_running:
        last = f"stopped; the running analysis did not finish within {_JOB_GRACE_S:g} s and was dropped"
        code = 128 + signal.SIGTERM
    say(last)
    # Nothing is left to clean up: the requests and the job are done, the temporary files gone. Leaving
    # the interpreter the usual way would garbage-collect the whole model first (seconds), and abort
    # ("terminate called without an active exception") under a torch thread still running.
    sys.stdout.flush()
    os._exit(code)
