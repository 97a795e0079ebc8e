"""Items made ahead in a background thread of our own, handed over through a bounded queue.

TensorFlow releases the GIL while it computes, so one producer thread filling a queue
overlaps reading (HDF5, pixel checks, crops) with training or prediction, and the queue
bound keeps at most `depth` items waiting: memory does not grow with the catalogue.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1
_DONE = object()


def in_background(items: Callable[[], Iterable[T]], depth: int, name: str,
                  niceness: int = 0) -> Iterator[T]:
    """The items of `items()`, in order, made by a thread called `name` up to `depth` ahead.

    With `niceness`, the thread adds it to its nice value (Linux, where nice values are per
    thread), so its work yields the cores to the caller's. An error in the producer is
    raised here, in the consumer; closing this iterator early (an error or interrupt in the
    consumer, or the consumer dropped) stops and joins the producer.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        if niceness and sys.platform.startswith("linux"):
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread,
                           min(os.getpriority(os.PRIO_PROCESS, thread) + niceness, 19))
        try:
            for item in items():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(err)

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()
