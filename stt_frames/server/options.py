"""The local server's options, declared once: ``ServerOptions`` feeds ``create_app``, ``serve_local`` and ``serve``.

Each option is one field of the frozen dataclass ``ServerOptions``: its type and default, and in its
metadata (``option(...)``) its help text, its command-line flag, how the command line reads it from text
(``parse``) and how Python checks it (``check``). Everything else derives from that declaration:

- ``create_app(**options)`` and ``serve_local(**options)`` take the fields as keyword arguments (or a
  ``ServerOptions``); a misspelt one is a TypeError that names the valid ones (``resolve_options``);
- ``stt-frames serve`` has one flag per field (``add_arguments``, read back by ``from_namespace``);
- ``serve_local(process=True)`` turns the options back into that command's arguments (``to_argv``) and
  environment (``to_env``: the API key travels in the environment, never in argv, which ``ps`` shows).

To add an option: add a field below with ``option(...)``, then read ``state.options.<name>`` where the
server uses it (``app.ServerState``). Nothing else needs to change; tests/test_server_options.py checks
that every field reaches the app, ``serve_local`` (both modes) and ``stt-frames serve --help``.

Example::

    from stt_frames.server import ServerOptions, create_app
    options = ServerOptions(prices={"fake/echo": 0.006}, fail_rate=0.1, seed=1)
    app = create_app(options)              # or create_app(prices=..., fail_rate=0.1, seed=1)
    options.to_argv()                      # ['--fail-rate=0.1', '--seed=1', '--price=fake/echo=0.006']
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from .decode import DEFAULT_MAX_AUDIO_SECONDS
from .faults import DEFAULT_FAULTS, DEFAULT_RETRY_AFTER, FAULT_KINDS, parse_faults
from .pricing import parse_price
from .request import DEFAULT_MAX_BODY_BYTES

__all__ = ["API_KEY_ENV", "OPTION_NAMES", "OptionSpec", "ServerOptions", "flag_of", "option", "resolve_options"]

#: Environment variable that carries the API key to ``stt-frames serve`` when ``--api-key`` is not given.
API_KEY_ENV: Final = "STT_FRAMES_SERVE_API_KEY"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one server option is shown and read: the metadata of a ``ServerOptions`` field.

    ``parse`` turns command-line text into a value (ValueError: a message for the shell); ``check``
    validates and normalises a Python value (ValueError: a message naming the option). ``repeat``: the flag
    is given once per ``key=value`` item of a mapping. ``env``: the value also comes from (and, in process
    mode, travels through) this environment variable instead of argv.
    """

    help: str
    parse: Callable[[str], Any]
    check: Callable[[Any], Any]
    metavar: str
    flag: str | None = None
    repeat: bool = False
    env: str | None = None
    unparse: Callable[[Any], str] = repr


def option(
    default: Any,
    *,
    help: str,
    parse: Callable[[str], Any],
    check: Callable[[Any], Any],
    metavar: str,
    flag: str | None = None,
    repeat: bool = False,
    env: str | None = None,
    unparse: Callable[[Any], str] = repr,
) -> Any:
    """A ``ServerOptions`` field: its default plus its ``OptionSpec`` (help, flag, parse, check) as metadata."""
    spec = OptionSpec(help, parse, check, metavar, flag, repeat, env, unparse)
    return dataclasses.field(default=default, metadata={"option": spec})


# -- command-line text to a value (the message is for the shell) ---------------------------------------------


def _number(text: str, expected: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected {expected}, got {text!r}") from None


def _seconds(text: str) -> float:
    value = _number(text, "a number of seconds")
    if not 0.0 <= value <= 3600.0:
        raise ValueError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text, "a number of seconds")
    if not 0.0 < value < math.inf:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _number(text, "a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return int(text)


def _key(text: str) -> str:
    if not text:
        raise ValueError("expected a non-empty key")
    return text


def _price(text: str) -> tuple[str, float]:
    """``MODEL=USD``. Any model id is taken here: the app checks it against the engines it really serves when
    it starts (``pricing.resolve_prices``), so ``local/whisper-<folder>`` of ``$STT_FRAMES_WHISPER_MODELS`` can
    be priced too, and a model no engine serves is refused there, with the list of those that are."""
    return parse_price(text)


# -- a Python value, checked (the message names the option) --------------------------------------------------


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _check_key(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("api_key must be a non-empty string or None")
    return value


def _check_latency(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 3600:
        raise ValueError(f"latency must be a number of seconds in [0, 3600], got {value!r}")
    return float(value)


def _check_fail_rate(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"fail_rate must be a number between 0 and 1, got {value!r}")
    return float(value)


def _check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"seed must be an integer, got {value!r}")
    return value


def _check_retry_after(value: Any) -> float:
    if not _is_number(value) or not 0 <= value < 3600:
        raise ValueError(f"retry_after must be a number of seconds in [0, 3600), got {value!r}")
    return float(value)


def _check_prices(value: Any) -> Mapping[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"prices must be a mapping of model id to USD per audio minute, got {value!r}")
    return MappingProxyType(dict(value)) if value else None  # each price is checked against the engines


def _check_max_body_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_body_bytes must be a positive integer, got {value!r}")
    return value


def _check_max_audio_seconds(value: Any) -> float:
    if not _is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"max_audio_seconds must be a positive number of seconds, got {value!r}")
    return float(value)


def _check_workers(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"workers must be a positive integer or None (every CPU), got {value!r}")
    return value


def _price_item(item: tuple[str, float]) -> str:
    return f"{item[0]}={item[1]!r}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """Every option of the local server, checked on construction; ``dataclasses.replace`` makes a variant.

    Example::

        ServerOptions(fail_rate=0.1, seed=1, faults="429,drop").faults  # ('429', 'drop')
    """

    api_key: str | None = option(
        None,
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set, else no auth)",
        parse=_key,
        check=_check_key,
        metavar="KEY",
        env=API_KEY_ENV,
    )
    latency: float = option(
        0.0, help="delay added to each request", parse=_seconds, check=_check_latency, metavar="SECONDS"
    )
    fail_rate: float = option(
        0.0, help="share of requests that fail (0-1)", parse=_fraction, check=_check_fail_rate, metavar="FRACTION"
    )
    seed: int = option(
        0, help="seed of the fault sequence (default 0)", parse=_integer, check=_check_seed, metavar="N", unparse=str
    )
    faults: tuple[str, ...] = option(
        DEFAULT_FAULTS,
        help=f"comma-separated fault kinds to draw from: {','.join(FAULT_KINDS)} (default {','.join(DEFAULT_FAULTS)})",
        parse=parse_faults,
        check=parse_faults,
        metavar="KINDS",
        unparse=",".join,
    )
    retry_after: float = option(
        DEFAULT_RETRY_AFTER,
        help=f"wait a 429 asks for (default {DEFAULT_RETRY_AFTER})",
        parse=_seconds,
        check=_check_retry_after,
        metavar="SECONDS",
    )
    prices: Mapping[str, float] | None = option(
        None,
        help="price of a model per audio minute (repeatable; all models cost 0 by default)",
        parse=_price,
        check=_check_prices,
        metavar="MODEL=USD_PER_MINUTE",
        flag="--price",
        repeat=True,
        unparse=_price_item,
    )
    max_body_bytes: int = option(
        DEFAULT_MAX_BODY_BYTES,
        help=f"larger request bodies get a 413 (default {DEFAULT_MAX_BODY_BYTES})",
        parse=_positive_int,
        check=_check_max_body_bytes,
        metavar="N",
        unparse=str,
    )
    max_audio_seconds: float = option(
        DEFAULT_MAX_AUDIO_SECONDS,
        help=f"longer audio gets a 400 stating the limit (default {DEFAULT_MAX_AUDIO_SECONDS:g})",
        parse=_positive_seconds,
        check=_check_max_audio_seconds,
        metavar="SECONDS",
    )
    workers: int | None = option(
        None,
        help="processes for the pocketsphinx engines (default: every CPU)",
        parse=_positive_int,
        check=_check_workers,
        metavar="N",
        unparse=str,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _spec(f).check(getattr(self, f.name)))

    def __repr__(self) -> str:  # never shows the key
        shown = [
            f"{f.name}={'***' if f.name == 'api_key' and self.api_key else repr(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]
        return f"ServerOptions({', '.join(shown)})"

    # -- the command line ------------------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one flag per option to ``parser`` (``stt-frames serve``); ``from_namespace`` reads them back."""
        for f in dataclasses.fields(cls):
            spec = _spec(f)
            kwargs: dict[str, Any] = {"dest": f.name, "type": _for_argparse(spec.parse), "metavar": spec.metavar}
            if spec.repeat:
                kwargs.update(action="append", default=[])
            else:
                kwargs["default"] = None if spec.env else f.default
            parser.add_argument(flag_of(f), help=spec.help, **kwargs)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ServerOptions:
        """The options that ``add_arguments``' flags set; an unset ``env`` option is read from ``environ``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            spec, value = _spec(f), getattr(args, f.name)
            if spec.repeat:
                value = dict(value) or None
            elif spec.env and value is None:
                value = environ.get(spec.env) or None
            values[f.name] = value
        return cls(**values)

    def to_argv(self) -> list[str]:
        """The ``stt-frames serve`` arguments that give these options (defaults and ``env`` options left out)."""
        argv = []
        for f in dataclasses.fields(self):
            spec, value = _spec(f), getattr(self, f.name)
            if spec.env or value == f.default:
                continue
            items = value.items() if spec.repeat else [value]
            argv += [f"{flag_of(f)}={spec.unparse(item)}" for item in items]
        return argv

    def to_env(self) -> dict[str, str]:
        """The environment variables that carry the ``env`` options (the API key) to ``stt-frames serve``."""
        return {
            spec.env: str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if (spec := _spec(f)).env and getattr(self, f.name) is not None
        }


def _spec(f: dataclasses.Field[Any]) -> OptionSpec:
    spec: OptionSpec = f.metadata["option"]
    return spec


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The command-line flag of a ``ServerOptions`` field: ``--fail-rate`` for ``fail_rate`` unless declared."""
    return _spec(f).flag or "--" + f.name.replace("_", "-")


def _for_argparse(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_argument(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_argument


#: The names ``ServerOptions`` declares, in order.
OPTION_NAMES: Final = tuple(f.name for f in dataclasses.fields(ServerOptions))


def resolve_options(
    options: ServerOptions | None,
    overrides: Mapping[str, Any],
    *,
    caller: str,
    others: Sequence[str] = (),
) -> ServerOptions:
    """``options`` (default: every default) with ``overrides`` applied; an unknown name is a TypeError.

    ``caller`` and ``others`` (the caller's own keyword arguments) make the message say what is valid.

    Example::

        resolve_options(None, {"latncy": 1}, caller="serve_local")
        # TypeError: serve_local() got an unexpected option 'latncy' (did you mean 'latency'?); ...
    """
    unknown = [name for name in overrides if name not in OPTION_NAMES]
    if unknown:
        raise TypeError(_unknown_message(unknown, caller, others))
    if options is not None and not isinstance(options, ServerOptions):
        raise TypeError(f"{caller}() takes a ServerOptions as its only positional argument, got {options!r}")
    if options is None:
        return ServerOptions(**overrides)
    return dataclasses.replace(options, **overrides) if overrides else options


def _unknown_message(unknown: Iterable[str], caller: str, others: Sequence[str]) -> str:
    valid = [*OPTION_NAMES, *others]
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    text = f"{caller}() got an unexpected option {', '.join(parts)}; server options: {', '.join(OPTION_NAMES)}"
    return text + (f"; {caller}'s own: {', '.join(others)}" if others else "")
