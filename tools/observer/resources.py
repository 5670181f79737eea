"""Resource watch: RSS growth (leak suspicion), CUDA memory (OOM risk), throughput drops.

Alerts go through an :class:`AlertGate` so one kind repeats at most once per cooldown. The probes
read /proc (the child's whole process group) and ``nvidia-smi`` where present; both return None
when they cannot tell, and nothing is alerted then.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from tools.observer.states import THRESHOLDS, Thresholds

MB = 1024 * 1024


@dataclass(frozen=True)
class Alert:
    kind: str  # memory_leak | cuda_memory | throughput
    message: str
    value: float | None
    time: float


class AlertGate:
    """At most one alert per kind per ``cooldown`` seconds (times from the caller's clock)."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self.last: dict[str, float] = {}

    def allow(self, kind: str, now: float) -> bool:
        last = self.last.get(kind)
        if last is not None and now - last < self.cooldown:
            return False
        self.last[kind] = now
        return True


class ResourceWatch:
    def __init__(self, thresholds: Thresholds = THRESHOLDS, gate: AlertGate | None = None) -> None:
        self.t = thresholds
        self.gate = gate or AlertGate(thresholds.cooldown)
        self.rss: list[tuple[float, float | None]] = []  # (bytes, epoch)
        self.throughput_ema: float | None = None
        self.throughput_n = 0
        self.slow: list[float] = []  # readings since throughput fell below the drop line
        self.peak_rss = 0.0
        self.peak_cuda = 0.0

    def _alert(self, kind: str, message: str, value: float | None, now: float) -> Alert | None:
        return Alert(kind, message, value, now) if self.gate.allow(kind, now) else None

    def sample_rss(self, nbytes: float, now: float, epoch: float | None = None) -> Alert | None:
        """A leak is suspected when RSS is ≥ leak_growth above its baseline and has not fallen lately."""
        self.rss.append((float(nbytes), epoch))
        self.peak_rss = max(self.peak_rss, float(nbytes))
        t = self.t
        if len(self.rss) <= t.leak_skip + 1:
            return None
        base, base_epoch = self.rss[t.leak_skip]
        last = self.rss[-1][0]
        recent = [b for b, _ in self.rss[-t.leak_window:]]
        if (len(self.rss) - t.leak_skip < t.leak_window or base <= 0 or last / base - 1 < t.leak_growth
                or any(b < a for a, b in zip(recent, recent[1:]))):
            return None
        since = f"epoch {base_epoch:g}" if base_epoch is not None else "the baseline"
        span = len(self.rss) - 1 - t.leak_skip
        return self._alert("memory_leak", f"Memory grew {last / base - 1:.0%} since {since} ({base / MB:.0f} → "
                           f"{last / MB:.0f} MB, +{(last - base) / span / MB:.1f} MB per reading) and has not fallen "
                           f"for {t.leak_window} readings: a leak is likely", last, now)

    def sample_cuda(self, used: float, total: float | None, now: float) -> Alert | None:
        """Bytes of CUDA memory in use (and the device's total, when known)."""
        self.peak_cuda = max(self.peak_cuda, used)
        if not total or used / total < self.t.cuda_risk:
            return None
        return self._alert("cuda_memory", f"CUDA memory at {used / total:.0%} ({used / 2**30:.1f} of "
                           f"{total / 2**30:.1f} GiB): out-of-memory risk", used / total, now)

    def sample_throughput(self, value: float, now: float, unit: str = "samples/s") -> Alert | None:
        """A drop: ``throughput_patience`` readings in a row below (1 - throughput_drop) × the EMA before them."""
        ema = self.throughput_ema
        if ema is not None and self.throughput_n >= 2 and value < (1 - self.t.throughput_drop) * ema:
            self.slow.append(value)  # the EMA keeps the level from before the drop
            if len(self.slow) < self.t.throughput_patience:
                return None
            now_level = sum(self.slow) / len(self.slow)
            return self._alert("throughput", f"Throughput dropped {1 - now_level / ema:.0%} ({ema:.4g} → "
                               f"{now_level:.4g} {unit}) for {len(self.slow)} readings: another job, swapping or "
                               "throttling?", now_level, now)
        self.slow = []
        self.throughput_ema = value if ema is None else self.t.ema_alpha * value + (1 - self.t.ema_alpha) * ema
        self.throughput_n += 1
        return None


# -- probes -----------------------------------------------------------------------------------
def group_pids(pgid: int, proc: str = "/proc") -> list[int]:
    """Every process of a process group (the child and its workers), from /proc."""
    pids = []
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid):
            pids.append(int(name))
    return pids


def group_rss(pgid: int, proc: str = "/proc") -> int | None:
    """Resident bytes of a process group, or None where /proc cannot tell."""
    total, seen = 0, False
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    for pid in group_pids(pgid, proc):
        try:
            with open(f"{proc}/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
                seen = True
        except (OSError, IndexError, ValueError):
            continue
    return total if seen else None


def parse_nvidia_smi(apps: str, gpus: str, pids: list[int]) -> tuple[float, float] | None:
    """(bytes used by ``pids``, bytes of the largest device) from nvidia-smi's CSV (MiB, no units)."""
    used = 0.0
    wanted = set(pids)
    for line in apps.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit() and int(parts[0]) in wanted:
            try:
                used += float(parts[1]) * MB
            except ValueError:
                continue
    totals = []
    for line in gpus.splitlines():
        try:
            totals.append(float(line.split(",")[-1]) * MB)
        except ValueError:
            continue
    return (used, max(totals)) if totals and used > 0 else None


def cuda_usage(pids: list[int]) -> tuple[float, float] | None:
    """CUDA memory of ``pids`` via nvidia-smi; None without a GPU (or nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if exe is None or not pids:
        return None
    try:
        apps = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10).stdout
        gpus = subprocess.run([exe, "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(apps, gpus, pids)
