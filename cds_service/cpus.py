"""How many CPUs this process may really use: the default number of gunicorn workers.

`os.cpu_count()` is the machine's count. A container usually gets less: a CPU quota from its
control group (`docker run --cpus 2`, a Kubernetes CPU limit) or a set of CPUs it may run on
(`--cpuset-cpus`, taskset). Workers beyond that only take turns on the same CPUs, each with
its own memory. The answer is the smallest of:

- the CPUs the process may be scheduled on (`os.sched_getaffinity`, else `os.cpu_count()`);
- the CPU quota of its control group and of every group above it, rounded up: cgroup v2
  `cpu.max` (`"<quota> <period>"`, or `"max ..."` for none), cgroup v1
  `cpu.cfs_quota_us` / `cpu.cfs_period_us` (a quota of -1 is none).

Never less than 1. Unreadable or malformed files count as "no limit": the answer is then
what the affinity says, as before.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def v2_limit(text: str | None) -> int | None:
    """CPUs allowed by a cgroup v2 `cpu.max` text, None for no limit."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return _quota(int(parts[0]), int(parts[1]))
    except ValueError:
        return None


def v1_limit(quota_text: str | None, period_text: str | None) -> int | None:
    """CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, None for none."""
    try:
        return _quota(int(quota_text or ""), int(period_text or ""))
    except ValueError:
        return None


def _groups(proc_cgroup: str) -> Iterator[tuple[str, str]]:
    """(controllers, path) of each line of /proc/self/cgroup ("0::/x" is v2)."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            yield parts[1], parts[2]


def _upwards(root: Path, group: str) -> Iterator[Path]:
    """The group's folder under `root`, then each parent folder up to `root` itself."""
    path = PurePosixPath("/") / group.lstrip("/")
    while True:
        yield root / str(path).lstrip("/")
        if path == path.parent:
            return
        path = path.parent


def cgroup_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The tightest CPU quota over the process's control group and its ancestors (v2, or v1
    `cpu` controller), None when there is none or it cannot be read."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    limits: list[int] = []
    for controllers, group in _groups(text):
        if controllers == "" and (root / "cgroup.controllers").exists():
            for folder in _upwards(root, group):
                found = v2_limit(_read(folder / "cpu.max"))
                if found is not None:
                    limits.append(found)
        elif "cpu" in controllers.split(","):
            for mount in (controllers, "cpu,cpuacct", "cpu"):
                base = root / mount
                if base.is_dir():
                    break
            else:
                continue
            for folder in _upwards(base, group):
                found = v1_limit(
                    _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                )
                if found is not None:
                    limits.append(found)
    return min(limits) if limits else None


def _affinity() -> int:
    getter: Callable[[int], set[int]] | None = getattr(os, "sched_getaffinity", None)
    if getter is not None:
        try:
            return len(getter(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1


def usable_cpus(
    root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_SELF_CGROUP,
    affinity: Callable[[], int] = _affinity,
) -> int:
    """The CPUs this process may really use (see the module docstring); at least 1."""
    allowed = affinity()
    quota = cgroup_limit(root, proc_cgroup)
    return max(1, min(allowed, quota) if quota is not None else allowed)
