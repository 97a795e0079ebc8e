"""The fork server a local Dask cluster's worker processes start from (`--workers N`).

Dask spawns fresh interpreters by default, and then every worker imports TensorFlow, MLflow
and hzexp on its own, all at once, after the cluster starts: on 2 cores that made
`hzexp predict --workers 2` take 41.8 s where `hzexp predict` took 31.7 s (20k mock). A
fork server imports them once (`hzexp.inference.worker_start`) and forks each worker, and
a replacement for a killed one, from there. The `hzexp` command starts it first thing, so
that import runs on one core while the driver imports its own modules and resolves the
model on the other. Only modules are imported there (no model, no TensorFlow runtime), so
the forked workers start their runtimes afresh, with the thread counts of their `env`.

This module is imported by the command at start-up: it imports nothing heavy itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from multiprocessing import forkserver

#: What the fork server imports before forking workers.
_PRELOAD = ["hzexp.inference.worker_start"]


def start_fork_server() -> None:
    """Start this process's fork server (importing the worker modules) unless it runs."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # takes effect when the server starts
    forkserver.ensure_running()


@contextlib.contextmanager
def forked_workers() -> Iterator[None]:
    """Within the block, a `LocalCluster` started here forks its workers from the server."""
    import dask

    start_fork_server()
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        yield
