"""The default worker count: the CPUs the container may really use (its control group's CPU
quota, the CPUs it may run on), read from cgroup files laid out as Linux lays them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.cpus import usable_cpus


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


def _v2(tmp_path: Path, group: str, cpu_max: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for folder, text in cpu_max.items():
        _write(root / folder.lstrip("/") / "cpu.max", text + "\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, f"0::{group}\n")
    return root, proc


def _cpus(root: Path, proc: Path, machine: int = 8) -> int:
    return usable_cpus(root, proc, affinity=lambda: machine)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000", 8),  # no quota: the CPUs it may run on
        ("200000 100000", 2),  # --cpus 2
        ("150000 100000", 2),  # --cpus 1.5: rounded up
        ("50000 100000", 1),  # half a CPU: still one worker
        ("1600000 100000", 8),  # a quota above the machine: the machine
        ("garbage", 8),  # unreadable: as if there were none
    ],
)
def test_a_cgroup_v2_quota_sets_the_workers(tmp_path: Path, cpu_max: str, expected: int) -> None:
    root, proc = _v2(tmp_path, "/", {"/": cpu_max})
    assert _cpus(root, proc) == expected


def test_the_tightest_quota_of_the_group_and_its_parents_wins(tmp_path: Path) -> None:
    root, proc = _v2(
        tmp_path,
        "/kubepods/pod1/ctr",
        {"/": "max 100000", "/kubepods/pod1": "300000 100000", "/kubepods/pod1/ctr": "max 100000"},
    )
    assert _cpus(root, proc) == 3


def test_fewer_cpus_to_run_on_than_the_quota_wins(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "/", {"/": "400000 100000"})
    assert _cpus(root, proc, machine=2) == 2


def test_a_cgroup_v1_quota_sets_the_workers(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    group = root / "cpu,cpuacct" / "docker" / "abc"
    _write(group / "cpu.cfs_quota_us", "250000\n")
    _write(group / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert _cpus(root, proc) == 3


def test_a_cgroup_v1_without_quota_leaves_the_cpus(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "4:cpu,cpuacct:/\n")
    assert _cpus(root, proc) == 8


def test_no_cgroup_files_leaves_the_cpus(tmp_path: Path) -> None:
    assert _cpus(tmp_path / "none", tmp_path / "no-proc-file", machine=4) == 4


def test_this_machine_answers_at_least_one_and_at_most_its_cpus() -> None:
    import os

    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
