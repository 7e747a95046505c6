"""The embedded emulator of a run without ``--host``: its generated config (capacity suited to the test type,
the fleet's device registry, the callback URL, alerts), and its start.

The test type adds what is particular to it (testtypes/: a stress test's short queue, the catch-up's outage
window, the negative test's faults and SFTP); the run configuration's ``[emulator]`` is merged over the result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dcc_capacity.orchestrate import cpmode

__all__ = ["emulator_config", "run_fleet", "secmp0192_execution", "set_device_latency", "smets1_installations",
           "start_embedded"]


def run_fleet(spec: Any, r: Any) -> Any:
    """The run's fleet: its seed and size, the shares the profile gives for the SP and slot (srvmix.py)."""
    from dcc_capacity.model.fleet import Fleet

    if r.mix is None:
        return Fleet(seed=spec.seed, size=spec.fleet_size)
    return r.mix.fleet.fleet(spec.seed, spec.fleet_size)


def secmp0192_execution(plan: Any, rates: dict[str, float], duration_s: float) -> dict[str, Any] | None:
    """The emulator executes the run's SECMP0192 schedules when the profile gives their window (``secmp0192``).

    The run is a compressed midnight: the emulator's clock sweeps from one window's length before the window
    opens to its close within the run, so a schedule created in the first half executes in the second half, as
    schedules made in the day execute around midnight. None when the profile has no window or nothing schedules.
    """
    load = getattr(plan, "secmp0192", None)
    if load is None or rates.get("Secmp0192Schedules", 0.0) <= 0 or duration_s <= 0:
        return None
    from dcc_capacity.emulator.schedules import execution_from_plan

    hh, mm = (int(x) for x in load.start.split(":")[:2])
    start_min = (hh * 60 + mm - load.window_s // 60) % (24 * 60)
    return execution_from_plan(load, clock_start=f"{start_min // 60:02d}:{start_min % 60:02d}",
                               time_scale=2.0 * load.window_s / duration_s)


def smets1_installations(spec: Any, r: Any) -> list[Any]:
    """The SMETS1 installations of the run's fleet the load draws from (its pools), in fleet order: the negative
    test's SFTP migration cases run on them (testtypes/negative: handed in, the plugin does not build fleets)."""
    from dcc_capacity.load.users.kit import fleet_pools

    fleet = run_fleet(spec, r)
    pools = fleet_pools(fleet, spec.pool_size)
    return [fleet[i] for i in sorted(i for (gen, _), idx in pools.by_kind.items() if gen == 1 for i in idx)]


def emulator_config(opts: Any, r: Any, callback_url: str, registry: Path) -> dict[str, Any]:
    """The embedded emulator's config for the run of ``opts`` (resolved rates ``r``)."""
    from dcc_capacity.testtypes.base import EmulatorContext
    from dcc_capacity.testtypes.registry import get

    spec = opts.spec
    kind = get(spec.test)
    peak = sum(r.rates.values()) * kind.peak_factor(spec)
    tps = opts.emulator_tps or max(1350.0, 2.0 * peak)
    cfg: dict[str, Any] = {
        "port": 0, "sp": spec.sp, "callback_url": callback_url,
        "capacity": {"tps": tps}, "devices": {"registry": str(registry)},
        "alerts": {"enabled": r.alerts_per_s > 0, "rate_per_s": min(r.alerts_per_s, 100_000.0)},
    }
    # Concurrent senders (greenlets, workers) signing as one Service User reach the SUT slightly out of counter
    # order (a greenlet that signed first may send later); counters are µs << 10 | slot: accept 2 s of reordering.
    cfg["counter_window_s"] = 2.0
    if cpmode.active(spec.sp, spec.test):  # CP mode: the emulator plays the CP, migration files over SFTP
        cfg.update(cpmode.emulator_settings(opts.out / "logs" / "cp"))
    kind.emulator(spec, r, cfg, EmulatorContext(opts.emulator_tps, opts.workers, opts.out))
    midnight = secmp0192_execution(r.plan, r.rates, spec.duration_s)
    if midnight is not None:
        cfg["secmp0192"] = {"execution": midnight}
    if opts.emulator_config:
        from dcc_capacity.emulator.config import merge_settings

        cfg = merge_settings(cfg, opts.emulator_config)
    set_device_latency(cfg, opts.device_latency)
    return cfg


def set_device_latency(cfg: dict[str, Any], flag: str | None) -> None:
    """The preset written out in full (flag, else the run config's, else the environment's or the default), so
    logs/emulator-config.json records which latency the run was measured against."""
    from dcc_capacity.emulator.latency import default_preset

    latency = cfg.setdefault("capacity", {}).setdefault("device_latency", {})
    if flag is not None:
        latency["preset"] = flag
    elif not latency.get("preset"):
        latency["preset"] = default_preset()


def start_embedded(opts: Any, r: Any, callback_url: str, logs: Path) -> tuple[Any, float, dict[str, Any]]:
    """Write the fleet's device registry and the emulator's config into ``logs``, start it (a subprocess).

    Returns (emulator, its start time, its config): its fault windows count from that start.
    """
    from dcc_capacity.emulator import start_emulator
    from dcc_capacity.load.users.kit import fleet_pools, write_device_registry

    fleet = run_fleet(opts.spec, r)  # the profile's shares, as every Locust process builds it (srvmix.py)
    registry = write_device_registry(fleet, fleet_pools(fleet, opts.spec.pool_size), logs / "devices.csv")
    cfg = emulator_config(opts, r, callback_url, registry)
    (logs / "emulator-config.json").write_text(json.dumps(cfg, indent=2))
    emulator = start_emulator(cfg, mode="subprocess")
    return emulator, time.time(), cfg  # it answers within ~20 ms of starting
