"""What the benchmark samples besides time: resident memory and CPU time, from /proc.

CPU is counted three ways for every measured span, so a regression shows even
when the disk is the bottleneck and hides it from the throughput figures:

* the gateway: its processes (the supervising parent and every worker, all
  their threads), utime + stime from ``/proc/PID/stat``;
* the nodes: the same over every node process;
* the whole machine: busy time of every core from ``/proc/stat`` (everything
  but idle and iowait), so the client, the kernel's network and disk work and
  anyone else's load on the machine are in it too. The machine's busy rate
  with the cluster idle, measured first (:meth:`CpuMeter.calibrate`), is
  taken off as the background; on a shared machine read it with its ratio.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU-seconds ``pid`` has used (all threads); 0 for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def machine_busy() -> float:
    """Busy CPU-seconds of all cores since boot (not idle, not iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU-seconds used by the gateway, by the nodes, and by the whole machine."""

    gateway: float
    nodes: float
    machine: float
    #: The machine's background in the span (its idle busy rate times the span's length).
    background: float = 0.0

    def scaled(self, factor: float) -> Cpu:
        return Cpu(
            self.gateway * factor, self.nodes * factor, self.machine * factor, self.background * factor
        )


class CpuMeter:
    """Reads :class:`Cpu` for the processes the callables name at the time of reading."""

    def __init__(self, gateway_pids: Callable[[], list[int]], node_pids: Callable[[], list[int]]) -> None:
        self._gateway_pids = gateway_pids
        self._node_pids = node_pids
        #: Busy CPU-seconds per second of the machine with the cluster idle.
        self.background_rate = 0.0

    def read(self) -> tuple[float, float, float]:
        return (
            sum(process_cpu(pid) for pid in self._gateway_pids()),
            sum(process_cpu(pid) for pid in self._node_pids()),
            machine_busy(),
        )

    def calibrate(self, seconds: float = 5.0) -> float:
        """Measure the machine's busy rate while nothing is asked of the cluster."""
        started, before = time.monotonic(), machine_busy()
        time.sleep(seconds)
        self.background_rate = (machine_busy() - before) / (time.monotonic() - started)
        return self.background_rate

    @contextlib.contextmanager
    def span(self, into: list[Cpu]) -> Iterator[None]:
        """Append the CPU used inside the ``with`` block to ``into``."""
        started, before = time.monotonic(), self.read()
        yield
        after, elapsed = self.read(), time.monotonic() - started
        gateway, nodes, machine = (b - a for a, b in zip(before, after, strict=True))
        into.append(Cpu(gateway, nodes, machine, self.background_rate * elapsed))


def median_cpu(spans: list[Cpu]) -> Cpu:
    """Each figure's median over the spans (the spans of one kind of run)."""

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    return Cpu(
        median([s.gateway for s in spans]),
        median([s.nodes for s in spans]),
        median([s.machine for s in spans]),
        median([s.background for s in spans]),
    )


class PeakRss:
    """Peak resident memory of each of some processes over a window (VmHWM after a reset, and
    samples every 20 ms)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: dict[int, list[int]] = {pid: [] for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _read(pid: int, field: str) -> int:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) * 1024 if match else 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.pids:
                self.samples[pid].append(self._read(pid, "VmRSS"))

    def __enter__(self) -> PeakRss:
        for pid in self.pids:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_of(self, pid: int) -> int:
        return max([self._read(pid, "VmHWM"), *self.samples[pid]])

    @property
    def peaks(self) -> list[int]:
        """Each process's peak, in the order given."""
        return [self.peak_of(pid) for pid in self.pids]

    @property
    def peak(self) -> int:
        """The highest peak of any one process (memory per worker, not their sum)."""
        return max(self.peaks)
