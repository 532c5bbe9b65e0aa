"""ServerOptions (server/options.py): each option, declared once, reaches the app, serve_local and the command."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stt_frames.cli import build_parser, main
from stt_frames.server import ServerOptions, serve_local
from stt_frames.server.options import API_KEY_ENV, OPTION_NAMES, flag_of, resolve_options

#: A value other than the default for every option: a new option fails these tests until it has one here.
EXAMPLES: dict[str, Any] = {
    "api_key": "sk-example",
    "latency": 0.25,
    "fail_rate": 0.5,
    "seed": 7,
    "faults": ("429", "drop"),
    "retry_after": 0.5,
    "prices": {"fake/echo": 0.006},
    "max_body_bytes": 1000,
    "max_audio_seconds": 60.0,
    "workers": 2,
}


def test_every_option_has_an_example_other_than_its_default() -> None:
    assert tuple(EXAMPLES) == OPTION_NAMES
    defaults = ServerOptions()
    assert all(getattr(defaults, name) != value for name, value in EXAMPLES.items())


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_each_option_reaches_the_app(name: str) -> None:
    pytest.importorskip("starlette")
    from stt_frames.server import create_app

    app = create_app(**{name: EXAMPLES[name]})
    try:
        assert getattr(app.state.stt.options, name) == EXAMPLES[name]
        assert app.state.stt.options == ServerOptions(**{name: EXAMPLES[name]})
    finally:
        app.state.stt.close()


def test_every_option_has_a_documented_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = capsys.readouterr().out
    for f in dataclasses.fields(ServerOptions):
        assert f"{flag_of(f)} " in help_text, f.name
        assert " ".join(f.metadata["option"].help.split()[:3]) in " ".join(help_text.split()), f.name


def test_the_process_mode_arguments_read_back_as_the_same_options() -> None:
    """What ``serve_local(process=True)`` passes to ``stt-frames serve`` is what the command then runs with."""
    options = ServerOptions(**EXAMPLES)
    argv = options.to_argv()
    assert not any("sk-example" in arg for arg in argv)  # the key goes in the environment, never in argv
    assert options.to_env() == {API_KEY_ENV: "sk-example"}
    args = build_parser().parse_args(["serve", *argv])
    assert ServerOptions.from_namespace(args, environ=options.to_env()) == options
    assert ServerOptions.from_namespace(build_parser().parse_args(["serve"]), environ={}) == ServerOptions()
    assert ServerOptions().to_argv() == [] and ServerOptions().to_env() == {}


def test_every_option_reaches_a_thread_server(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvicorn")
    from stt_frames.server import app as server_app

    seen: list[ServerOptions] = []
    real = server_app.create_app

    def tap(*options: Any, **overrides: Any) -> Any:
        app = real(*options, **overrides)
        seen.append(app.state.stt.options)
        return app

    monkeypatch.setattr(server_app, "create_app", tap)
    with serve_local(**EXAMPLES):
        pass
    assert seen == [ServerOptions(**EXAMPLES)]


def test_a_misspelt_option_is_a_type_error_that_names_the_valid_ones() -> None:
    with pytest.raises(
        TypeError, match=r"serve_local\(\) got an unexpected option 'latncy' \(did you mean 'latency'\?\)"
    ) as exc:
        serve_local(latncy=0.1)
    assert all(name in str(exc.value) for name in (*OPTION_NAMES, "host", "port", "process"))
    with pytest.raises(TypeError, match=r"create_app\(\) got an unexpected option 'price' \(did you mean 'prices'\?\)"):
        resolve_options(None, {"price": {}}, caller="create_app")
    with pytest.raises(TypeError, match="ServerOptions as its only positional argument"):
        resolve_options({"latency": 1}, {}, caller="create_app")  # type: ignore[arg-type]


def test_keywords_override_a_given_options_value() -> None:
    base = ServerOptions(latency=1.0, seed=3)
    assert resolve_options(base, {"seed": 4}, caller="t") == ServerOptions(latency=1.0, seed=4)
    assert resolve_options(base, {}, caller="t") is base


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"latency": -1}, "latency must be"),
        ({"fail_rate": 2}, "fail_rate must be"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"faults": "boom"}, "unknown fault kind"),
        ({"retry_after": 3600}, "retry_after must be"),
        ({"prices": [("fake/echo", 1)]}, "prices must be a mapping"),
        ({"max_body_bytes": 0}, "max_body_bytes must be"),
        ({"api_key": ""}, "api_key must be"),
    ],
)
def test_a_bad_value_is_refused_when_the_options_are_made(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ServerOptions(**options)


def test_options_are_frozen_normalised_and_never_show_the_key() -> None:
    options = ServerOptions(api_key="sk-secret", faults="429,drop", latency=1, prices={"fake/echo": 1})
    assert options.faults == ("429", "drop") and options.latency == 1.0 and isinstance(options.latency, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.latency = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        options.prices["fake/echo"] = 2  # type: ignore[index]
    assert "sk-secret" not in repr(options) and "latency=1.0" in repr(options)
