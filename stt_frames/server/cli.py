"""The ``stt-frames serve`` command: run the local server with uvicorn.

Loopback only by default. Once the socket listens, one line goes to stdout,
``stt-frames: serving http://127.0.0.1:8787/api/v1``; logs go to stderr. ``--port 0`` picks a free port
(read it from that line). The API key comes from ``--api-key`` or else the environment variable
``STT_FRAMES_SERVE_API_KEY``; it is never printed or logged.

Example (a shell)::

    stt-frames serve --port 8787 --price fake/echo=0.006 --fail-rate 0.1 --seed 1 --faults 429,drop
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from typing import Any

from . import MODELS
from .decode import DEFAULT_MAX_AUDIO_SECONDS
from .faults import DEFAULT_FAULTS, DEFAULT_RETRY_AFTER, FAULT_KINDS, parse_faults
from .pricing import parse_price
from .request import DEFAULT_MAX_BODY_BYTES

__all__ = ["API_KEY_ENV", "DEFAULT_HOST", "DEFAULT_PORT", "add_parser", "bind_socket", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
#: Environment variable read for the API key when ``--api-key`` is not given.
API_KEY_ENV = "STT_FRAMES_SERVE_API_KEY"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.0 <= value <= 3600.0:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _price(text: str) -> tuple[str, float]:
    try:
        model, price = parse_price(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if model not in MODELS:
        raise argparse.ArgumentTypeError(f"unknown model {model!r} in --price; models: {', '.join(MODELS)}")
    return model, price


def _faults(text: str) -> tuple[str, ...]:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to a parser's subcommands; ``run`` is set as its handler.

    Example::

        parser = argparse.ArgumentParser(prog="stt-frames")
        add_parser(parser.add_subparsers())
        args = parser.parse_args(["serve", "--port", "0"]); args.func(args)
    """
    p = subparsers.add_parser(
        "serve",
        help="run the local OpenRouter-compatible speech-to-text server",
        description="Run a local server that speaks OpenRouter's speech-to-text API "
        f"(models: {', '.join(MODELS)}). No API key or network needed.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST}, loopback)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set, else no auth)",
    )
    p.add_argument("--latency", type=_seconds, default=0.0, metavar="SECONDS", help="delay added to each request")
    p.add_argument(
        "--fail-rate", type=_fraction, default=0.0, metavar="FRACTION", help="share of requests that fail (0-1)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the fault sequence (default 0)")
    p.add_argument(
        "--faults",
        type=_faults,
        default=DEFAULT_FAULTS,
        metavar="KINDS",
        help=f"comma-separated fault kinds to draw from: {','.join(FAULT_KINDS)} (default {','.join(DEFAULT_FAULTS)})",
    )
    p.add_argument(
        "--retry-after",
        type=_seconds,
        default=DEFAULT_RETRY_AFTER,
        metavar="SECONDS",
        help=f"wait a 429 asks for (default {DEFAULT_RETRY_AFTER})",
    )
    p.add_argument(
        "--price",
        type=_price,
        action="append",
        default=[],
        metavar="MODEL=USD_PER_MINUTE",
        help="price of a model per audio minute (repeatable; all models cost 0 by default)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help=f"larger request bodies get a 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--max-audio-seconds",
        type=_positive_seconds,
        default=DEFAULT_MAX_AUDIO_SECONDS,
        metavar="SECONDS",
        help=f"longer audio gets a 400 stating the limit (default {DEFAULT_MAX_AUDIO_SECONDS:g})",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="processes for the pocketsphinx engines (default: every CPU)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true", help="log every request (to stderr)")
    p.set_defaults(func=run)
    return p


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port).

    Example::

        sock = bind_socket("127.0.0.1", 0); sock.getsockname()[1]
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns TCP_NODELAY on only for sockets that say they are TCP, and without
    # it each response body waits ~40 ms for the client's delayed ACK (uvicorn writes headers and body apart).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Always, as uvicorn does: a server restarted on the same port (even one first given port 0) must
        # not be refused because connections of the previous one are still closing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api/v1"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    """Run the server until interrupted; errors are one line on stderr and exit status 1.

    Example::

        run(build_parser().parse_args(["serve", "--port", "8787"]))  # blocks; Ctrl-C to stop
    """
    from .._extras import require
    from ..errors import MissingExtraError

    try:
        uvicorn = require("uvicorn", "server", "stt-frames serve")
        from .app import create_app

        api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
        app = create_app(
            api_key=api_key,
            latency=args.latency,
            fail_rate=args.fail_rate,
            seed=args.seed,
            prices=dict(args.price),
            max_body_bytes=args.max_body_bytes,
            max_audio_seconds=args.max_audio_seconds,
            faults=args.faults,
            retry_after=args.retry_after,
            workers=args.workers,
        )
        sock = bind_socket(args.host, args.port)
    except (MissingExtraError, ValueError) as exc:
        print(f"stt-frames serve: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"stt-frames serve: error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1
    with sock:
        port = sock.getsockname()[1]
        if not _is_loopback(args.host) and api_key is None:
            print(
                f"stt-frames serve: warning: listening on {args.host} without --api-key; "
                "anyone who can reach it can use it",
                file=sys.stderr,
            )
        config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log, lifespan="on")
        server = uvicorn.Server(config)
        print(f"stt-frames: serving {_url(args.host, port)}", flush=True)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            return 130
    return 0
