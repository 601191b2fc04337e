"""``spmm bench --ray``: the runner's (batch, explainer) work items computed by a Ray Data actor pool.

Every actor builds the command's run once from its arguments (:func:`spmm.cli.commands.bench.build_run`:
one model per actor, on the GPU Ray gave it), checks that its checkpoint keys are the driver's,
and writes each item it is given to the same checkpoint file the single-process run writes
(:func:`spmm.bench.runner.score_pair`).  The driver reads the tables from the checkpoints as always.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterator, Mapping, Sequence

import torch

from spmm.bench.runner import WorkItem, score_pair
from spmm.errors import SpmmInputError


@dataclasses.dataclass(frozen=True)
class RayPool:
    """The actor pool of ``--ray``: ``workers`` actors with ``threads`` torch threads and
    ``gpus_per_worker`` of the ``gpus`` GPUs Ray may hand out (0 and 0 on a CPU)."""

    workers: int
    threads: int
    gpus_per_worker: float
    gpus: int


class BenchPairWorker:
    """A Ray Data actor: the run of one ``spmm bench`` command, writing the checkpoints of the items it is given.

    command: the command's arguments (``vars(args)`` without ``func``), its device resolved to
    ``cpu`` or ``cuda`` (the GPU Ray assigned to this actor).
    """

    def __init__(self, command: Mapping[str, Any], threads: int) -> None:
        from spmm.cli.commands.bench import build_run

        torch.set_num_threads(threads)
        args = argparse.Namespace(**command)
        self.out = args.out
        self.run = build_run(args, torch.device(args.device))
        self.keys = self.run.keys()

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
        """Write the checkpoints of the batch's items; returns their keys and, per item, an error
        message (empty when written): an item whose key this actor does not share is refused."""
        keys, errors = [], []
        for index, name, key in zip(batch["batch"], batch["explainer"], batch["key"]):
            item = WorkItem(int(index), str(name), str(key))
            keys.append(item.key)
            if self.keys.get((item.batch, item.explainer)) != item.key:
                errors.append(f"a Ray worker built batch {item.batch} × {item.explainer} with other settings than the "
                              "driver (its checkpoint key differs); nothing was written")
                continue
            score_pair(self.run.model, self.run.batches[item.batch], item.explainer, self.run.explainers[item.explainer],
                       self.run.metrics, self.out, item.key)
            errors.append("")
        return {"key": keys, "error": errors}


def compute_on_ray(command: Mapping[str, Any], pool: RayPool, items: Sequence[WorkItem]) -> Iterator[WorkItem]:
    """The runner's ``compute`` (:data:`spmm.bench.runner.Compute`) on a local Ray actor pool: writes
    the checkpoint of every item and yields each item once written (Ray is not started for none)."""
    from .ray_pool import map_on_actor_pool

    if not items:
        return
    by_key = {item.key: item for item in items}
    rows = [dataclasses.asdict(item) for item in items]
    kwargs = {"command": dict(command), "threads": pool.threads}
    for row in map_on_actor_pool(rows, BenchPairWorker, kwargs, pool.workers, pool.gpus_per_worker, pool.gpus):
        if row["error"]:
            raise SpmmInputError(row["error"])
        yield by_key[row["key"]]
