"""The RequestID counter window: seconds of arrival time, replays always refused, memory bounded in a soak."""

from __future__ import annotations

import argparse
import tracemalloc

import pytest

from dcc_capacity.cli import emulator as cli_emulator
from dcc_capacity.emulator.config import load_config
from dcc_capacity.emulator.counters import CounterWindow
from dcc_capacity.errors import InputError

USER = "90-B3-D5-1F-30-01-00-00"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reordering_inside_the_window_is_accepted_and_lateness_beyond_it_is_not():
    clock = Clock()
    w = CounterWindow(2.0, clock=clock)
    assert w.accept(USER, 100)
    clock.now += 0.5
    assert w.accept(USER, 99)             # overtaken by 100, 0.5 s ago
    assert not w.accept(USER, 99)         # replay
    assert not w.accept(USER, 100)        # replay of the highest
    clock.now += 1.6                      # 100 arrived 2.1 s ago, 99 1.6 s ago
    assert w.accept(USER, 101)            # forgets 100 (floor 100), keeps 99
    assert not w.accept(USER, 98)         # never seen, but 100 arrived more than 2 s before it
    assert not w.accept(USER, 99)         # replay still remembered
    assert not w.accept(USER, 100)        # replay of a forgotten counter: at or below the floor
    assert w.accept("90-B3-D5-1F-30-02-00-00", 5)  # originators are independent


def test_zero_window_means_strictly_increasing():
    clock = Clock()
    w = CounterWindow(0.0, clock=clock)
    assert w.accept(USER, 10)
    clock.now += 0.001
    assert not w.accept(USER, 9)
    assert not w.accept(USER, 10)
    assert w.accept(USER, 11)


def test_memory_stays_bounded_over_200k_counters_and_replays_inside_the_window_are_refused():
    """A soak: 200,000 counters at 2,000/s, lightly reordered; what is remembered is the last window only."""
    clock = Clock()
    rate, window = 2000.0, 2.0
    w = CounterWindow(window, clock=clock)
    tracemalloc.start()
    try:
        peaks = []
        for base in range(0, 200_000, 2):
            clock.now += 2 / rate
            assert w.accept(USER, base + 1)
            assert w.accept(USER, base)     # arrives after base + 1: reordered, accepted
            if base % 20_000 == 0:
                peaks.append(w.remembered(USER))
                assert not w.accept(USER, base)           # replay inside the window
                assert not w.accept(USER, max(0, base - 1000))  # replay of one 0.5 s old
        size_at_end = w.remembered(USER)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = int(rate * window) + 2
    assert max(peaks) <= limit and size_at_end <= limit, (peaks, size_at_end)
    assert size_at_end >= limit - 4         # it does remember the whole window
    assert peak_bytes < 3 * 1024 * 1024, peak_bytes   # ~4,000 counters, not 200,000
    assert not w.accept(USER, 5) and not w.accept(USER, 199_999)  # old replay, recent replay


def test_a_burst_faster_than_the_cap_is_bounded_too():
    """All at one instant (no time passes): the per-originator cap forgets the oldest early, replays still refused."""
    clock = Clock()
    w = CounterWindow(60.0, max_remembered=5_000, clock=clock)
    for c in range(200_000):
        assert w.accept(USER, c)
    assert w.remembered() <= 5_000
    assert not any(w.accept(USER, c) for c in (0, 150_000, 199_999))


def test_window_from_file_and_cli(tmp_path):
    f = tmp_path / "emu.yaml"
    f.write_text("counter_window_s: 0.25\n")
    assert load_config(f).counter_window_s == 0.25
    assert load_config().counter_window_s == 2.0
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_emulator.add_parser(sub, "emulator")
    args = parser.parse_args(["emulator", "--config", str(f), "--counter-window", "7.5"])
    assert load_config(args.config, cli_emulator._overrides(args)).counter_window_s == 7.5
    with pytest.raises(InputError, match="counter_window_s"):
        load_config(None, {"counter_window_s": -1})
    g = tmp_path / "old.yaml"
    g.write_text("counter_window: 2048000000\n")  # the old counter-unit key is refused, not misread as seconds
    with pytest.raises(InputError, match="counter_window"):
        load_config(g)
