"""The speech-to-text engines behind the local server, one per model id.

- ``fake/echo``: instant and deterministic, text ``"echo <first 8 hex of sha256(audio)> <seconds>s"``.
  Needs only the ``server`` extra for WAV (duration from the header); other formats need PyAV.
- ``local/pocketsphinx``: real English recognition with the model inside the pocketsphinx wheel.
- ``local/pocketsphinx-fast``: the same with narrow beams: about twice as fast, less accurate.
- ``local/whisper-tiny.en``, ``local/whisper-base`` and ``local/whisper-<name>``: OpenAI Whisper through
  faster-whisper (the ``whisper`` extras; see ``whisper`` and ``whisper_models``).

How a pocketsphinx request is decoded (the work runs in the server's worker processes, see ``workers``):

1. One job decodes the file to 16 kHz mono PCM (refusing audio over ``max_audio_seconds``) and cuts it
   into utterances at pauses with pocketsphinx's voice-activity detector (``speech_segments``); an
   utterance longer than ``MAX_SEGMENT_SECONDS`` is cut again at its quietest 100 ms (``split_quiet``).
2. Each utterance is then one job (``recognise_utterance``), so a long recording uses every worker, and a
   request whose client goes away stops between utterances. The words are joined in order.

Each worker process keeps one ``Decoder`` per model, created on its first utterance (loading the model
takes about half a second). Before each utterance its front end is reset (``reinit_feat``, a fraction of a
millisecond): without that, the noise and feature state left by the previous utterance changes a word
now and then. Every utterance is decoded whole (``full_utt=True``, batch cepstral normalisation), so the
same audio gets the same text as from a new decoder, whichever worker decodes it and whatever it decoded
before (``tests/test_server_engines.py`` checks it).

Example::

    from stt_frames.server.engines import build_engines
    sorted(build_engines())  # ['fake/echo', 'local/pocketsphinx', 'local/pocketsphinx-fast', 'local/whisper-base', ...]
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._extras import require
from .decode import (
    SAMPLE_RATE,
    DecodeError,
    UnsupportedWavEncoding,
    check_duration,
    decode_pcm16,
    wav_duration,
)
from .languages import ISO_639_1

if TYPE_CHECKING:
    from .workers import EngineWorkers

__all__ = [
    "FAST_DECODER_OPTIONS",
    "MAX_SEGMENT_SECONDS",
    "EchoEngine",
    "Engine",
    "PocketsphinxEngine",
    "Transcript",
    "build_engines",
    "prepare_speech",
    "recognise_utterance",
    "speech_segments",
    "split_quiet",
]

#: Narrow beams of ``local/pocketsphinx-fast`` (pocketsphinx's defaults: beam 1e-48, wbeam 7e-29,
#: pbeam 1e-48, maxhmmpf 30000, maxwpf -1).
FAST_DECODER_OPTIONS: dict[str, Any] = {
    "beam": 1e-35,
    "wbeam": 1e-25,
    "pbeam": 1e-35,
    "maxhmmpf": 5000,
    "maxwpf": 10,
}


#: Longest utterance given to pocketsphinx in one job: speech without a pause for longer is cut at its
#: quietest moment (this bounds a job's time, and so how long a cancelled request keeps a worker busy).
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


def speech_segments(pcm: bytes, *, max_seconds: float = MAX_SEGMENT_SECONDS) -> list[bytes]:
    """The utterances of 16 kHz int16 PCM: its speech regions, cut at pauses by pocketsphinx's voice-activity
    detector (``pocketsphinx.Endpointer``, its defaults: 0.3 s windows, the loosest mode), silence dropped.

    A region longer than ``max_seconds`` is cut with ``split_quiet``. Silence alone gives no utterance.

    Example::

        [len(u) / 32000 for u in speech_segments(pcm)]  # e.g. [2.9, 3.4, 1.7]
    """
    ps = require("pocketsphinx", "local", "the pocketsphinx engines")
    endpointer = ps.Endpointer(sample_rate=SAMPLE_RATE)
    step = endpointer.frame_bytes
    regions: list[bytes] = []
    current: list[bytes] = []
    whole = len(pcm) - len(pcm) % step
    for offset in range(0, whole, step):
        speech = endpointer.process(pcm[offset : offset + step])
        if speech is not None:
            current.append(speech)
            if not endpointer.in_speech:
                regions.append(b"".join(current))
                current = []
    if endpointer.in_speech:  # the audio ends in speech: flush what the endpointer still holds
        tail = pcm[whole:]
        speech = endpointer.end_stream(tail or bytes(2))  # it needs a sample; that one is dropped again
        if speech is not None:
            current.append(speech if tail else speech[:-2])
    if current:
        regions.append(b"".join(current))
    return [piece for region in regions for piece in split_quiet(region, max_seconds=max_seconds)]


# --- the jobs of the worker processes (module-level functions with plain arguments: picklable) ------------

#: This process's pocketsphinx decoders by model id, created on first use (only ever used in one thread).
_DECODERS: dict[str, Any] = {}


def prepare_speech(audio: bytes, format: str, max_seconds: float) -> tuple[float, list[bytes]]:
    """Job 1 of a pocketsphinx request: decode the file, refuse it over ``max_seconds``, cut it into utterances.

    Returns (the audio's duration in seconds, its utterances as PCM).
    """
    pcm = decode_pcm16(audio, format, max_seconds=max_seconds)
    seconds = check_duration(len(pcm) / (2 * SAMPLE_RATE), max_seconds)
    return seconds, speech_segments(pcm)


def recognise_utterance(model_id: str, options: dict[str, Any], pcm: bytes) -> str:
    """Job 2: the words pocketsphinx hears in one utterance, with this process's decoder for ``model_id``.

    Example::

        recognise_utterance("local/pocketsphinx", {}, pcm)  # 'hello world'
    """
    decoder = _DECODERS.pop(model_id, None)  # not put back if the decode below raises
    if decoder is None:
        ps = require("pocketsphinx", "local", f"the {model_id} engine")
        decoder = ps.Decoder(loglevel="ERROR", **options)
    else:
        decoder.reinit_feat()  # forget what the previous utterance left in the front end
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    _DECODERS[model_id] = decoder
    return str(hyp.hypstr) if hyp is not None else ""


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
    #: Appended to the 400 for a language the engine does not support (e.g. which model to use instead).
    language_note: str = ""

    def missing_modules(self) -> list[str]:
        """What the engine needs and this machine lacks (empty when the engine can run)."""
        return [m for m, _ in self.requires if importlib.util.find_spec(m) is None]

    def unavailable_message(self, missing: list[str]) -> str:
        """The 404's message for a request to this engine when ``missing`` (from ``missing_modules``) is not empty."""
        extras = sorted({extra for module, extra in self.requires if module in missing}) or ["local"]
        return (
            f"model {self.id!r} needs the optional package(s) {', '.join(missing)}, not installed on "
            f"this server: pip install 'stt-frames[{','.join(extras)}]'"
        )

    async def transcribe(
        self,
        audio: bytes,
        format: str,
        *,
        sha256: str,
        language: str,
        workers: EngineWorkers,
        max_seconds: float,
        temperature: float | None = None,
    ) -> Transcript:
        """Transcribe ``audio`` (raw file bytes in a contract ``format``) on ``workers``.

        ``temperature`` is the request's (None when not given; engines that do not sample ignore it).
        Raises DecodeError for undecodable audio, AudioTooLong (a DecodeError) past ``max_seconds``.
        """
        raise NotImplementedError


def _decoded_seconds(audio: bytes, format: str, max_seconds: float) -> float:
    return len(decode_pcm16(audio, format, max_seconds=max_seconds)) / (2 * SAMPLE_RATE)


class EchoEngine(Engine):
    """``fake/echo``: echoes a fingerprint and the duration of the audio. Accepts every ISO-639-1 code.

    It stays in the server process: a WAV file's duration comes from its header, other formats are
    decoded in a thread.
    """

    id = "fake/echo"
    name = "Fake: Echo"
    description = "Deterministic and instant: 'echo <sha256[:8]> <seconds>s'. For tests and benchmarks."
    languages = ISO_639_1

    async def transcribe(
        self,
        audio: bytes,
        format: str,
        *,
        sha256: str,
        language: str,
        workers: EngineWorkers,
        max_seconds: float,
        temperature: float | None = None,
    ) -> Transcript:
        try:
            if format != "wav":
                raise UnsupportedWavEncoding(format)
            seconds = wav_duration(audio)
        except UnsupportedWavEncoding:
            seconds = await workers.in_thread(_decoded_seconds, audio, format, max_seconds)
        check_duration(seconds, max_seconds)
        return Transcript(text=f"echo {sha256[:8]} {seconds:.2f}s", seconds=seconds)


class PocketsphinxEngine(Engine):
    """Offline English recognition with pocketsphinx's bundled model; ``options`` tune the decoder."""

    languages = frozenset({"en"})
    requires = (("pocketsphinx", "local"), ("av", "local"), ("numpy", "local"))

    def __init__(self, model_id: str, name: str, description: str, options: dict[str, Any]) -> None:
        self.id = model_id
        self.name = name
        self.description = description
        self.options = dict(options)

    async def transcribe(
        self,
        audio: bytes,
        format: str,
        *,
        sha256: str,
        language: str,
        workers: EngineWorkers,
        max_seconds: float,
        temperature: float | None = None,
    ) -> Transcript:
        if format == "wav":  # refuse a long WAV file from its header, before shipping it to a worker
            try:
                header_seconds = wav_duration(audio)
            except DecodeError:
                pass  # the decoder in the worker says what is wrong, or copes
            else:
                check_duration(header_seconds, max_seconds)
        seconds, utterances = await workers.in_process(prepare_speech, audio, format, max_seconds)
        texts = await workers.map_in_processes(recognise_utterance, [(self.id, self.options, u) for u in utterances])
        return Transcript(text=" ".join(t for t in texts if t), seconds=seconds)


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
    from .whisper import whisper_engines  # here: whisper imports this module

    return {**{engine.id: engine for engine in engines}, **whisper_engines()}
