// Capacity console: polls api/state every second and sends stress controls to api/control.
// Plain JS on purpose: no build step, served as-is by the dcc-capacity blueprint on Locust's Flask app.
"use strict";

const $ = (sel) => document.querySelector(sel);
const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "-" : Number(v).toFixed(d);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
let settingsLoaded = false;

function rows(tbody, html) { $(tbody).innerHTML = html.join(""); }

async function control(action, extra = {}) {
  const body = {action, who: $("#who").value || "operator", ...extra};
  const resp = await fetch("api/control", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify(body)});
  const data = await resp.json();
  $("#message").textContent = data.ok ? `${action}: done` : `${action}: ${data.error}`;
  poll();
}

function settings() {
  const num = (id) => { const v = $(id).value; return v === "" ? null : Number(v); };
  return {step_fraction: num("#step-fraction"), hold_s: num("#hold-s"), max_factor: num("#max-factor"),
          max_error_rate: num("#max-error-rate"), max_p95_ms: num("#max-p95-ms"), stop_criterion: $("#criterion").value};
}

function renderShape(shape) {
  const panel = $("#controls-panel");
  panel.querySelectorAll("button").forEach((b) => { b.disabled = !shape || shape.mode === "stopped"; });
  if (!shape) { $("#message").textContent = "read-only: the running shape is not a ControlledShape"; return; }
  $("#total-rate").textContent = fmt(shape.total_rate);
  $("#factor").textContent = fmt(shape.factor, 2);
  $("#mode").textContent = shape.mode + (shape.mode === "auto" ? ` (until ${shape.auto_criterion})` : "");
  $("#next-auto").textContent = shape.next_auto_in != null ? `next step in ${fmt(shape.next_auto_in, 0)} s` : "";
  if (!settingsLoaded) {
    $("#step-fraction").value = shape.step_fraction; $("#hold-s").value = shape.hold_s;
    $("#max-factor").value = shape.max_factor; $("#criterion").value = shape.stop_criterion;
    $("#max-error-rate").value = shape.max_error_rate; $("#max-p95-ms").value = shape.max_p95_ms ?? "";
    $("#set-factor").value = shape.factor;
    settingsLoaded = true;
  }
  $("#knee").textContent = shape.knee ? `knee: ${fmt(shape.knee.total_rate)} SRV/s (x${fmt(shape.knee.factor, 2)})` : "";
  const kneeStep = shape.knee ? shape.knee.step : -1;
  rows("#steps tbody", shape.steps.slice().reverse().map((s) => `<tr class="${s.step === kneeStep ? "current" : ""}">
    <td>${s.step}</td><td>${fmt(s.factor, 2)}</td><td>${fmt(s.total_rate)}</td><td>${fmt(s.started_t, 0)}</td>
    <td>${fmt(s.ended_t, 0)}</td><td>${s.requests}</td><td class="${s.passed ? "ok" : "fail"}">${fmt(100 * (s.requests ? s.failures / s.requests : 0), 2)}%</td>
    <td>${fmt(s.p95_ms, 0)}</td><td>${s.step === kneeStep ? "knee" : ""}</td></tr>`));
  rows("#actions tbody", shape.actions.slice().reverse().map((a) => `<tr data-action="${esc(a.action)}"><td>${fmt(a.t)}</td>
    <td>${esc(a.who)}</td><td>${esc(a.action)}</td><td>${fmt(a.from_rate)}</td><td>${fmt(a.to_rate)}</td>
    <td>${a.detail ? esc(JSON.stringify(a.detail)) : ""}</td></tr>`));
}

function renderLive(state) {
  const live = state.live, targets = state.shape ? state.shape.rates : {};
  $("#window").textContent = fmt(live.window_s, 0);
  const names = new Set([...Object.keys(live.classes), ...Object.keys(targets)]);
  let tot = {target: 0, off: 0, ach: 0, drop: 0};
  rows("#classes tbody", [...names].sort().map((name) => {
    const c = live.classes[name] || {}, target = targets[name];
    tot.target += target || 0; tot.off += c.offered_rate || 0; tot.ach += c.achieved_rate || 0; tot.drop += c.dropped_rate || 0;
    const ratio = c.offered_rate ? c.achieved_rate / c.offered_rate : null;
    return `<tr data-class="${esc(name)}"><td>${esc(name)}</td><td>${fmt(target)}</td><td class="offered">${fmt(c.offered_rate)}</td>
      <td class="achieved">${fmt(c.achieved_rate)}</td><td>${fmt(c.dropped_rate)}</td><td>${ratio === null ? "-" : fmt(100 * ratio) + "%"}</td></tr>`;
  }));
  $("#target-total").textContent = fmt(tot.target); $("#offered-total").textContent = fmt(tot.off);
  $("#achieved-total").textContent = fmt(tot.ach); $("#dropped-total").textContent = fmt(tot.drop);
  $("#ratio-total").textContent = tot.off ? fmt(100 * tot.ach / tot.off) + "%" : "-";
  rows("#latency tbody", Object.entries(live.latency).map(([k, l]) => `<tr><td>${k}</td><td>${fmt(l.p50, 0)}</td>
    <td>${fmt(l.p95, 0)}</td><td>${fmt(l.p99, 0)}</td><td>${fmt(l.max, 0)}</td><td>${fmt(l.rate)}</td><td>${l.failures}</td></tr>`));
  rows("#nfrs tbody", state.nfrs.map((n) => `<tr data-nfr="${esc(n.id)}" class="${n.ok === true ? "ok" : n.ok === false ? "fail" : ""}">
    <td>${esc(n.id)}</td><td>${esc(n.metric)}${n.stat ? " " + esc(n.stat) : ""}</td><td>${n.value === null ? "-" : fmt(n.value, 3)}</td>
    <td>${n.bound === "max" ? "&le;" : "&ge;"} ${n.threshold}</td><td>${n.ok === true ? "OK" : n.ok === false ? "FAIL" : esc(n.note || "-")}</td></tr>`));
  $("#throttled").textContent = live.throttled; $("#failed").textContent = live.failed;
  const g = live.generator || {};
  $("#lag-p99").textContent = fmt(g.send_lag_p99_ms, 1); $("#lag-max").textContent = fmt(g.send_lag_max_ms, 1);
  $("#awaited").textContent = g.awaited ?? 0; $("#parked").textContent = g.parked ?? 0;
  $("#in-flight").textContent = g.in_flight ?? 0;
  $("#generator-warning").textContent = g.dropped ? ` ${g.dropped} arrivals dropped: the run is INVALID` : "";
  rows("#errors tbody", Object.entries(live.errors).map(([code, n]) => `<tr><td>${esc(code)}</td><td>${n}</td></tr>`));
}

function renderResources(res) {
  if (!res) return;
  const el = $("#resources");
  if (!res.ok) { el.textContent = `${res.url}: ${res.error}`; el.className = "fail"; return; }
  el.className = "";
  const g = Object.entries(res.gauges).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${k.endsWith("bytes") ? fmt(v / 1048576) + " MiB" : fmt(v, 2)}</td></tr>`);
  const codes = Object.entries(res.by_code || {}).map(([k, v]) => `<tr><td>SUT response code ${esc(k)}</td><td>${v}</td></tr>`);
  el.innerHTML = `<table>${g.join("")}${codes.join("")}</table>`;
}

// Per host, from the run's resource collector: a host whose last sample failed is a gap (never shown as 0).
function renderTelemetry(tel) {
  if (!tel || !tel.rows) return;
  const el = $("#telemetry");
  el.className = tel.stale ? "fail" : "";
  const mib = (v) => (v === undefined ? "-" : fmt(v / 1048576));
  const pct = (v) => (v === undefined ? "-" : fmt(v, 1));
  const rowsHtml = tel.rows.map((r) => r.up
    ? `<tr data-host="${esc(r.host)}"><td>${esc(r.host)}</td><td>${pct(r.cpu_percent)}</td><td>${pct(r.mem_percent)}</td>
      <td>${mib(r.disk_read_bytes_s)} / ${mib(r.disk_write_bytes_s)}</td><td>${mib(r.net_rx_bytes_s)} / ${mib(r.net_tx_bytes_s)}</td>
      <td>${pct(r.process_cpu_percent)}</td><td>${mib(r.process_rss_bytes)}</td><td class="muted">${esc(r.source)}</td></tr>`
    : `<tr data-host="${esc(r.host)}" class="fail"><td>${esc(r.host)}</td><td colspan="6">GAP: ${esc(r.error)}</td><td class="muted">${esc(r.source)}</td></tr>`);
  el.innerHTML = `<table><tr><th>host</th><th>CPU %</th><th>mem %</th><th>disk r/w MiB/s</th><th>net rx/tx MiB/s</th>
    <th>process CPU %</th><th>RSS MiB</th><th>source</th></tr>${rowsHtml.join("")}</table>${tel.stale ? "<div>stale: the collector stopped</div>" : ""}`;
}

function renderPlan(plan) {
  if (!plan) return;
  const el = $("#plan");
  if (plan.error) { el.textContent = plan.error; return; }
  el.className = "";
  const head = `<tr><th>A7 SRV/s</th>${plan.slots.map((s) => `<th>${esc(s)}</th>`).join("")}</tr>`;
  const a7 = plan.a7.map((r) => `<tr><td>${esc(r.sp)}</td>${plan.slots.map((s) =>
    `<td class="${r.sp === plan.sp && s === plan.slot ? "ok" : ""}">${fmt(r[s], 2)}</td>`).join("")}</tr>`);
  const targets = plan.targets.filter((t) => t.rate > 0).map((t) =>
    `<tr><td>${esc(t.row)}</td><td>${esc(t.user_class)}</td><td>${fmt(t.rate, 2)}</td></tr>`);
  el.innerHTML = `<div>profile <b>${esc(plan.profile)}</b>, ${esc(plan.sp)}, ${esc(plan.slot)}: ${fmt(plan.a7_rate, 2)} SRV/s</div>
    <table>${head}${a7.join("")}</table><table><tr><th>row</th><th>user class</th><th>target SRV/s</th></tr>${targets.join("")}</table>`;
}

async function poll() {
  try {
    const state = await (await fetch("api/state")).json();
    $("#runner-state").textContent = state.runner.state;
    $("#workers").textContent = state.runner.workers ? `${state.runner.workers} workers` : "";
    renderShape(state.shape); renderLive(state); renderResources(state.resources); renderTelemetry(state.telemetry); renderPlan(state.plan);
    document.body.dataset.updated = String(state.time);
  } catch (e) {
    $("#message").textContent = `cannot reach Locust: ${e}`;
  }
}

document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => {
  if (b.dataset.action === "stop" && !window.confirm("Stop the test?")) return;
  control(b.dataset.action);
}));
$("#btn-set").addEventListener("click", () => control("set", {factor: Number($("#set-factor").value)}));
$("#btn-apply").addEventListener("click", () => control("configure", {settings: settings()}));
$("#btn-auto").addEventListener("click", () => control("auto", {settings: settings(), criterion: $("#criterion").value}));
if (new URLSearchParams(window.location.search).has("embedded")) document.body.classList.add("embedded");
poll();
setInterval(poll, 1000);
