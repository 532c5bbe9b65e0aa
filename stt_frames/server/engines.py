"""The speech-to-text engines behind the local server, one per model id.

- ``fake/echo``: instant and deterministic, text ``"echo <first 8 hex of sha256(audio)> <seconds>s"``.
  Needs only the ``server`` extra for WAV (duration from the header); other formats need PyAV.
- ``local/pocketsphinx``: real English recognition with the model inside the pocketsphinx wheel.
- ``local/pocketsphinx-fast``: the same with narrow beams: about twice as fast, less accurate.

CPU work runs in a worker thread; a pocketsphinx ``Decoder`` is not thread-safe, so each engine keeps a
pool of decoders and a thread takes one for the length of a decode. pocketsphinx holds the GIL while it
searches, so audio is decoded in pieces of at most ``MAX_SEGMENT_SECONDS``, cut at the quietest 100 ms
near each boundary: the event loop gets the GIL back between pieces. (Decoding a piece whole, rather than
streaming it in small chunks, keeps the accuracy: batch cepstral normalisation.)

Example::

    from stt_frames.server.engines import build_engines
    sorted(build_engines())  # ['fake/echo', 'local/pocketsphinx', 'local/pocketsphinx-fast']
"""

from __future__ import annotations

import importlib.util
import queue
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._extras import require
from .decode import SAMPLE_RATE, UnsupportedWavEncoding, decode_pcm16, wav_duration
from .languages import ISO_639_1

__all__ = [
    "MAX_SEGMENT_SECONDS",
    "EchoEngine",
    "Engine",
    "PocketsphinxEngine",
    "Runner",
    "Transcript",
    "build_engines",
    "split_quiet",
]

T = TypeVar("T")

#: Runs a blocking function off the event loop: ``await runner(fn, *args)``.
Runner = Callable[..., Awaitable[Any]]

#: Narrow beams of ``local/pocketsphinx-fast`` (pocketsphinx's defaults: beam 1e-48, wbeam 7e-29,
#: pbeam 1e-48, maxhmmpf 30000, maxwpf -1).
FAST_DECODER_OPTIONS: dict[str, Any] = {
    "beam": 1e-35,
    "wbeam": 1e-25,
    "pbeam": 1e-35,
    "maxhmmpf": 5000,
    "maxwpf": 10,
}


#: Longest piece of audio given to pocketsphinx in one call (it holds the GIL for the whole call).
MAX_SEGMENT_SECONDS: float = 20.0


def split_quiet(pcm: bytes, *, max_seconds: float = MAX_SEGMENT_SECONDS) -> list[bytes]:
    """Split 16 kHz int16 PCM into pieces of at most ``max_seconds``, each cut at the quietest 100 ms
    window of the last quarter of its span.

    Example::

        [len(p) / 32000 for p in split_quiet(pcm)]  # e.g. [18.3, 19.1, 4.2]
    """
    np = require("numpy", "local", "the pocketsphinx engines")
    window = SAMPLE_RATE // 10
    limit = int(max_seconds * SAMPLE_RATE)
    samples = np.frombuffer(pcm, dtype="<i2")
    pieces: list[bytes] = []
    start = 0
    while len(samples) - start > limit:
        lo = start + (3 * limit) // 4
        span = samples[lo : start + limit].astype(np.float64)
        n = len(span) // window
        energy = (span[: n * window].reshape(n, window) ** 2).sum(axis=1)
        cut = lo + int(energy.argmin()) * window + window // 2
        pieces.append(samples[start:cut].tobytes())
        start = cut
    pieces.append(samples[start:].tobytes())
    return pieces


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine returns: the text and the duration of the audio it heard."""

    text: str
    seconds: float


class Engine:
    """A model the server serves. Subclasses set the metadata and implement ``transcribe``."""

    id: str = ""
    name: str = ""
    description: str = ""
    languages: frozenset[str] = frozenset()
    default_language: str = "en"
    #: Optional modules the engine needs, as (module, extra).
    requires: tuple[tuple[str, str], ...] = ()

    def missing_modules(self) -> list[str]:
        """The required optional modules that are not installed (empty when the engine can run)."""
        return [m for m, _ in self.requires if importlib.util.find_spec(m) is None]

    async def transcribe(self, audio: bytes, format: str, *, sha256: str, language: str, run: Runner) -> Transcript:
        """Transcribe ``audio`` (raw file bytes in a contract ``format``); blocking work goes to ``run``."""
        raise NotImplementedError


def _decoded_seconds(audio: bytes, format: str) -> float:
    return len(decode_pcm16(audio, format)) / (2 * SAMPLE_RATE)


class EchoEngine(Engine):
    """``fake/echo``: echoes a fingerprint and the duration of the audio. Accepts every ISO-639-1 code."""

    id = "fake/echo"
    name = "Fake: Echo"
    description = "Deterministic and instant: 'echo <sha256[:8]> <seconds>s'. For tests and benchmarks."
    languages = ISO_639_1

    async def transcribe(self, audio: bytes, format: str, *, sha256: str, language: str, run: Runner) -> Transcript:
        if format == "wav":
            try:
                seconds = wav_duration(audio)
            except UnsupportedWavEncoding:
                seconds = await run(_decoded_seconds, audio, format)
        else:
            seconds = await run(_decoded_seconds, audio, format)
        return Transcript(text=f"echo {sha256[:8]} {seconds:.2f}s", seconds=seconds)


class PocketsphinxEngine(Engine):
    """Offline English recognition with pocketsphinx's bundled model; ``options`` tune the decoder."""

    languages = frozenset({"en"})
    requires = (("pocketsphinx", "local"), ("av", "local"))

    def __init__(self, model_id: str, name: str, description: str, options: dict[str, Any]) -> None:
        self.id = model_id
        self.name = name
        self.description = description
        self.options = dict(options)
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _new_decoder(self) -> Any:
        ps = require("pocketsphinx", "local", f"the {self.id} engine")
        return ps.Decoder(loglevel="ERROR", **self.options)

    def recognise(self, audio: bytes, format: str) -> Transcript:
        """Decode and recognise in the calling thread (blocking). The server calls it in a worker thread.

        Example::

            engine = build_engines()["local/pocketsphinx"]
            engine.recognise(open("hello.wav", "rb").read(), "wav").text  # 'hello world'
        """
        pcm = decode_pcm16(audio, format)
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            decoder = self._new_decoder()
        words: list[str] = []
        for piece in split_quiet(pcm):
            decoder.start_utt()
            decoder.process_raw(piece, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            if hyp is not None:
                words += hyp.hypstr.split()
        self._idle.put(decoder)  # not returned to the pool if anything above raised
        return Transcript(text=" ".join(words), seconds=len(pcm) / (2 * SAMPLE_RATE))

    async def transcribe(self, audio: bytes, format: str, *, sha256: str, language: str, run: Runner) -> Transcript:
        result: Transcript = await run(self.recognise, audio, format)
        return result


def build_engines() -> dict[str, Engine]:
    """A fresh engine for each model id the server knows, keyed by id.

    Example::

        engines = build_engines()
        engines["fake/echo"].languages  # every ISO-639-1 code
    """
    engines: list[Engine] = [
        EchoEngine(),
        PocketsphinxEngine(
            "local/pocketsphinx",
            "Local: PocketSphinx (en-US)",
            "CMU PocketSphinx with its bundled US English acoustic and language model; offline, CPU.",
            {},
        ),
        PocketsphinxEngine(
            "local/pocketsphinx-fast",
            "Local: PocketSphinx fast (en-US)",
            "PocketSphinx with narrow search beams: about twice as fast, less accurate.",
            FAST_DECODER_OPTIONS,
        ),
    ]
    return {engine.id: engine for engine in engines}
