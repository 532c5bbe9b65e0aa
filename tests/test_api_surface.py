"""The public surface: ``stt_frames.__all__`` is what the package really exports, and importing it stays light."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys

import pytest

import stt_frames

#: Optional or heavy packages that ``import stt_frames`` (and the client) must not pull in.
HEAVY = ("starlette", "uvicorn", "pocketsphinx", "av", "matplotlib", "jiwer", "dask", "distributed", "ipywidgets")

#: Every module of the package (server and CLI included): each declares an accurate ``__all__``.
MODULES = sorted(
    m.name.removeprefix("stt_frames.")
    for m in pkgutil.walk_packages(stt_frames.__path__, "stt_frames.")
    if m.name.rsplit(".", 1)[-1] not in ("__main__",)
)

#: The public names, written out: a new one fails this test until it is added here on purpose.
PUBLIC = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AudioError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BudgetExceededError",
    "Cache",
    "CacheError",
    "Client",
    "InsecureTransportError",
    "InternalServerError",
    "Interrupted",
    "MalformedResponseError",
    "MissingExtraError",
    "NotFoundError",
    "NotSentError",
    "PaymentRequiredError",
    "RateLimitError",
    "RequestTimeoutError",
    "RunProgress",
    "STTError",
    "ServiceUnavailableError",
    "TranscribeWidget",
    "Transcription",
    "Usage",
    "__version__",
    "atranscribe_column",
    "cache_info",
    "clear_cache",
    "compare",
    "estimate",
    "leaderboard",
    "plot_leaderboard",
    "read_results",
    "score",
    "serve_local",
    "show_alignment",
    "transcribe_column",
    "try_file",
    "write_dataset",
    "write_results",
]


def _module_of(name: str) -> str | None:
    return getattr(stt_frames, "_LAZY", {}).get(name)


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(stt_frames.__all__) == sorted(PUBLIC)


def test_submodules_named_like_a_function_do_not_shadow_it() -> None:
    importlib.import_module("stt_frames._compare")
    importlib.import_module("stt_frames._leaderboard")
    importlib.import_module("stt_frames._estimate")
    assert callable(stt_frames.compare) and callable(stt_frames.leaderboard) and callable(stt_frames.estimate)


def test_all_is_sorted_unique_strings() -> None:
    names = stt_frames.__all__
    assert all(isinstance(n, str) for n in names)
    assert list(names) == sorted(names)
    assert len(names) == len(set(names))
    assert "__version__" in names


def test_dir_lists_the_public_names() -> None:
    assert set(stt_frames.__all__) <= set(dir(stt_frames))


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'transcribe_colum'"):
        _ = stt_frames.transcribe_colum  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", stt_frames.__all__)
def test_every_exported_name_imports(name: str) -> None:
    module = _module_of(name)
    value = getattr(stt_frames, name)
    assert value is not None
    if module is not None:
        assert value is getattr(importlib.import_module(f"stt_frames.{module}"), name)


def test_star_import() -> None:
    present = list(stt_frames.__all__)
    namespace: dict[str, object] = {}
    exec(f"from stt_frames import {', '.join(present)}", namespace)  # noqa: S102 - fixed names, test only
    assert set(present) <= set(namespace)


def test_every_error_class_is_exported() -> None:
    from stt_frames import errors

    classes = [n for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert classes
    missing = sorted(set(classes) - set(stt_frames.__all__))
    assert missing == [], f"exception classes not re-exported from stt_frames: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_module_all_is_accurate(module: str) -> None:
    mod = importlib.import_module(f"stt_frames.{module}")
    names = getattr(mod, "__all__", None)
    assert names is not None, f"stt_frames.{module} has no __all__"
    assert len(names) == len(set(names)), f"stt_frames.{module}.__all__ has duplicates"  # order: ruff RUF022
    for name in names:
        assert hasattr(mod, name), f"stt_frames.{module}.__all__ lists {name!r}, which it does not define"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_is_light() -> None:
    loaded = _top_level(_modules_after("import stt_frames"))
    assert "stt_frames" in loaded
    heavy = sorted(loaded & {*HEAVY, "pandas", "numpy", "httpx", "aiohttp"})
    assert heavy == [], f"`import stt_frames` imports {heavy}; import them lazily where they are used"


def test_client_does_not_import_optional_extras() -> None:
    loaded = _top_level(
        _modules_after("import stt_frames\nstt_frames.Client, stt_frames.AsyncClient, stt_frames.Usage")
    )
    assert "httpx" in loaded  # the check would pass vacuously if the names were not imported
    heavy = sorted(loaded & set(HEAVY))
    assert heavy == [], f"the client imports optional extras {heavy}"


def test_dataframe_helpers_do_not_import_optional_extras() -> None:
    present = ["transcribe_column", "atranscribe_column", "Cache", "read_results", "write_results"]
    loaded = _top_level(_modules_after("import stt_frames\n" + "\n".join(f"stt_frames.{n}" for n in present)))
    heavy = sorted(loaded & set(HEAVY))
    assert heavy == [], f"{', '.join(present)} import optional extras {heavy}; import them where they are used"


def test_exceptions_are_defined_only_in_an_errors_module() -> None:
    found = []
    for module in MODULES:
        mod = importlib.import_module(f"stt_frames.{module}")
        for value in vars(mod).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == mod.__name__:
                found.append(f"{module}.{value.__name__}")
    assert found and all(name.split(".")[-2] == "errors" for name in found), [
        name for name in found if name.split(".")[-2] != "errors"
    ]
