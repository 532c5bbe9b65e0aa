"""``stt-frames serve``: run the local server with uvicorn.

Loopback only by default. Once the socket listens, one line goes to stdout,
``stt-frames: serving http://127.0.0.1:8787/api/v1``; logs go to stderr. ``--port 0`` picks a free port
(read it from that line). The API key comes from ``--api-key`` or else the environment variable
``STT_FRAMES_SERVE_API_KEY``; it is never printed or logged. The server's own options (latency, faults,
prices, limits, workers ...) are the fields of ``stt_frames.server.ServerOptions``, one flag each.

Example (a shell)::

    stt-frames serve --port 8787 --price fake/echo=0.006 --fail-rate 0.1 --seed 1 --faults 429,drop
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any, Final

from ..server import MODELS
from ..server.launcher import DEFAULT_HOST, bind_socket, url_of
from ..server.options import ServerOptions
from ._exit import ExitCode

__all__ = ["DEFAULT_PORT", "add_serve", "run_serve"]

#: The port ``stt-frames serve`` listens on unless told (``serve_local`` picks a free one).
DEFAULT_PORT: Final = 8787


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def add_serve(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``serve`` to the subcommands: where to listen and how to log, then one flag per server option."""
    p = subparsers.add_parser(
        "serve",
        help="run the local OpenRouter-compatible speech-to-text server",
        description="Run a local server that speaks OpenRouter's speech-to-text API "
        f"(models: {', '.join(MODELS)}). No API key or network needed.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST}, loopback)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    ServerOptions.add_arguments(p)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true", help="log every request (to stderr)")
    p.set_defaults(func=run_serve, prog=p.prog)
    return p


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; errors are one line on stderr and exit status 1.

    Example::

        run_serve(build_parser().parse_args(["serve", "--port", "8787"]))  # blocks; Ctrl-C to stop
    """
    from .._extras import require
    from ..errors import MissingExtraError

    try:
        uvicorn = require("uvicorn", "server", "stt-frames serve")
        from ..server.app import create_app

        options = ServerOptions.from_namespace(args)
        app = create_app(options)
        sock = bind_socket(args.host, args.port)
    except (MissingExtraError, ValueError) as exc:
        print(f"stt-frames serve: error: {exc}", file=sys.stderr)
        return ExitCode.ROW_ERRORS
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"stt-frames serve: error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return ExitCode.ROW_ERRORS
    with sock:
        port = sock.getsockname()[1]
        if not _is_loopback(args.host) and options.api_key is None:
            print(
                f"stt-frames serve: warning: listening on {args.host} without --api-key; "
                "anyone who can reach it can use it",
                file=sys.stderr,
            )
        config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log, lifespan="on")
        server = uvicorn.Server(config)
        print(f"stt-frames: serving {url_of(args.host, port)}", flush=True)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            return ExitCode.INTERRUPTED
    return ExitCode.OK
