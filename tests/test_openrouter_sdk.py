"""OpenRouter's official Python SDK (``openrouter`` on PyPI) against the local server, over loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
from collections.abc import Callable

import pytest

openrouter = pytest.importorskip("openrouter")
pytest.importorskip("uvicorn")

from openrouter import OpenRouter, errors  # noqa: E402
from openrouter.utils import BackoffStrategy, RetryConfig  # noqa: E402

from stt_frames.server import get_stats  # noqa: E402

KEY = "sk-or-local-test"


@pytest.fixture
def server(local_server: Callable[..., str]) -> str:
    return local_server(api_key=KEY, prices={"fake/echo": 0.006})


def audio_input(wav: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(wav).decode(), "format": "wav"}


def test_sdk_transcribes_with_text_and_usage(server: str, wav_factory: Callable[..., bytes]) -> None:
    wav = wav_factory(2.0)
    with OpenRouter(api_key=KEY, server_url=server) as client:
        result = client.stt.create_transcription(
            input_audio=audio_input(wav), model="fake/echo", language="en", temperature=0.0
        )
    text = f"echo {hashlib.sha256(wav).hexdigest()[:8]} 2.00s"
    assert result.text == text
    assert result.usage is not None
    assert result.usage.seconds == pytest.approx(2.0)
    assert result.usage.cost == pytest.approx(0.006 * 2 / 60)
    assert result.usage.input_tokens == 20
    assert result.usage.output_tokens == math.ceil(len(text) / 4)
    assert result.usage.total_tokens == 20 + math.ceil(len(text) / 4)


def test_sdk_async_client(server: str, wav_factory: Callable[..., bytes]) -> None:
    async def go() -> str:
        async with OpenRouter(api_key=KEY, server_url=server) as client:
            result = await client.stt.create_transcription_async(
                input_audio=audio_input(wav_factory(0.5)), model="fake/echo"
            )
            return result.text

    assert asyncio.run(go()).endswith(" 0.50s")


def test_sdk_maps_the_servers_errors(server: str, wav_factory: Callable[..., bytes]) -> None:
    wav = audio_input(wav_factory(0.2))
    with OpenRouter(api_key=KEY, server_url=server) as client:
        with pytest.raises(errors.NotFoundResponseError) as not_found:
            client.stt.create_transcription(input_audio=wav, model="openai/whisper-1")
        assert "openai/whisper-1" in not_found.value.data.error.message
        with pytest.raises(errors.BadRequestResponseError) as bad:
            client.stt.create_transcription(input_audio=wav, model="fake/echo", language="xx")
        assert bad.value.data.error.code == 400
        assert "supported_languages" in (bad.value.data.error.metadata or {})
        with pytest.raises(errors.BadRequestResponseError, match="bytes are wav"):
            client.stt.create_transcription(input_audio={**wav, "format": "mp3"}, model="fake/echo")
    with OpenRouter(api_key="sk-wrong", server_url=server) as client:
        with pytest.raises(errors.UnauthorizedResponseError) as unauthorized:
            client.stt.create_transcription(input_audio=wav, model="fake/echo")
        assert KEY not in str(unauthorized.value)


def test_sdk_retries_injected_5xx_and_sees_429(
    local_server: Callable[..., str], wav_factory: Callable[..., bytes]
) -> None:
    fast_retries = RetryConfig("backoff", BackoffStrategy(5, 20, 1.5, 5000), True)
    wav = wav_factory(0.3)
    url = local_server(fail_rate=0.5, seed=3, faults=("500", "502", "503"))
    with OpenRouter(server_url=url, retry_config=fast_retries) as client:
        texts = {
            client.stt.create_transcription(input_audio=audio_input(wav), model="fake/echo").text for _ in range(6)
        }
        stats = get_stats(url)
    assert len(texts) == 1
    sha = hashlib.sha256(wav).hexdigest()
    assert stats["billed"] == {sha: 6}
    assert sum(stats["faults"].values()) > 0  # the SDK met 5xx faults and retried them
    assert stats["requests"][sha] == 6 + sum(stats["faults"].values())
    url = local_server(fail_rate=1.0, faults=("429",))
    with (
        OpenRouter(server_url=url, retry_config=fast_retries) as client,
        pytest.raises(errors.TooManyRequestsResponseError),  # the SDK does not retry a 429
    ):
        client.stt.create_transcription(input_audio=audio_input(wav), model="fake/echo")


def test_sdk_against_a_server_process_with_pocketsphinx(
    local_server: Callable[..., str], wav_factory: Callable[..., bytes]
) -> None:
    pytest.importorskip("pocketsphinx")
    with OpenRouter(server_url=local_server(process=True)) as client:
        result = client.stt.create_transcription(
            input_audio=audio_input(wav_factory(0.5, freq=0.0)), model="local/pocketsphinx"
        )
    assert isinstance(result.text, str)
    assert result.usage is not None and result.usage.seconds == pytest.approx(0.5)
    assert result.usage.cost == 0.0
