"""Whether a recorded search worker is gone: the host, pid and start time it recorded."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

from hzexp.workers import Worker


def test_a_live_worker_is_not_gone_when_the_boot_time_reading_steps_by_a_second():
    """The start time psutil reports moves with /proc/stat's whole-second `btime`."""
    here = Worker.current()
    assert not here.is_gone()
    for step in (-1.0, 1.0):
        assert not dataclasses.replace(here, started=here.started + step).is_gone()


def test_a_pid_now_held_by_a_later_process_or_by_nothing_is_gone():
    here = Worker.current()
    assert dataclasses.replace(here, started=here.started - 60).is_gone()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    assert Worker(host=here.host, pid=int(ended.stdout), started=here.started).is_gone()


def test_another_hosts_worker_is_left_to_its_heartbeat():
    elsewhere = Worker(host=socket.gethostname() + "-elsewhere", pid=1, started=0.0)
    assert not elsewhere.is_gone()
