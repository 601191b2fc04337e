"""A local Ray Data actor pool: the one way ``spmm attribute --ray`` and ``spmm bench --ray`` use Ray.

Rows (plain dicts) go through ``ray.data.from_items`` one per block, ``map_batches`` hands each row
to one actor of an ``ActorPoolStrategy`` pool (one row in flight per actor, so a slow row does not
hold back rows queued behind it), and the actors' output rows come back in input order.  Each
actor builds its model once, in its constructor.  Ray is the optional ``[scale]`` extra and stays
here, outside the core.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import tempfile
from typing import Any, Callable, Iterator, Mapping, Sequence

from spmm.errors import SpmmInputError

SCALE_EXTRA = "pip install 'spmm[scale]'"
RAY_OBJECT_STORE_BYTES = 512 * 1024**2


def require_ray() -> None:
    """Refuse before any work when Ray Data is missing."""
    if importlib.util.find_spec("ray") is None:
        raise SpmmInputError(f"--ray needs Ray Data: {SCALE_EXTRA}")


def ray_environment() -> None:
    """What Ray reads at import time (set before ``import ray``; a process that imported Ray before
    fails to start it): no usage stats or progress bars, and a random token for its local ports."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def map_on_actor_pool(
    rows: Sequence[Mapping[str, Any]], actor: Callable[..., Any], constructor_kwargs: Mapping[str, Any],
    workers: int, gpus_per_worker: float = 0.0, gpus: int = 0,
) -> Iterator[dict[str, Any]]:
    """Run ``actor(**constructor_kwargs)(batch)`` over ``rows`` on a local Ray with ``workers`` actors
    (one CPU and ``gpus_per_worker`` of the ``gpus`` GPUs Ray may hand out, each); yields the
    actors' output rows in the order of ``rows``.

    ``actor``: a class whose ``__call__`` takes a batch of one row (a dict of column -> list)
    and returns a dict of column -> list.  Ray runs in a temporary folder and is shut down on
    exit, also when an actor raises.
    """
    ray_environment()
    import ray

    with tempfile.TemporaryDirectory(prefix="spmm-ray-", dir="/tmp") as temp:  # socket paths stay < 107 bytes
        ray.init(address="local", num_cpus=workers, num_gpus=gpus, include_dashboard=False, _temp_dir=temp,
                 object_store_memory=RAY_OBJECT_STORE_BYTES, log_to_driver=False, logging_level=logging.WARNING)
        try:
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True
            dataset = ray.data.from_items([dict(r) for r in rows], override_num_blocks=max(1, len(rows)))
            mapped = dataset.map_batches(
                actor, batch_size=1, num_cpus=1, num_gpus=gpus_per_worker or None,
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs=dict(constructor_kwargs),
            )
            yield from mapped.iter_rows()
        finally:
            ray.shutdown()
