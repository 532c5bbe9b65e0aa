"""The Whisper engines of the local server: ``local/whisper-<name>`` through faster-whisper (CTranslate2, int8, CPU).

``local/whisper-tiny.en`` (English) and ``local/whisper-base`` (multilingual) come from pinned packages
(the ``whisper`` and ``whisper-base`` extras); every sub-folder of ``$STT_FRAMES_WHISPER_MODELS`` is served
too, as ``local/whisper-<sub-folder>``. Where the weights come from, and how they are checked, is in
``whisper_models``.

How a request is decoded (in the server's worker processes, like pocketsphinx):

1. One job decodes the file to 16 kHz mono PCM, refuses it over ``max_audio_seconds``, and cuts it into
   windows of at most ``WINDOW_SECONDS`` (Whisper's 30 s) at the quietest 100 ms near each limit.
2. Each window is one job: a long recording uses every worker, and a request whose client goes away
   stops between windows. The texts are joined in order.

Each worker keeps one ``WhisperModel`` per model, loaded (and its hash checked) on first use, with
``DEFAULT_CPU_THREADS`` threads: on 2 cores, 2 workers of 1 thread each decode more audio per second
than 1 worker of 2 threads (``bench/whisper_real.py`` measures both). A window is decoded on its own
(``condition_on_previous_text=False``) after CTranslate2's random seed is reset, so the same audio gets
the same text whatever the worker decoded before, even when a temperature above 0 samples.

``language`` picks the language (an English-only model accepts only ``en``); ``temperature`` is the first
of the temperatures tried: Whisper's fallback raises it by 0.2 while a window's text looks wrong
(compression ratio or log-probability), as OpenAI's API does.

Example::

    from stt_frames.server.whisper import whisper_engines
    sorted(whisper_engines())  # ['local/whisper-base', 'local/whisper-tiny.en']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._extras import require
from .decode import SAMPLE_RATE, DecodeError, check_duration, decode_pcm16, wav_duration
from .engines import Engine, Transcript, split_quiet
from .languages import WHISPER_CODES, WHISPER_LANGUAGES
from .whisper_models import PACKAGED, ModelLocation, install_hint, locate, materialise, user_models

if TYPE_CHECKING:
    from .workers import EngineWorkers

__all__ = [
    "BEAM_SIZE_ENV",
    "DEFAULT_BEAM_SIZE",
    "DEFAULT_CPU_THREADS",
    "THREADS_ENV",
    "WINDOW_SECONDS",
    "WhisperEngine",
    "prepare_windows",
    "recognise_window",
    "whisper_engines",
]

#: CTranslate2 threads per worker process (measured on 2 cores: 2 workers x 1 thread beat 1 x 2).
DEFAULT_CPU_THREADS: int = 1
#: Overrides ``DEFAULT_CPU_THREADS`` (for measuring).
THREADS_ENV = "STT_FRAMES_WHISPER_THREADS"

#: Beam width (measured on data/real/en: WER 4.4 % with beam 5 against 9.4 % with beam 1, of 1,017 words).
DEFAULT_BEAM_SIZE: int = 5
#: Overrides ``DEFAULT_BEAM_SIZE`` (for measuring).
BEAM_SIZE_ENV = "STT_FRAMES_WHISPER_BEAM_SIZE"

#: Longest window given to Whisper in one job: its encoder's 30 seconds.
WINDOW_SECONDS: float = 30.0

#: Step of Whisper's temperature fallback, from the request's temperature up to 1.0.
TEMPERATURE_STEP: float = 0.2


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else default


# --- the jobs of the worker processes ------------------------------------------------------------------------

#: This process's models by (directory, threads), loaded on first use.
_MODELS: dict[tuple[str, int], Any] = {}


def prepare_windows(audio: bytes, format: str, max_seconds: float) -> tuple[float, list[bytes]]:
    """Job 1 of a Whisper request: decode, refuse over ``max_seconds``, cut into windows of at most 30 s.

    A window that is all digital silence is dropped (Whisper would make up text for it).
    """
    pcm = decode_pcm16(audio, format, max_seconds=max_seconds)
    seconds = check_duration(len(pcm) / (2 * SAMPLE_RATE), max_seconds)
    windows = split_quiet(pcm, max_seconds=WINDOW_SECONDS)
    return seconds, [w for w in windows if w.strip(b"\x00")]


def _load(location: ModelLocation, threads: int) -> Any:
    """A new ``WhisperModel``: its decoding thread's random generator starts from seed 0."""
    fw = require("faster_whisper", "whisper", "the Whisper engines")
    ctranslate2 = require("ctranslate2", "whisper", "the Whisper engines")
    path = _PATHS.get(location.path)
    if path is None:  # join and check the pinned weights once per process
        path = _PATHS[location.path] = materialise(location)
    ctranslate2.set_random_seed(0)
    return fw.WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)


#: This process's checked model directories by location path.
_PATHS: dict[str, str] = {}


def _temperatures(first: float) -> tuple[float, ...]:
    steps = round((1.0 - first) / TEMPERATURE_STEP)
    return tuple(round(first + i * TEMPERATURE_STEP, 6) for i in range(steps + 1)) or (first,)


def _decode(model: Any, samples: Any, options: dict[str, Any], temperatures: tuple[float, ...]) -> list[Any]:
    segments, _ = model.transcribe(
        samples,
        language=WHISPER_CODES.get(options["language"], options["language"]),
        task="transcribe",
        beam_size=int(options.get("beam_size", DEFAULT_BEAM_SIZE)),
        temperature=temperatures,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
    )
    return list(segments)


def recognise_window(location: ModelLocation, options: dict[str, Any], pcm: bytes) -> str:
    """Job 2: Whisper's text for one window of 16 kHz int16 PCM.

    ``options``: ``language``, ``temperature`` (the first tried; None: 0), ``beam_size``, ``threads``.
    A decode that samples (a temperature above 0, asked for or reached by the fallback) runs on a freshly
    loaded model, whose random generator starts from the same seed: CTranslate2 keeps one generator per
    decoding thread and a seed set later does not reach it (the same model sampling twice gives two texts).

    Example::

        recognise_window(locate("tiny.en"), {"language": "en", "temperature": None}, pcm)  # 'Hello world.'
    """
    np = require("numpy", "whisper", "the Whisper engines")
    threads = int(options.get("threads", DEFAULT_CPU_THREADS))
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    first = float(options.get("temperature") or 0.0)
    temperatures = _temperatures(first)
    if first > 0:
        segments = _decode(_load(location, threads), samples, options, temperatures)
    else:
        key = (location.path, threads)
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _load(location, threads)
        segments = _decode(model, samples, options, temperatures)
        if any((s.temperature or 0.0) > 0 for s in segments):  # the fallback sampled: again, from the seed
            segments = _decode(_load(location, threads), samples, options, temperatures)
    return " ".join(s.text.strip() for s in segments if s.text.strip())


class WhisperEngine(Engine):
    """``local/whisper-<name>``: OpenAI Whisper ``name`` through faster-whisper, int8 on the CPU."""

    requires = (("faster_whisper", "whisper"), ("ctranslate2", "whisper"), ("av", "local"), ("numpy", "local"))

    def __init__(self, name: str) -> None:
        self.model_name = name
        self.id = f"local/whisper-{name}"
        self.location = locate(name)
        english = name.endswith(".en") if self.location is None else not self.location.multilingual
        self.languages = frozenset({"en"}) if english else WHISPER_LANGUAGES
        kind = "English" if english else "multilingual"
        self.name = f"Local: Whisper {name} ({kind})"
        source = self.location.source if self.location is not None else "not installed"
        self.description = f"OpenAI Whisper {name} through faster-whisper (CTranslate2, int8, CPU); {source}."
        if english:
            self.language_note = (
                f"; {self.id} is English-only: for other languages use local/whisper-base ({install_hint('base')})"
            )
        self.beam_size = _env_int(BEAM_SIZE_ENV, DEFAULT_BEAM_SIZE)
        self.threads = _env_int(THREADS_ENV, DEFAULT_CPU_THREADS)

    def missing_modules(self) -> list[str]:
        missing = super().missing_modules()
        if self.location is None:
            missing.append(f"the weights of Whisper {self.model_name}")
        return missing

    def unavailable_message(self, missing: list[str]) -> str:
        if any(m.startswith("the weights") for m in missing) or self.model_name in PACKAGED:
            return (
                f"model {self.id!r} is not installed on this server (missing: {', '.join(missing)}): "
                f"{install_hint(self.model_name)}"
            )
        return super().unavailable_message(missing)

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
        assert self.location is not None  # the server refuses a model whose weights are missing
        if format == "wav":  # refuse a long WAV file from its header, before shipping it to a worker
            try:
                header_seconds = wav_duration(audio)
            except DecodeError:
                pass  # the decoder in the worker says what is wrong, or copes
            else:
                check_duration(header_seconds, max_seconds)
        seconds, windows = await workers.in_process(prepare_windows, audio, format, max_seconds)
        options = {
            "language": language,
            "temperature": temperature,
            "beam_size": self.beam_size,
            "threads": self.threads,
        }
        texts = await workers.map_in_processes(recognise_window, [(self.location, options, w) for w in windows])
        return Transcript(text=" ".join(t for t in texts if t), seconds=seconds)


def whisper_engines() -> dict[str, Engine]:
    """An engine for each pinned Whisper model (installed or not) and each folder of ``$STT_FRAMES_WHISPER_MODELS``.

    Example::

        sorted(whisper_engines())  # ['local/whisper-base', 'local/whisper-tiny.en', ...]
    """
    names = dict.fromkeys([*PACKAGED, *user_models()])
    engines: dict[str, Engine] = {}
    for name in names:
        engine = WhisperEngine(name)
        engines[engine.id] = engine
    return engines
