"""Resource telemetry without a load run: the exposition parser's figures, gaps (never zeros), config errors.

The real node_exporter and Prometheus are driven in tests/test_telemetry_run.py;
here a stdlib HTTP server plays an exporter that can be switched off, so the
collector's gap rule, the report's per-host tables and a per-host CPU NFR are
checked in about a second.
"""

from __future__ import annotations

import argparse
import http.server
import threading
import time

import pytest

from dcc_capacity.config.runconfig import load_run_config
from dcc_capacity.errors import InputError
from dcc_capacity.model.nfr import RESOURCE_METRICS, Nfr, judge
from dcc_capacity.orchestrate.configmap import map_config
from dcc_capacity.report.resources import load_resources, utilisation
from dcc_capacity.telemetry import METRIC_NAMES, ScrapeTarget, TelemetryConfig, build_collector, live_summary, read_live
from dcc_capacity.telemetry.expo import derive, parse
from dcc_capacity.telemetry.sources import ScrapeSource

pytestmark = pytest.mark.timeout(60)


def node_text(idle: float, user: float, avail: float, read: float, net: float, io: float = 0.0) -> str:
    """A node_exporter exposition (the names, types and labels it really uses), two CPUs."""
    return f"""# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle / 2}
node_cpu_seconds_total{{cpu="1",mode="idle"}} {idle / 2}
node_cpu_seconds_total{{cpu="0",mode="user"}} {user / 2}
node_cpu_seconds_total{{cpu="1",mode="user"}} {user / 2}
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 8e+09
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes {avail}
# TYPE node_disk_read_bytes_total counter
node_disk_read_bytes_total{{device="sda"}} {read}
node_disk_read_bytes_total{{device="loop0"}} {read * 100}
# TYPE node_disk_written_bytes_total counter
node_disk_written_bytes_total{{device="sda"}} 0
# TYPE node_disk_io_time_seconds_total counter
node_disk_io_time_seconds_total{{device="sda"}} {io}
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{{device="eth0"}} {net}
node_network_receive_bytes_total{{device="lo"}} {net * 10}
# TYPE node_network_transmit_bytes_total counter
node_network_transmit_bytes_total{{device="eth0"}} {net / 2}
"""


def test_node_figures_come_from_two_scrapes_and_a_counter_reset_gives_no_rate():
    t = ScrapeTarget(host="h", url="http://127.0.0.1:1/metrics")
    a = parse(node_text(idle=100, user=50, avail=6e9, read=1000, net=500, io=1.0), 10.0)
    b = parse(node_text(idle=101, user=53, avail=4e9, read=3000, net=2500, io=1.5), 12.0)
    first = derive("node", None, a, disk_exclude=t.disk_exclude, net_exclude=t.net_exclude)
    assert first == {"mem_used_bytes": 2e9, "mem_percent": 25.0}  # a gauge needs one scrape, a rate two
    got = derive("node", a, b, disk_exclude=t.disk_exclude, net_exclude=t.net_exclude)
    assert got["cpu_percent"] == pytest.approx(75.0)  # 3 s busy of 4 s over both CPUs
    assert got["mem_percent"] == pytest.approx(50.0)
    assert got["disk_read_bytes_s"] == pytest.approx(1000.0)  # loop0 is left out
    assert got["disk_busy_percent"] == pytest.approx(25.0)
    assert got["net_rx_bytes_s"] == pytest.approx(1000.0) and got["net_tx_bytes_s"] == pytest.approx(500.0)  # no lo
    reset = derive("node", b, parse(node_text(idle=1, user=1, avail=4e9, read=0, net=0), 14.0))
    assert "cpu_percent" not in reset and reset["disk_read_bytes_s"] == 0.0  # an exporter restart: no negative rate
    proc = derive("process", parse("process_cpu_seconds_total 10\nprocess_resident_memory_bytes 5e8\n", 0.0),
                  parse("process_cpu_seconds_total 11.5\nprocess_resident_memory_bytes 6e8\n", 2.0))
    assert proc == {"process_rss_bytes": 6e8, "process_cpu_percent": pytest.approx(75.0)}
    with pytest.raises(ValueError):
        parse("<html>502 Bad Gateway</html>", 0.0)
    assert set(METRIC_NAMES) == set(RESOURCE_METRICS)  # the collector's columns are the NFR metrics


class _Exporter(http.server.BaseHTTPRequestHandler):
    counter = [0.0]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.counter[0] += 1.0
        body = node_text(idle=self.counter[0], user=self.counter[0], avail=6e9, read=0, net=0).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_a_dead_exporter_is_a_gap_never_a_zero_and_the_nfr_is_judged_on_good_samples(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = TelemetryConfig(interval=0.2, timeout=0.5, scrape=[
        ScrapeTarget(host="up-host", url=f"http://127.0.0.1:{port}/metrics"),
        ScrapeTarget(host="dead-host", url="http://127.0.0.1:9/metrics")])  # discard port: refused
    collector = build_collector(cfg, tmp_path)
    collector.start()
    try:
        deadline = time.time() + 10
        while time.time() < deadline and collector.counts.get("up-host", {}).get("samples", 0) < 3:
            time.sleep(0.05)
        live = read_live(tmp_path)
        assert live is not None and not live["stale"]
        assert "cpu 50% (up-host)" in live_summary(live) and "GAP dead-host" in live_summary(live)
        server.shutdown()
        server.server_close()  # the exporter goes away mid-run: gaps from now on
        time.sleep(0.7)
    finally:
        collector.stop()
    res = load_resources(tmp_path)
    df = res.samples
    dead = df[df["host"] == "dead-host"]
    assert len(dead) >= 3 and (dead["up"] == 0).all() and dead[list(METRIC_NAMES)].isna().all().all()
    assert dead["error"].str.contains("Connection refused|URLError", regex=True).all()
    up = df[df["host"] == "up-host"]
    assert (up["up"] == 1).sum() >= 3 and (up["up"] == 0).sum() >= 1  # it went down at the end
    assert up[up["up"] == 1]["cpu_percent"].dropna().eq(50.0).all()
    spans = res.gaps(df["ts"].min())
    assert {g["host"] for g in spans} == {"dead-host", "up-host"}
    assert [g for g in spans if g["host"] == "up-host"][-1]["samples"] >= 1
    groups = res.groups()
    nfr = Nfr(id="NFR-CPU", metric="cpu_percent", stat="max", max=40, per="host")
    v = judge(nfr, groups, None)
    assert v.status == "fail" and v.measured == pytest.approx(50.0)
    assert v.groups == {"dead-host": None, "up-host": pytest.approx(50.0)}  # the dead host: not measured, not 0
    assert judge(Nfr(id="H", metric="cpu_percent", stat="max", max=60, host="up-host"), groups, None).passed
    assert judge(Nfr(id="D", metric="cpu_percent", stat="max", max=60, host="dead-host"), groups, None).status == \
        "no data"
    assert judge(Nfr(id="ALL", metric="mem_percent", stat="mean", max=30), groups, None).measured == \
        pytest.approx(25.0)
    util = utilisation(res, [nfr], capacity=100.0)
    assert util["peak_cpu"] == 50.0 and util["peak_cpu_host"] == "up-host"
    assert util["cpu_bound_capacity"] == pytest.approx(80.0)  # 100 req/s x 40 % / 50 %
    meta = res.meta
    assert meta["interval_s"] == 0.2 and meta["interval_source"] == "project default"  # not set in a file
    assert meta["hosts"]["dead-host"]["samples"] == 0 and meta["hosts"]["dead-host"]["gaps"] >= 3


def test_a_source_that_fails_returns_a_gap_row_without_raising():
    src = ScrapeSource(ScrapeTarget(host="x", url="http://127.0.0.1:9/metrics"), timeout=0.3)
    (row,) = src.sample(1.0)
    assert not row.up and row.values == {} and row.error and row.host == "x"


@pytest.mark.parametrize(("text", "message"), [
    ('[[telemetry.scrape]]\nhost = "a"\nurl = "http://127.0.0.1:9100/metrics"\nkind = "nod"\n',
     r"cfg.toml:4: telemetry.scrape\[0\].kind"),
    ('[[telemetry.scrape]]\nhost = "a"\nurl = "http://u:pw@127.0.0.1:9100/metrics"\n',
     r"telemetry.scrape\[0\].url: .*credentials in the URL are not accepted"),
    ('[[telemetry.prometheus]]\nurl = "http://127.0.0.1:9090"\npassword = "x"\n',
     r"cfg.toml:3: telemetry.prometheus\[0\].password: inline secrets are not accepted"),
    ('[telemetry]\ninterval = "fast"\n', r"cfg.toml:2: telemetry.interval: .*not a duration"),
    ('[[telemetry.prometheus]]\nurl = "http://127.0.0.1:9090"\nqueries = {cpu = "up"}\n',
     r"telemetry.prometheus\[0\].queries: .*unknown metric\(s\) cpu"),
])
def test_bad_telemetry_config_is_one_line_naming_file_and_field(tmp_path, text, message):
    p = tmp_path / "cfg.toml"
    p.write_text(text)
    with pytest.raises(InputError, match=message):
        load_run_config(p)


def test_a_credential_variable_that_is_not_set_is_exit_2_naming_it(tmp_path, monkeypatch):
    p = tmp_path / "cfg.toml"
    p.write_text('[telemetry]\ninterval = "2s"\n[[telemetry.prometheus]]\nurl = "https://127.0.0.1:9090"\n'
                 'bearer_token_env = "DCC_TEST_PROM_TOKEN"\n')
    monkeypatch.delenv("DCC_TEST_PROM_TOKEN", raising=False)
    cfg, src = load_run_config(p)
    args = argparse.Namespace(host=None, workers=0, yes=False)
    with pytest.raises(InputError, match=r"telemetry.prometheus\[0\].bearer_token_env: environment variable "
                                         r"DCC_TEST_PROM_TOKEN is not set") as e:
        map_config(cfg, src, args, tmp_path / "out")
    assert e.value.exit_code == 2 and str(p) in str(e.value)
    monkeypatch.setenv("DCC_TEST_PROM_TOKEN", "s3cret-token")
    m = map_config(cfg, src, args, tmp_path / "out")
    assert m.telemetry.interval == 2.0 and "s3cret-token" not in m.files["run-config.json"].decode()
    collector = build_collector(m.telemetry, tmp_path, config_file=m.config_file)
    assert collector.provenance["interval_source"] == f"run configuration {p}: telemetry.interval"


@pytest.mark.parametrize(("nfr", "message"), [
    ({"metric": "cpu_percent", "max": 70}, "stat: required"),
    ({"metric": "cpu_percent", "stat": "max", "max": 70, "per": "user_class"}, "scoped by host only"),
    ({"metric": "ack_ms", "stat": "p95", "max": 70, "per": "host"}, "host scope is for resource metrics"),
    ({"metric": "ack_ms", "stat": "mean", "max": 70}, "mean is for resource metrics"),
])
def test_resource_nfrs_are_validated(nfr, message):
    with pytest.raises(ValueError, match=message):
        Nfr(id="X", **nfr)


def test_no_resources_file_means_no_tables_and_no_peak(tmp_path):
    res = load_resources(tmp_path)
    assert not res.present and res.groups() == {} and res.peak("cpu_percent") is None
    (tmp_path / "resources.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="resources.csv: ts: required column is missing"):
        load_resources(tmp_path)


def test_shipped_catalogue_has_the_per_host_cpu_nfr():
    from dcc_capacity.model.nfr import load_catalogue

    cpu = next(n for n in load_catalogue().nfrs if n.id == "NFR-CPU")
    assert (cpu.metric, cpu.stat, cpu.max, cpu.per, cpu.required) == ("cpu_percent", "max", 70, "host", False)


def test_the_progress_line_and_the_capacity_tab_show_the_hosts_and_their_gaps(tmp_path):
    """The Locust side reads the parent's collector through the run folder (telemetry-live.json)."""
    from types import SimpleNamespace

    from locust.env import Environment

    from dcc_capacity.load.progress import Progress
    from dcc_capacity.telemetry.collector import Collector
    from dcc_capacity.telemetry.sources import Row
    from dcc_capacity.webui import CapacityUI

    c = Collector(tmp_path, [], 5.0)
    c._record([Row(time.time(), "dsp-app-1", "scrape node u", True, {"cpu_percent": 43.2, "mem_percent": 61.0}),
               Row(time.time(), "dsp-app-2", "scrape node v", False, error="URLError: refused")])
    c._csv.close()
    env = Environment(user_classes=[], parsed_options=SimpleNamespace(run_dir=str(tmp_path), web_base_path=""))
    env.create_local_runner()
    line = Progress(env, []).line()
    assert line.endswith("| SUT cpu 43% (dsp-app-1) mem 61% (dsp-app-1) GAP dsp-app-2"), line
    ui = CapacityUI(env)
    rows = {r["item"]: r for r in ui.tab_rows()}
    assert rows["dsp-app-1 resources"]["now"] == "cpu 43% mem 61%"
    assert rows["dsp-app-2 resources"]["status"] == "GAP" and "refused" in rows["dsp-app-2 resources"]["now"]
    assert [r["host"] for r in ui.state()["telemetry"]["rows"]] == ["dsp-app-1", "dsp-app-2"]
