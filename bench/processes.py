"""The processes under test, as the benchmark sees them: started in groups of their own, stopped
however the run ends, and measured (resident memory and CPU time of each process tree).

Linux only: everything is read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the processes run from the project's root
RSS_SAMPLE_SECONDS = 0.25


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        pass  # the process is gone
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (granian's workers, the cluster's sentinel and workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children(current))
    return found


def rss_mib(pids: Sequence[int]) -> float:
    """Summed VmRSS. Forked workers share pages, so this over-counts them: an upper bound."""
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
    return total_kib / 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time used by a process tree, including children that exited and were reaped.

    utime + stime of each live process, plus cutime + cstime: what its reaped children used
    (django-q2 recycles a worker after 500 tasks; its CPU time moves to the sentinel this way).
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may contain spaces; the fields after its closing paren do not.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process: the database is part of what the benchmark loads.

    Other databases on the same server (another test run) are counted too; latest.json records
    the load average so such a run can be recognised.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


class Processes:
    """The child processes, each in a session of its own so a whole tree can be signalled."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child has its own copy of the descriptor
        self.running[name] = process
        return process

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode}; "
                    f"see {self.log_dir / (name + '.log')}"
                )

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=10)
        # A cluster's workers or a granian worker may outlive their parent: reap the group.
        _signal_group(process, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            try:
                self.stop(name)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {name}: {exc}", file=sys.stderr)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


class ResourceSampler(threading.Thread):
    """Peak summed RSS of each process tree, sampled every RSS_SAMPLE_SECONDS."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = roots
        self.peaks: dict[str, float] = dict.fromkeys(roots, 0.0)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.roots.items():
            value = rss_mib(process_tree(pid))
            with self._lock:
                self.peaks[name] = max(self.peaks[name], value)

    def take_peaks(self) -> dict[str, float]:
        """The peaks since the last call, and start over (one window per scenario)."""
        self.sample()
        with self._lock:
            peaks = {name: round(value, 1) for name, value in self.peaks.items()}
            self.peaks = dict.fromkeys(self.roots, 0.0)
        return peaks

    def stop(self) -> None:
        self._stop_event.set()


class CpuMeter:
    """CPU seconds each part of the system used over one scenario, as cores busy on average."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.started = time.monotonic()
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        totals = {name: cpu_seconds(process_tree(pid)) for name, pid in self.roots.items()}
        totals["postgres"] = cpu_seconds(postgres_pids())
        totals["benchmark"] = cpu_seconds([os.getpid()])
        return totals

    def cores(self) -> dict[str, float]:
        after = self._read()
        wall = max(time.monotonic() - self.started, 1e-9)
        return {name: round((after[name] - self.before[name]) / wall, 2) for name in after}
