"""One spending cap for a whole Dask cluster: a ``Budget`` held by a Dask Actor, and a local proxy of it.

``stt_frames.dask.transcribe(..., max_cost=10)`` creates one ``BudgetActor`` on a worker; every partition
gets a ``ClusterBudget`` that forwards ``reserve`` and ``settle`` to it. The actor holds an ordinary
``stt_frames._limits.Budget``, so the rule is the one-machine rule, applied once for the cluster: a request
is sent only when spent + the estimates of every request in flight on every worker + its own estimate stay
within ``max_cost``. Total spend is therefore at most ``max_cost`` plus what the in-flight requests cost
beyond their estimates.

Why an Actor and not a ``distributed.Variable`` guarded by a ``distributed.Lock``: a reservation through
the actor is one round trip to the worker that holds it; through a Variable it is four (acquire, get, set,
release), each through the scheduler. ``bench/dask_cluster.py`` measures both (``python -m bench --only
dask_cluster``).

Without a distributed client (the threaded or sync scheduler), ``LockedBudget`` shares one ``Budget`` in
the process under a lock.

Example::

    budget = ClusterBudget.create(max_cost=5.0)        # needs a distributed.Client
    ticket = budget.reserve(32_000)                     # None: the cap would be broken
    budget.settle(ticket, cost=0.01, size=32_000)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._limits import Budget
from ._spec import CacheArg, RunSpec
from .cache import Cache, CacheEntry
from .cache_store import is_cache_url
from .errors import AudioError, NotSentError
from .schema import RESULT_COLUMNS

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "IDENTITY_COLUMNS",
    "BudgetActor",
    "ClusterBudget",
    "LockedBudget",
    "NoSendBudget",
    "RunCache",
    "assemble_partition",
    "gather_sends",
    "identify_partition",
    "send_unique",
]

#: A distinct request of a run: (audio sha256, language).
Identity = tuple[str, str | None]


class BudgetActor:
    """The cluster's one ``Budget``, living in one worker process (created with ``actor=True``)."""

    def __init__(self, max_cost: float | None) -> None:
        self.budget = Budget(max_cost)

    def reserve(self, size: int, estimate: float | None = None) -> int | None:
        return self.budget.reserve(size, estimate)

    def settle(self, ticket: int | None, cost: float | None, size: int) -> None:
        self.budget.settle(ticket, cost=cost, size=size)

    def state(self) -> dict[str, Any]:
        b = self.budget
        return {
            "max_cost": b.max_cost,
            "spent": b.spent,
            "reserved": sum(b.reserved.values()),
            "in_flight": len(b.reserved),
            "calibrated": b.calibrated,
            "exhausted": b.exhausted,
        }


class ClusterBudget:
    """What a runner sees as its ``Budget``: each call goes to the cluster's ``BudgetActor``.

    ``calibrated`` and ``exhausted`` only ever turn from False to True, so once seen True they are kept
    here and cost no more round trips.
    """

    def __init__(self, actor: Any, max_cost: float | None) -> None:
        self._actor = actor
        self.max_cost = max_cost
        self._calibrated = False
        self._exhausted = False

    @classmethod
    def create(cls, max_cost: float | None, client: Any = None) -> ClusterBudget:
        """Start the actor on a worker of ``client`` (default: the current distributed client)."""
        import distributed

        client = client if client is not None else distributed.get_client()
        actor = client.submit(BudgetActor, max_cost, actor=True, pure=False).result()
        return cls(actor, max_cost)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterBudget, (self._actor, self.max_cost))

    def bind(self) -> ClusterBudget:
        """This budget bound to the worker running the current task, for calls from the run's own thread.

        An ``Actor`` handle finds its worker through the calling thread; the run's event loop lives in a
        thread of its own, so the handle is bound here, in the task's thread.
        """
        from distributed import Actor, get_worker

        actor = self._actor
        return ClusterBudget(Actor(actor._cls, actor._address, actor.key, worker=get_worker()), self.max_cost)

    def reserve(self, size: int, estimate: float | None = None) -> int | None:
        if self._exhausted:
            return None
        ticket: int | None = self._actor.reserve(size, estimate).result()
        if ticket is None:
            self._exhausted = True
        return ticket

    def settle(self, ticket: int | None, *, cost: float | None, size: int) -> None:
        if cost is None and not ticket:
            return  # nothing reserved, nothing spent: no round trip
        self._actor.settle(ticket, cost, size).result()
        if cost is not None:
            self._calibrated = True

    def state(self) -> dict[str, Any]:
        """The cluster's budget now: max_cost, spent, reserved, in_flight, calibrated, exhausted."""
        state: dict[str, Any] = self._actor.state().result()
        return state

    @property
    def spent(self) -> float:
        return float(self.state()["spent"])

    @property
    def calibrated(self) -> bool:
        if not self._calibrated:
            self._calibrated = bool(self.state()["calibrated"])
        return self._calibrated

    @property
    def exhausted(self) -> bool:
        return self._exhausted


class LockedBudget(Budget):
    """A ``Budget`` that threads share (the threaded scheduler runs partitions in threads of one process)."""

    def __init__(self, max_cost: float | None) -> None:
        super().__init__(max_cost)
        self._lock = threading.Lock()

    def reserve(self, size: int, estimate: float | None = None) -> int | None:
        with self._lock:
            return super().reserve(size, estimate)

    def settle(self, ticket: int | None, *, cost: float | None, size: int) -> None:
        with self._lock:
            super().settle(ticket, cost=cost, size=size)


class NoSendBudget(Budget):
    """The budget of the assembling pass: every answer is in the cache by then, so nothing may be sent."""

    def __init__(self) -> None:
        super().__init__(0.0)

    @property
    def calibrated(self) -> bool:
        return True

    def reserve(self, size: int, estimate: float | None = None) -> int | None:
        self.exhausted = True
        return None


# -- the three passes of a deduplicated cluster run -------------------------------------------------------

#: What the identify pass returns for each row: the file, its language, and its audio hash (None: unreadable).
IDENTITY_COLUMNS: dict[str, str] = {
    "path": "string",
    "language": "string",
    "sha": "string",
    "size": "Int64",
    "mtime_ns": "Int64",
    "format": "string",
    "seconds": "Float64",
}
_HASH_THREADS = 8
#: The send pass's counts that every partition's metadata reports for the whole run.
_SEND_COUNTS = ("requests", "uploaded_bytes", "possibly_billed_twice", "spent_cost", "sent_rows")


def identity_meta(index: pd.Index) -> pd.DataFrame:
    """The empty frame the identify pass returns for an input whose index looks like ``index``."""
    return pd.DataFrame({name: pd.array([], dtype=dtype) for name, dtype in IDENTITY_COLUMNS.items()}, index=index[:0])


def identify_partition(part: pd.DataFrame, column: str, spec: RunSpec) -> pd.DataFrame:
    """Each row's file, language and audio hash (read and hashed here, in threads; unchanged files that a
    SQLite cache remembers are not read). Rows that are not readable files get no hash."""
    from concurrent.futures import ThreadPoolExecutor

    from ._runner import as_path
    from .audio import check_file
    from .cache import hash_file
    from .chunking import probe_seconds
    from .frame import _languages, _open_cache

    languages = _languages(part, spec.language, spec.language_column)
    rows: list[dict[str, Any]] = []
    for value, lang in zip(part[column].tolist(), languages, strict=True):
        row: dict[str, Any] = {"language": lang}
        try:
            path = os.path.abspath(as_path(value))
            st, fmt = check_file(path, max_bytes=None)
            row.update(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, format=fmt)
        except AudioError:
            pass
        rows.append(row)
    located = {r["path"]: r for r in rows if "path" in r}
    cache = _open_cache(spec.cache) if not is_cache_url(spec.cache) else None  # SQLite keeps hashes across runs
    known: dict[str, tuple[str, str, float | None]] = {}
    if cache is not None:
        known = cache.file_hashes({p: (r["size"], r["mtime_ns"]) for p, r in located.items()})

    def measure(path: str) -> tuple[str, float | None] | None:
        if path in known and known[path][2] is not None:
            return known[path][0], known[path][2]
        try:
            return hash_file(path), probe_seconds(path)
        except (OSError, AudioError):
            return None

    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        measured = dict(zip(located, pool.map(measure, located), strict=True))
    try:
        for path, found in measured.items():
            r = located[path]
            if found is not None:
                r["sha"], r["seconds"] = found
                if cache is not None and path not in known:
                    cache.put_file_hash(path, r["size"], r["mtime_ns"], found[0], r["format"], found[1])
    finally:
        if cache is not None and not isinstance(spec.cache, Cache):
            cache.close()
    out = pd.DataFrame(rows, index=part.index, columns=list(IDENTITY_COLUMNS))
    return out.astype(IDENTITY_COLUMNS)


class RunCache(Cache):
    """The run's cache seen through one partition: file hashes from the identify pass, and the creation
    time of every answer read (to tell answers made by this run from older ones)."""

    def __init__(self, inner: Cache, identities: pd.DataFrame) -> None:
        self.inner = inner
        self.created: dict[str, float] = {}
        self._hashes = {
            r.path: ((int(r.size), int(r.mtime_ns)), (r.sha, r.format, None if pd.isna(r.seconds) else r.seconds))
            for r in identities.dropna(subset=["sha"]).itertuples()
        }

    @property  # type: ignore[override]
    def path(self) -> Any:  # type: ignore[override]
        return self.inner.path

    def file_hashes(self, stats: Mapping[str, tuple[int, int]]) -> dict[str, tuple[str, str, float | None]]:
        out = {p: self._hashes[p][1] for p, st in stats.items() if p in self._hashes and self._hashes[p][0] == st}
        rest = {p: st for p, st in stats.items() if p not in out}
        return {**out, **(self.inner.file_hashes(rest) if rest else {})}

    def get_many(self, keys: Iterable[str]) -> dict[str, CacheEntry]:
        found = self.inner.get_many(keys)
        self.created.update((k, e.created_at) for k, e in found.items())
        return found

    def get(self, key: str) -> CacheEntry | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, response: Mapping[str, Any], **meta: Any) -> None:
        self.inner.put(key, response, **meta)

    def put_many(self, entries: Any) -> None:
        self.inner.put_many(entries)  # type: ignore[attr-defined,unused-ignore]

    def put_file_hash(self, *args: Any, **kwargs: Any) -> None:
        self.inner.put_file_hash(*args, **kwargs)

    def flush_file_hashes(self) -> None:
        self.inner.flush_file_hashes()

    def close(self) -> None:
        self.inner.close()

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def clear(self, **kwargs: Any) -> int:
        return self.inner.clear(**kwargs)


def run_partition(
    df: pd.DataFrame,
    column: str,
    spec: RunSpec,
    *,
    client: Client | None,
    budget: Budget | ClusterBudget | None,
    prefix: str = "",
) -> pd.DataFrame:
    """One ``run_frame`` on a worker, from the task's thread, with the cluster's budget and the run's cache."""
    from ._progress import Progress
    from .frame import RunContext, run_frame, run_sync

    if isinstance(budget, ClusterBudget):
        budget = budget.bind()
    bar = Progress(len(df), enabled=False, desc=spec.model)
    return run_sync(
        lambda interrupt: run_frame(
            df,
            column,
            spec,
            prefix=prefix,
            client=client,
            progress=False,
            context=RunContext(bar=bar, budget=budget, interrupt=interrupt),  # type: ignore[arg-type]
        ),
        bar,
    )


def open_store(cache: CacheArg) -> Cache:
    """The worker's own handle on the run's cache (an ``ObjectCache`` for a URL, else SQLite)."""
    from .frame import _open_cache

    store = _open_cache(cache)
    if store is None:
        raise ValueError("a deduplicated cluster run needs a cache")
    return store


def send_unique(
    unique: pd.DataFrame, spec: RunSpec, *, client: Client | None, budget: ClusterBudget | Budget | None
) -> dict[str, Any]:
    """The send pass: each distinct (audio, language) once, on the worker that holds it after the shuffle.

    Returns what the assembling pass needs: the failures (by audio hash and language), this pass's counts
    and when it started (answers created after that are this run's).
    """
    started = time.time()
    if unique.empty:
        return {"failed": {}, "started": started, "stats": {}}
    store = open_store(spec.cache)
    frame = unique[["path", "language"]].reset_index(drop=True).astype(object)
    frame["language"] = frame["language"].where(frame["language"].notna(), None)
    try:
        out = run_partition(
            frame,
            "path",
            replace(spec, cache=RunCache(store, unique), language_column="language"),
            client=client,
            budget=budget,
        )
    finally:
        store.close()  # every write finished (an ObjectCache raises CacheError for one that failed)
    info = out.attrs.get("stt_frames", {})
    ids = _identities(unique)
    failed = {
        ids[i]: {name: _plain(out.at[i, name]) for name in RESULT_COLUMNS} for i in out.index[out["error"].notna()]
    }
    sent = out["cached"].eq(False) & out["error"].isna()
    stats = {k: info.get(k, 0) for k in _SEND_COUNTS[:3]}
    stats["spent_cost"] = float(out.loc[sent, "cost"].fillna(0).sum())
    stats["sent_rows"] = int(sent.sum())
    return {"failed": failed, "started": started, "stats": stats}


def gather_sends(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The send pass's results, joined: every failure, summed counts, the earliest start."""
    failed: dict[Identity, dict[str, Any]] = {}
    for p in parts:
        failed.update(p["failed"])
    stats: dict[str, float] = {}
    for p in parts:
        for k, v in p["stats"].items():
            stats[k] = stats.get(k, 0) + v
    return {
        "failed": failed,
        "started": min((p["started"] for p in parts), default=time.time()),
        "stats": stats,
    }


def assemble_partition(
    part: pd.DataFrame,
    identities: pd.DataFrame,
    sends: dict[str, Any],
    column: str,
    spec: RunSpec,
    *,
    client: Client | None,
    prefix: str,
) -> pd.DataFrame:
    """The assembling pass: a partition's rows from the cache (nothing is sent), failures from the send pass."""
    from .schema import RowResult

    store = open_store(spec.cache)
    run_cache = RunCache(store, identities)
    try:
        out = run_partition(
            part, column, replace(spec, cache=run_cache), client=client, budget=NoSendBudget(), prefix=prefix
        )
    finally:
        store.close()
    info = dict(out.attrs.get("stt_frames", {}))
    ids = _identities(identities)
    # rows whose audio failed in the send pass carry that failure
    failed: Mapping[Identity, dict[str, Any]] = sends["failed"]
    # an answer the cache lacks after the send pass (a write lost) fails its row: it is never sent twice
    lost = RowResult.failed(NotSentError("not sent: its answer was not in the shared cache after the send pass"))
    lost_values = {n: getattr(lost, n) for n in RESULT_COLUMNS}
    refused = out[prefix + "error_type"].eq("BudgetExceededError").fillna(False).to_numpy()
    columns: dict[str, list[Any]] = {n: out[prefix + n].tolist() for n in RESULT_COLUMNS}
    created_after = float(sends["started"])
    endpoint = str(info.get("base_url", ""))
    for i, ident in enumerate(ids):
        if ident is not None and ident in failed:
            row = failed[ident]
        elif refused[i]:
            row = lost_values
        elif columns["cached"][i] is True and ident is not None:
            key = _key_of_row(spec, identities.iloc[i], endpoint)
            made = run_cache.created.get(key) if key is not None else None
            if made is None or made < created_after:
                continue
            row = {"cached": False}  # answered by this run's send pass
        else:
            continue
        for n, v in row.items():
            columns[n][i] = v
    for n, (dtype, _) in RESULT_COLUMNS.items():
        out[prefix + n] = pd.array(columns[n], dtype=dtype)
    info.update(
        {k: sends["stats"].get(k, 0) for k in ("requests", "uploaded_bytes", "possibly_billed_twice", "spent_cost")}
    )
    info["errors"] = int(out[prefix + "error"].notna().sum())
    out.attrs["stt_frames"] = info
    return out


def _identities(frame: pd.DataFrame) -> list[Identity | None]:
    """Each row's (audio hash, language), None for a row without a hash."""
    return [
        (sha, lang if isinstance(lang, str) else None) if isinstance(sha, str) else None
        for sha, lang in zip(frame["sha"].tolist(), frame["language"].tolist(), strict=True)
    ]


def _key_of_row(spec: RunSpec, row: Any, endpoint: str) -> str | None:
    """The cache key a row's answer is stored under (whole file or chunked), or None when unknown."""
    seconds = None if pd.isna(row["seconds"]) else float(row["seconds"])
    lang = row["language"] if isinstance(row["language"], str) else None
    try:
        chunked = not spec.upload.sends_whole(int(row["size"]), seconds)
    except Exception:
        return None
    return spec.cache_key(str(row["sha"]), lang, endpoint, chunked=chunked)


def _plain(value: Any) -> Any:
    """A pandas scalar as a plain Python value (<NA> as None)."""
    if value is pd.NA or value is None:
        return None
    return value.item() if hasattr(value, "item") else value
