// Keel dashboard: vanilla JS, no build step, no external assets. Polls this member's JSON API once a second.
// Everything from the server is put into the page with textContent (never innerHTML): keys and values are arbitrary
// bytes and must never become markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { selectedKey: null, oldestMs: 0, atMs: null, leaderName: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const pill = (text, cls) => el("span", { class: "pill " + (cls || String(text)) }, text);
const dash = "–";

function setRows(table, rows, emptyText, columns) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: columns }, emptyText))]));
}

function bytes(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = -1;
  do { value /= 1024; unit++; } while (value >= 1024 && unit < units.length - 1);
  return value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
}

function hybrid(time) {
  if (!time) return dash;
  return new Date(time.unixMs).toISOString().replace("T", " ").replace("Z", " UTC") + " ·" + time.logical;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body && body.error ? body.error : response.status + " " + response.statusText);
  return body;
}

function toBase64(text) {
  const utf8 = new TextEncoder().encode(text);
  let binary = "";
  for (const b of utf8) binary += String.fromCharCode(b);
  return btoa(binary);
}

// ---- overview -----------------------------------------------------------------------------------------------------
async function refreshOverview() {
  const o = await getJson("/ui/api/overview");
  $("self").textContent = `member ${o.name} (${o.id}) · cluster ${o.clusterId}`;
  const health = $("health");
  health.textContent = o.ready ? "ready" : "not ready: " + o.notReadyReason;
  health.className = "badge " + (o.ready ? "ok" : "bad");
  const leader = o.members.find((m) => m.isLeader);
  state.leaderName = leader ? leader.name : null;
  $("leader").textContent = leader ? leader.name : (o.leader === "0000000000000000" ? "none" : o.leader);
  $("leader").title = o.leader;
  $("term").textContent = o.term;
  $("revision").textContent = o.revision;
  $("indexes").textContent = `${o.commitIndex} / ${o.appliedIndex}`;
  $("keycount").textContent = o.keyCount;
  $("storesize").textContent = bytes(o.storeSizeBytes);
  $("lag-hint").textContent = o.isLeader
    ? "match index and lag (commit − match) as this leader tracks them"
    : "match index and lag are known to the leader: open its dashboard to see them";
  setRows("members", o.members.map((m) => el("tr", { class: "member", "data-name": m.name, "data-leader": m.isLeader ? "true" : "false" },
    el("td", {}, m.name, m.isSelf ? pill("this member", "self") : null),
    el("td", { class: "mono" }, m.id),
    el("td", {}, m.isLeader ? pill("leader") : m.isLearner ? pill("learner", "probe") : "follower"),
    el("td", {}, m.match ?? dash),
    el("td", {}, m.lag ?? dash),
    el("td", {}, m.progress ? pill(m.progress + (m.active === false ? " (inactive)" : ""), m.active === false ? "dead" : m.progress) : dash),
    el("td", {}, m.gossipState ? pill(m.gossipState) : dash),
    el("td", { class: "mono" }, m.clientUrls.join(", ") || dash))), "no members", 8);
  setRows("gossip", o.gossip.map((g) => el("tr", { class: "gossip-member" },
    el("td", { class: "mono" }, g.address),
    el("td", {}, g.role || dash),
    el("td", {}, g.zone || dash),
    el("td", {}, pill(g.state)),
    el("td", {}, pill(g.health)),
    el("td", {}, g.phi === null ? "∞" : g.phi.toFixed(2)),
    el("td", {}, g.incarnation))), o.gossipJoined ? "no other gossip members seen" : "gossip not joined yet", 7);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// ---- charts -------------------------------------------------------------------------------------------------------
const charts = [
  { id: "chart-puts", title: "Puts / s", value: (s) => s.putsPerSecond, format: (v) => v.toFixed(1), color: "#1f6feb" },
  { id: "chart-p99", title: "Put latency p99 (ms)", value: (s) => s.putP99Ms, format: (v) => v.toFixed(2), color: "#8250df" },
  { id: "chart-fsync", title: "WAL fsync p99 (ms)", value: (s) => s.fsyncP99Ms, format: (v) => v.toFixed(2), color: "#bf3989" },
  { id: "chart-loop", title: "Node loop busy (%)", value: (s) => s.loopUtilization * 100, format: (v) => v.toFixed(1), color: "#1a7f37" },
];

function drawChart(chart, samples) {
  const host = $(chart.id);
  const values = samples.map(chart.value);
  const max = Math.max(1e-9, ...values);
  const width = 300, height = 90, n = 300;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  for (const y of [0.25, 0.5, 0.75]) {
    const line = document.createElementNS(svgNs, "line");
    line.setAttribute("x1", 0); line.setAttribute("x2", width);
    line.setAttribute("y1", height * y); line.setAttribute("y2", height * y);
    line.setAttribute("stroke", "#eef1f5");
    svg.append(line);
  }
  if (values.length > 1) {
    const offset = n - values.length;
    const points = values.map((v, i) => `${((offset + i) / (n - 1)) * width},${height - 4 - (v / max) * (height - 10)}`);
    const area = document.createElementNS(svgNs, "polygon");
    area.setAttribute("points", `${((offset) / (n - 1)) * width},${height} ${points.join(" ")} ${width},${height}`);
    area.setAttribute("fill", chart.color); area.setAttribute("fill-opacity", "0.12");
    const line = document.createElementNS(svgNs, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", chart.color); line.setAttribute("stroke-width", "1.6");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(area, line);
  }
  const last = values.length ? values[values.length - 1] : 0;
  host.replaceChildren(
    el("div", { class: "title" }, el("span", {}, chart.title), el("span", {}, el("span", { class: "now" }, chart.format(last)), " · max " + chart.format(values.length ? max : 0))),
    svg);
}

async function refreshCharts() {
  const samples = await getJson("/ui/api/samples");
  for (const chart of charts) drawChart(chart, samples);
}

// ---- leases -------------------------------------------------------------------------------------------------------
async function refreshLeases() {
  const leases = await getJson("/ui/api/leases");
  setRows("leases", leases.map((l) => el("tr", { class: "lease" },
    el("td", { class: "mono" }, l.id),
    el("td", {}, l.ttl + " s"),
    el("td", {}, l.grantedTtl + " s"),
    el("td", {}, l.fencingToken),
    el("td", { class: "mono" }, l.keys.map((k) => k.text).join(", ") + (l.keyCount > l.keys.length ? ` … (+${l.keyCount - l.keys.length})` : "") || dash))),
    "no leases", 5);
}

// ---- keys, time slider, history -----------------------------------------------------------------------------------
function sliderTime() {
  const slider = $("time");
  if (Number(slider.value) >= Number(slider.max)) return null;
  const now = Date.now();
  const oldest = state.oldestMs || now - 60_000;
  return Math.round(oldest + (now - oldest) * (Number(slider.value) / Number(slider.max)));
}

async function refreshKeys() {
  const prefix = $("prefix").value;
  const at = state.atMs;
  let query = "/ui/api/keys?limit=200";
  if (prefix) query += "&prefix=" + encodeURIComponent(toBase64(prefix));
  if (at !== null) query += "&at=" + at;
  let result;
  try {
    result = await getJson(query);
  } catch (error) {
    setRows("keys", [], String(error.message), 6);
    return;
  }
  if (result.oldestUnixMs) state.oldestMs = result.oldestUnixMs;
  $("time-label").textContent = at === null ? "now (live)" : new Date(at).toISOString().replace("T", " ").replace("Z", " UTC");
  $("asof-hint").textContent = at === null
    ? `revision ${result.revision}, ${result.count} key(s)`
    : `store as of revision ${result.revision} (current ${result.currentRevision}), ${result.count} key(s)`;
  setRows("keys", result.kvs.map((kv) => {
    const row = el("tr", { class: "key" + (state.selectedKey === kv.key.base64 ? " selected" : ""), "data-key": kv.key.base64 },
      el("td", { class: "mono" }, kv.key.text),
      el("td", { class: "mono" }, kv.value),
      el("td", {}, kv.modRevision),
      el("td", {}, kv.version),
      el("td", { class: "mono" }, kv.lease === "0" ? dash : kv.lease),
      el("td", { class: "mono nowrap" }, hybrid(kv.time)));
    row.addEventListener("click", () => { state.selectedKey = kv.key.base64; refreshKeys(); refreshHistory(); });
    return row;
  }), result.revision <= 1 ? "the store was empty then" : "no keys", 6);
}

async function refreshHistory() {
  if (!state.selectedKey) return;
  const history = await getJson("/ui/api/history?key=" + encodeURIComponent(state.selectedKey));
  $("history-key").textContent = history.key.text;
  $("history-hint").textContent = history.changes.length
    ? `${history.changes.length} change(s), newest first` + (history.compactRevision > 1 ? ` (compacted at revision ${history.compactRevision})` : "")
    : "no changes kept for this key";
  setRows("history-table", history.changes.map((c) => el("tr", { class: "change" },
    el("td", {}, c.revision),
    el("td", { class: c.type }, c.type),
    el("td", {}, c.type === "put" ? c.version : dash),
    el("td", { class: "mono" }, c.type === "put" ? c.value : dash),
    el("td", { class: "mono nowrap" }, hybrid(c.time)))), "no changes", 5);
}

// ---- wiring -------------------------------------------------------------------------------------------------------
$("time").addEventListener("input", () => { state.atMs = sliderTime(); refreshKeys(); });
$("now").addEventListener("click", () => { $("time").value = $("time").max; state.atMs = null; refreshKeys(); });
$("prefix").addEventListener("input", () => refreshKeys());

async function safely(work) {
  try { await work(); } catch (error) { $("updated").textContent = "update failed: " + error.message; }
}

async function tick(count) {
  await safely(refreshOverview);
  await safely(refreshCharts);
  if (count % 2 === 0) {
    await safely(refreshLeases);
    // A chosen past time shows a fixed snapshot; only "now" follows new writes.
    if (state.atMs === null) await safely(refreshKeys);
    await safely(refreshHistory);
  }
  setTimeout(() => tick(count + 1), 1000);
}
tick(0);
