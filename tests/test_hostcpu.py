"""The generator host's CPU (load/hostcpu.py): busy and steal shares from the kernel's counters, and what the
report makes of them when a run is late (report/validity.py)."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from dcc_capacity.load.hostcpu import STEAL_WARN_PCT, HostCpu
from dcc_capacity.report.validity import judge_validity, load_drains

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def _replay(readings: list[tuple[float, float, float, float]]):  # noqa: ANN202
    """Counters of a 2-core host: each reading is cumulative (user, system, idle, steal) CPU seconds."""
    it = iter(readings)

    def read() -> Times:
        u, s, i, st = next(it)
        return Times(u, 0.0, s, i, 0.0, 0.0, 0.0, st, 0.3 * u, 0.0)  # guest time is inside user time

    return read


def test_busy_and_steal_shares_per_second_and_over_the_run() -> None:
    # 2 cores, 1 s apart: 2 CPU-seconds per reading. Second 1: 1.0 busy (0 steal); second 2: 1.6 busy of which
    # 0.6 steal (30 %); second 3: 0.2 busy, 0.04 steal (2 %, under the warning share).
    host = HostCpu(_replay([(0, 0, 0, 0), (0.6, 0.4, 1.0, 0.0), (1.4, 0.6, 1.4, 0.6), (1.5, 0.66, 3.2, 0.64)]),
                   cores=2)
    assert host.sample() == pytest.approx((50.0, 0.0))
    assert host.sample() == pytest.approx((80.0, 30.0))
    assert host.sample() == pytest.approx((10.0, 2.0))
    d = host.to_dict()
    assert d["samples"] == 3 and d["cores"] == 2
    assert d["busy_pct_mean"] == pytest.approx(46.7) and d["busy_pct_max"] == 80.0
    assert d["steal_pct_mean"] == pytest.approx(10.7) and d["steal_pct_max"] == 30.0
    assert d["steal_seconds"] == 1.0 and d["steal_warn_pct"] == STEAL_WARN_PCT  # only second 2 was >= 5 %


def test_the_live_window_is_apart_from_the_per_second_samples() -> None:
    host = HostCpu(_replay([(0, 0, 0, 0), (1.0, 0.0, 0.5, 0.5), (1.0, 0.0, 2.5, 0.5)]), cores=2)
    assert host.window() == pytest.approx((75.0, 25.0))  # the first interval, read by the live line
    assert host.sample() == pytest.approx((37.5, 12.5))  # the samples still start from the first reading
    assert host.samples == 1


def test_reads_this_hosts_real_counters() -> None:
    host = HostCpu()
    sum(i * i for i in range(300_000))  # some CPU between the readings
    busy, steal = host.sample()
    assert 0.0 <= steal <= busy <= 100.0
    assert host.cores == psutil.cpu_count()


def _run_dir(tmp_path: Path, host_cpu: dict | None) -> Path:
    doc = {"limit_s": 30, "took_s": 1.0, "at_stop": {"awaited": 0}, "closed_missing": 0}
    if host_cpu is not None:
        doc["host_cpu"] = host_cpu
    (tmp_path / "drain-a-1.json").write_text(json.dumps(doc))
    (tmp_path / "drain-a-2.json").write_text(json.dumps({**doc, "host_cpu": {
        "samples": 100, "busy_pct_mean": 40.0, "busy_pct_max": 70.0, "steal_pct_mean": 1.0, "steal_pct_max": 4.0,
        "steal_seconds": 0.0, "steal_warn_pct": 5.0}}))
    return tmp_path


def test_a_late_run_on_a_starved_host_says_so(tmp_path: Path) -> None:
    starved = {"samples": 120, "busy_pct_mean": 70.0, "busy_pct_max": 99.0, "steal_pct_mean": 9.5,
               "steal_pct_max": 32.2, "steal_seconds": 41.0, "steal_warn_pct": 5.0}
    drains = load_drains(_run_dir(tmp_path, starved))
    assert drains["host_cpu"]["steal_pct_max"] == 32.2 and drains["host_cpu"]["steal_seconds"] == 41.0
    assert drains["host_cpu"]["busy_pct_mean"] == 70.0  # the worst process's figures
    v = judge_validity({}, {"p99": 226.7, "n": 1000}, 0, drains["host_cpu"])
    assert not v["valid"]
    assert v["invalid_reasons"] == [
        "send lag p99 226.7 ms exceeds the 50 ms limit: the generator, not the system, was late; its host lost up "
        "to 32 % of its CPU to the hypervisor (steal, 41 s of the load at 5 % or more): rerun on a host with "
        "dedicated cores"]


def test_a_late_run_on_a_quiet_host_blames_only_the_generator(tmp_path: Path) -> None:
    drains = load_drains(_run_dir(tmp_path, None))
    assert drains["host_cpu"]["steal_seconds"] == 0.0
    v = judge_validity({}, {"p99": 80.0, "n": 1000}, 0, drains["host_cpu"])
    assert v["invalid_reasons"] == ["send lag p99 80.0 ms exceeds the 50 ms limit: the generator, not the system, "
                                    "was late"]
    assert load_drains(tmp_path / "nothing")["host_cpu"] is None
