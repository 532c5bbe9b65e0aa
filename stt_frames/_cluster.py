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

import threading
from typing import Any

from ._limits import Budget

__all__ = ["BudgetActor", "ClusterBudget", "LockedBudget"]


class BudgetActor:
    """The cluster's one ``Budget``, living in one worker process (created with ``actor=True``)."""

    def __init__(self, max_cost: float | None) -> None:
        self.budget = Budget(max_cost)

    def reserve(self, size: int) -> int | None:
        return self.budget.reserve(size)

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

    def reserve(self, size: int) -> int | None:
        if self._exhausted:
            return None
        ticket: int | None = self._actor.reserve(size).result()
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

    def reserve(self, size: int) -> int | None:
        with self._lock:
            return super().reserve(size)

    def settle(self, ticket: int | None, *, cost: float | None, size: int) -> None:
        with self._lock:
            super().settle(ticket, cost=cost, size=size)
