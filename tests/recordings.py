"""Long recordings for tests and benchmarks, built from the speech clips of data/ (PyAV, no system tools).

``speech_recording(seconds)`` joins the English clips of data/ in a fixed shuffled order, with a pause
between them, until the recording is at least ``seconds`` long, and returns the 16 kHz mono samples,
the reference transcript and the clips' own paths. ``write_audio`` writes samples as WAV (any rate or
channel count) or any format PyAV encodes (MP3, FLAC, Ogg ...).

Example::

    from recordings import speech_recording, write_audio
    rec = speech_recording(120)
    write_audio("long.wav", rec.samples)
"""

from __future__ import annotations

import io
import random
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
RATE = 16_000


def decode(path: str | Path, *, rate: int = RATE) -> np.ndarray:
    """A file's audio as mono int16 samples at ``rate``."""
    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out)


@dataclass(frozen=True)
class Recording:
    """A long recording: 16 kHz mono int16 ``samples``, its ``reference`` text, and the clips it joins."""

    samples: np.ndarray
    reference: str
    clips: list[str]
    references: list[str]

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def english_clips() -> pd.DataFrame:
    """data/samples.csv's English rows, with absolute paths."""
    df = pd.read_csv(DATA / "samples.csv")
    df = df[df["language"] == "en"].reset_index(drop=True)
    df["path"] = [str(DATA / p) for p in df["path"]]
    return df


def speech_recording(seconds: float, *, pause: float = 1.5, seed: int = 0) -> Recording:
    """Clips of data/en joined with ``pause`` seconds of silence until the whole lasts ``seconds``."""
    df = english_clips()
    decoded = {p: decode(p) for p in df["path"]}
    rng = random.Random(seed)
    gap = np.zeros(int(pause * RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    clips: list[str] = []
    refs: list[str] = []
    total = 0
    while total < seconds * RATE:
        order = list(range(len(df)))
        rng.shuffle(order)
        for i in order:
            path = df["path"][i]
            parts += [decoded[path], gap]
            clips.append(path)
            refs.append(df["reference"][i])
            total += len(decoded[path]) + len(gap)
            if total >= seconds * RATE:
                break
    return Recording(np.concatenate(parts), " ".join(refs), clips, refs)


def noise_bursts(bursts: int, *, burst: float = 2.3, pause: float = 0.7, seed: int = 1) -> np.ndarray:
    """Loud noise bursts separated by digital silence: every pause is exactly zero."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(bursts):
        parts.append((rng.standard_normal(int(RATE * burst)) * 3000).astype(np.int16))
        parts.append(np.zeros(int(RATE * pause), dtype=np.int16))
    return np.concatenate(parts)


def resample(samples: np.ndarray, rate: int, channels: int = 1) -> np.ndarray:
    """16 kHz mono int16 samples as ``(frames, channels)`` int16 at ``rate`` (linear interpolation)."""
    n = int(len(samples) * rate / RATE)
    x = np.interp(np.arange(n) * RATE / rate, np.arange(len(samples)), samples.astype(np.float64))
    mono = np.clip(x, -32768, 32767).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def wav_bytes(samples: np.ndarray, *, rate: int = RATE, channels: int = 1) -> bytes:
    """16-bit PCM WAV bytes of ``samples`` (16 kHz mono in, resampled to ``rate`` and ``channels``)."""
    frames = samples if rate == RATE and channels == 1 else resample(samples, rate, channels)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(frames).tobytes())
    return buf.getvalue()


def write_audio(path: str | Path, samples: np.ndarray, *, rate: int = RATE, channels: int = 1) -> Path:
    """Write 16 kHz mono ``samples`` to ``path`` at ``rate``/``channels``; the extension picks the format."""
    path = Path(path)
    if path.suffix == ".wav":
        path.write_bytes(wav_bytes(samples, rate=rate, channels=channels))
        return path
    frames = resample(samples, rate, channels)
    codec = {".mp3": "libmp3lame", ".flac": "flac", ".ogg": "libopus", ".m4a": "aac"}[path.suffix]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=48_000 if codec == "libopus" else rate, layout=layout)
        fmt = "s16p" if codec == "libmp3lame" else ("fltp" if codec == "aac" else "s16")
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=stream.rate)
        step = rate * 10
        for i in range(0, len(frames), step):
            block = np.ascontiguousarray(frames[i : i + step].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout=layout)
            frame.sample_rate = rate
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
