"""``Client`` and ``AsyncClient``: one call to ``POST {base_url}/audio/transcriptions``, with retries.

Defaults (see ``stt_frames._settings`` and ``stt_frames.retry``):

- ``api_key``: argument, else ``OPENROUTER_API_KEY``, else none. Pass ``api_key=None`` to send no key.
- ``base_url``: argument, else ``OPENROUTER_BASE_URL``, else ``https://openrouter.ai/api/v1``.
- ``timeout``: follows the audio's duration (``stt_frames.timeouts``): 120 s + 1 s per audio second to
  read the answer (600 s when the duration is unknown), 10 s to connect. A number or ``httpx.Timeout``
  given to the client, or to one call, replaces it.
- ``max_retries``: 5 retries after the first try, for 408, 429, 5xx, timeouts and dropped connections;
  waits honour ``retry-after-ms`` / ``Retry-After`` (up to 300 s), else backoff 0.5 s, 1 s, 2 s ... 30 s with jitter.
  A request whose body was fully sent before the connection failed or timed out may have been processed
  and billed: it is sent again at most once (``client.possibly_billed_twice`` counts those second sends).
- ``max_audio_bytes``: 25 MB per file.
- ``AsyncClient`` sends through the aiohttp transport (``httpx-aiohttp``), which keeps its throughput with
  hundreds of requests in flight where httpx's own pool does not (see ``bench/``); at most 256 connections.

Example::

    from stt_frames import Client
    with Client() as client:
        t = client.transcribe("data/en/flite_slt_00.wav", model="openai/whisper-large-v3")
    print(t.text, t.usage.cost)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Self

import httpx

from ._http import build_body, map_transport_error, parse_response
from ._settings import DEFAULT_TIMEOUT, NOT_GIVEN, NotGiven, Settings, resolve_settings
from .audio import DEFAULT_MAX_AUDIO_BYTES, AudioInput, prepare_audio
from .errors import APIConnectionError, APIStatusError, MalformedResponseError, STTError
from .retry import backoff, should_retry_status
from .timeouts import TimeoutArg, as_timeout, timeout_for
from .types import Transcription

__all__ = ["DEFAULT_MAX_CONNECTIONS", "AsyncClient", "Client", "RetryHook"]

log = logging.getLogger("stt_frames.client")

#: Connection cap of AsyncClient's pool (requests in flight are bounded by the caller, e.g. ``concurrency``).
DEFAULT_MAX_CONNECTIONS: Final = 256

#: Called before each retry with the error and the wait in seconds (transcribe_column uses it to slow down on 429).
RetryHook = Callable[[STTError, float], None]

AudioLike = bytes | bytearray | memoryview | str | os.PathLike[str]

#: Bodies larger than this are built (base64) in a worker thread, so the event loop never stalls on them.
_OFF_LOOP_BYTES: Final = 1 << 20


def request_was_sent(exc: Exception) -> bool:
    """Whether a transport failure came after the whole request went out (the server may have processed it).

    Connect failures and failures while writing the body are safe to resend; a read timeout, a dropped
    connection or a cut-off answer after the body was sent are not.
    """
    if isinstance(exc, httpx.ConnectError | httpx.PoolTimeout | httpx.WriteError | httpx.WriteTimeout):
        return False
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        return False
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.split(".")[0] == "aiohttp":
        import aiohttp

        # the aiohttp transport maps every aiohttp connection error to ConnectTimeout: look at the cause
        return not isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return not isinstance(exc, httpx.ConnectTimeout)


def _audio_seconds(clip: AudioInput) -> float | None:
    from .chunking import probe_seconds

    return probe_seconds(clip.data)


class _BaseClient:
    def __init__(
        self,
        *,
        api_key: str | NotGiven | None = NOT_GIVEN,
        base_url: str | NotGiven | None = NOT_GIVEN,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        http_referer: str | None = None,
        x_title: str | None = None,
        max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_referer=http_referer,
            x_title=x_title,
        )
        self.max_audio_bytes = max_audio_bytes
        self.on_retry = on_retry
        #: Requests sent a second time after their first send may have been processed (see the module docstring).
        self.possibly_billed_twice = 0
        # a timeout chosen by the caller is used as is; the default one follows each request's audio duration
        self._timeout_given = self._settings.timeout != DEFAULT_TIMEOUT
        # Parsed once: httpx would parse the URL string again on every request (~30 us, see bench/).
        self._endpoint = httpx.URL(self._settings.endpoint)

    @property
    def settings(self) -> Settings:
        """The resolved settings (their repr never shows the key)."""
        return self._settings

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._settings.base_url

    def __repr__(self) -> str:
        key = "<set>" if self._settings.api_key else None
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def _request_body(
        self,
        audio: AudioLike | AudioInput,
        *,
        model: str,
        language: str | None,
        temperature: float | None,
        provider_options: Mapping[str, Any] | None,
        format: str | None,
        extra_body: Mapping[str, Any] | None,
    ) -> tuple[bytes, AudioInput]:
        clip = (
            audio
            if isinstance(audio, AudioInput)
            else prepare_audio(audio, format=format, max_bytes=self.max_audio_bytes)
        )
        return build_body(
            clip,
            model=model,
            language=language,
            temperature=temperature,
            provider_options=provider_options,
            extra_body=extra_body,
        ), clip

    def _timeout(self, timeout: TimeoutArg | NotGiven | None, clip: AudioInput, body: bytes) -> httpx.Timeout:
        """This request's timeout: the call's, else the client's when chosen, else one that follows the audio."""
        if not isinstance(timeout, NotGiven) and timeout is not None:
            return as_timeout(timeout)
        if self._timeout_given:
            return self._settings.timeout
        return timeout_for(audio_seconds=_audio_seconds(clip), body_bytes=len(body))

    def _outcome(self, response: httpx.Response) -> Transcription:
        return parse_response(response, self._settings)

    def _retry_wait(self, err: STTError, headers: Mapping[str, str] | None, attempt: int, resent: bool) -> float | None:
        """Seconds to wait before the next try, or None when ``err`` is final.

        ``resent``: a send of this request already went out whole without an answer; a second such
        failure is final, so one request is never billed more than twice.
        """
        if attempt >= self._settings.max_retries:
            return None
        if isinstance(err, APIConnectionError) and err.request_sent and resent:
            err.args = (
                f"{err}; not sent a third time: the server may have processed both sends (and billed them). "
                "Raise timeout= if the provider is slow",
            )
            return None
        if isinstance(err, APIStatusError):
            if not should_retry_status(err.status, headers):
                return None
            wait = err.retry_after if err.retry_after is not None else backoff(attempt)
        elif isinstance(err, APIConnectionError):
            wait = backoff(attempt)
        else:
            return None
        if isinstance(err, APIConnectionError) and err.request_sent:
            self.possibly_billed_twice += 1
            log.warning("sending again after %s: the first send may have been processed and billed", type(err).__name__)
        log.info("retrying after %s (attempt %d, waiting %.2fs)", type(err).__name__, attempt + 1, wait)
        if self.on_retry is not None:
            self.on_retry(err, wait)
        return wait

    def _models_url(self) -> str:
        return f"{self.base_url}/models"


class _PiecewiseBody(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A request body handed to the transport in pieces, without copying it (resendable: each send starts over)."""

    def __init__(self, body: bytes, piece: int = _OFF_LOOP_BYTES) -> None:
        self._view = memoryview(body)
        self._piece = piece

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self._view), self._piece):
            yield self._view[i : i + self._piece]  # type: ignore[misc]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._view), self._piece):
            yield self._view[i : i + self._piece]  # type: ignore[misc]


def _settings_arguments(settings: Settings) -> dict[str, Any]:
    """A client's keyword arguments that reproduce ``settings`` (for ``from_settings``)."""
    return {
        "api_key": settings.api_key,
        "base_url": settings.base_url,
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        "http_referer": settings.http_referer,
        "x_title": settings.x_title,
    }


def _transport_error(exc: httpx.TransportError, settings: Settings) -> STTError:
    err = map_transport_error(exc, settings)
    if isinstance(err, APIConnectionError):
        err.request_sent = request_was_sent(exc)
    return err


def _models_from(response: httpx.Response, settings: Settings) -> list[dict[str, Any]]:
    if response.status_code >= 400:
        parse_response(response, settings)  # raises the mapped error
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        raise MalformedResponseError(f"{response.status_code}: /models did not answer with {{'data': [...]}}")
    return [m for m in data if isinstance(m, dict)]


def _environment_proxy(url: httpx.URL) -> httpx.Proxy | None:
    """The proxy ``HTTPS_PROXY``/``ALL_PROXY`` name for an https URL (``NO_PROXY`` respected), like httpx's own.

    Plain-http URLs get none: the key would cross the proxy in clear, and they are for loopback servers.
    """
    if url.scheme != "https":
        return None
    import urllib.request

    proxies = urllib.request.getproxies()
    target = proxies.get("https") or proxies.get("all")
    if not target or urllib.request.proxy_bypass(url.host):
        return None
    return httpx.Proxy(target)


class Client(_BaseClient):
    """Synchronous speech-to-text client for OpenRouter (or any server speaking the same API).

    All options are keyword-only; see the module docstring for every default.

    Example::

        client = stt_frames.Client(base_url="http://127.0.0.1:8787/api/v1")
        client.transcribe("data/en/flite_slt_00.wav", model="local/pocketsphinx").text
    """

    def __init__(
        self,
        *,
        api_key: str | NotGiven | None = NOT_GIVEN,
        base_url: str | NotGiven | None = NOT_GIVEN,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        http_referer: str | None = None,
        x_title: str | None = None,
        max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
        transport: httpx.BaseTransport | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_referer=http_referer,
            x_title=x_title,
            max_audio_bytes=max_audio_bytes,
            on_retry=on_retry,
        )
        self._user_transport = transport  # transcribe_column runs it from worker threads
        # An http proxy from the environment would get the key in clear: plain http is for loopback servers only.
        trust_env = self._endpoint.scheme == "https"
        self._http = httpx.Client(
            transport=transport, timeout=self._settings.timeout, headers=self._settings.headers(), trust_env=trust_env
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
        transport: httpx.BaseTransport | None = None,
        on_retry: RetryHook | None = None,
    ) -> Client:
        """A new Client with the same settings (key, base_url, timeout, retries, headers)."""
        return cls(
            **_settings_arguments(settings), max_audio_bytes=max_audio_bytes, transport=transport, on_retry=on_retry
        )

    def transcribe(
        self,
        audio: AudioLike | AudioInput,
        *,
        model: str,
        language: str | None = None,
        temperature: float | None = None,
        provider_options: Mapping[str, Any] | None = None,
        format: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg | NotGiven | None = NOT_GIVEN,
    ) -> Transcription:
        """Transcribe one file (a path) or raw bytes (``format`` given or sniffed from the bytes).

        ``extra_body`` adds fields that newer versions of the API accept. ``timeout`` (seconds or an
        ``httpx.Timeout``) replaces the client's for this call. Retries what can be retried.

        Example::

            t = client.transcribe("a.mp3", model="openai/whisper-1", language="en")
        """
        body, clip = self._request_body(
            audio,
            model=model,
            language=language,
            temperature=temperature,
            provider_options=provider_options,
            format=format,
            extra_body=extra_body,
        )
        tmo = self._timeout(timeout, clip, body)
        attempt = 0
        resent = False
        while True:
            headers: Mapping[str, str] | None = None
            started = time.perf_counter()
            try:
                response = self._http.post(self._endpoint, content=body, timeout=tmo)
                headers = response.headers
                log.debug(
                    "POST %s -> %d in %.3fs",
                    self._settings.endpoint,
                    response.status_code,
                    time.perf_counter() - started,
                )
                return self._outcome(response)
            except httpx.TransportError as exc:
                err: STTError = _transport_error(exc, self._settings)
            except STTError as exc:
                err = exc
            wait = self._retry_wait(err, headers, attempt, resent)
            if wait is None:
                raise err
            resent = resent or (isinstance(err, APIConnectionError) and err.request_sent)
            time.sleep(wait)
            attempt += 1

    def list_models(self) -> list[dict[str, Any]]:
        """The speech-to-text models the server lists (``GET /models?output_modalities=transcription``)."""
        response = self._http.get(self._models_url(), params={"output_modalities": "transcription"})
        return _models_from(response, self._settings)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """Asynchronous client; the same API as ``Client`` with ``await``. Use one per event loop.

    Example::

        async with stt_frames.AsyncClient() as client:
            t = await client.transcribe("a.wav", model="openai/whisper-large-v3")
    """

    def __init__(
        self,
        *,
        api_key: str | NotGiven | None = NOT_GIVEN,
        base_url: str | NotGiven | None = NOT_GIVEN,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        http_referer: str | None = None,
        x_title: str | None = None,
        max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_referer=http_referer,
            x_title=x_title,
            max_audio_bytes=max_audio_bytes,
            on_retry=on_retry,
        )
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._user_transport = transport  # reused by from_settings() copies on other event loops
        if transport is None:
            from httpx_aiohttp import AiohttpTransport

            # plain http (a loopback server) needs no TLS: skip loading the CA bundle (~20 ms a client)
            transport = AiohttpTransport(
                limits=limits, proxy=_environment_proxy(self._endpoint), verify=self._endpoint.scheme == "https"
            )
        self._transport = transport
        self._request_headers = httpx.Headers(self._settings.headers())
        self._timeout_ext = self._settings.timeout.as_dict()
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self._settings.timeout, headers=self._settings.headers(), limits=limits
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: RetryHook | None = None,
    ) -> AsyncClient:
        """A new AsyncClient with the same settings (for use on another event loop)."""
        return cls(
            **_settings_arguments(settings), max_audio_bytes=max_audio_bytes, transport=transport, on_retry=on_retry
        )

    async def transcribe(
        self,
        audio: AudioLike | AudioInput,
        *,
        model: str,
        language: str | None = None,
        temperature: float | None = None,
        provider_options: Mapping[str, Any] | None = None,
        format: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg | NotGiven | None = NOT_GIVEN,
    ) -> Transcription:
        """Transcribe one file or raw bytes; see ``Client.transcribe``.

        A large body is read, encoded and timed in a worker thread, so other requests go on meanwhile.

        Example::

            t = await client.transcribe("a.wav", model="openai/whisper-1")
        """

        def prepare() -> tuple[bytes, httpx.Timeout]:
            body, clip = self._request_body(
                audio,
                model=model,
                language=language,
                temperature=temperature,
                provider_options=provider_options,
                format=format,
                extra_body=extra_body,
            )
            return body, self._timeout(timeout, clip, body)

        small = (
            isinstance(audio, AudioInput | bytes | bytearray | memoryview)
            and len(audio.data if isinstance(audio, AudioInput) else audio) <= _OFF_LOOP_BYTES
        )
        body, tmo = prepare() if small else await asyncio.to_thread(prepare)
        timeout_ext = self._timeout_ext if tmo == self._settings.timeout else tmo.as_dict()
        attempt = 0
        resent = False
        while True:
            headers: Mapping[str, str] | None = None
            try:
                response = await self._post(body, timeout_ext)
                headers = response.headers
                return self._outcome(response)
            except httpx.TransportError as exc:
                err: STTError = _transport_error(exc, self._settings)
            except STTError as exc:
                err = exc
            wait = self._retry_wait(err, headers, attempt, resent)
            if wait is None:
                raise err
            resent = resent or (isinstance(err, APIConnectionError) and err.request_sent)
            await asyncio.sleep(wait)
            attempt += 1

    async def _post(self, body: bytes, timeout: dict[str, float | None] | None = None) -> httpx.Response:
        """One POST straight through the transport, read to the end.

        httpx's request and response types and transports are kept; its client-level machinery (auth
        flows, redirects, cookies, event hooks), which a JSON POST with a bearer header does not use,
        is skipped: that is about 200 microseconds a request, the difference between 87 % and 90 % of
        ideal throughput with 128 requests in flight (``bench/client_throughput.py``).
        """
        extensions = {"timeout": self._timeout_ext if timeout is None else timeout}
        if len(body) <= _OFF_LOOP_BYTES:
            request = httpx.Request(
                "POST", self._endpoint, headers=self._request_headers, content=body, extensions=extensions
            )
        else:
            # a large body goes out in 1 MiB pieces (the loop serves other requests between them), with its length
            headers = httpx.Headers(self._request_headers)
            headers["Content-Length"] = str(len(body))
            request = httpx.Request(
                "POST", self._endpoint, headers=headers, stream=_PiecewiseBody(body), extensions=extensions
            )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def list_models(self) -> list[dict[str, Any]]:
        """The speech-to-text models the server lists."""
        response = await self._http.get(self._models_url(), params={"output_modalities": "transcription"})
        return _models_from(response, self._settings)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
