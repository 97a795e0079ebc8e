"""Which process a search worker is, and whether it is known to be gone.

A worker killed mid-trial (`kill -9`, a lost node) cannot mark its own records. Optuna's
heartbeat notices it only after the grace period (two heartbeat intervals), from any host. A
worker on the same host can tell at once: the host name and process id a worker recorded
with its trial and its MLflow run no longer name a live process. The process start time is
recorded too, so a process id the system has since given to another program does not count
as the worker still running.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass

import psutil

#: How far two readings of one process's start time may differ. psutil counts the start
#: from boot and adds /proc/stat's `btime`, whole seconds that step by one when the clock is
#: adjusted (NTP, a VM's clock sync), so with a 0.01 s margin a live worker could be
#: taken for gone and its running trial retried. A process given the same pid later
#: started after the worker recorded itself, which is seconds after its own start
#: (importing TensorFlow alone takes longer), so this margin cannot mistake it for the worker.
_SAME_START_SECONDS = 1.5


@dataclass(frozen=True)
class Worker:
    """A process, as recorded in a trial's user attributes and its runs' tags."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> Worker:
        return cls(host=socket.gethostname(), pid=psutil.Process().pid,
                   started=psutil.Process().create_time())

    @classmethod
    def from_record(cls, record: dict) -> Worker:
        return cls(host=str(record["host"]), pid=int(record["pid"]),
                   started=float(record["started"]))

    def record(self) -> dict:
        return asdict(self)

    def is_gone(self) -> bool:
        """True only when this host knows the process ended; another host's worker (whose
        fate only its heartbeat tells) and a live process are not gone."""
        if self.host != socket.gethostname():
            return False
        try:
            process = psutil.Process(self.pid)
            return (abs(process.create_time() - self.started) > _SAME_START_SECONDS
                    or process.status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True
