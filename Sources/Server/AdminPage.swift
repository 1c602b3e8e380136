/// The admin page served at `/`: one HTML document with its CSS and JavaScript inline, so it needs
/// no build step, no CDN and no files beside the binary. It reads the JSON API like any client
/// (the events stream for live progress) and asks for the API token when a call answers 401.
enum AdminPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tidemark</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#667085; --line:#e4e7ec; --accent:#1f6feb; --ok:#1a7f37; --warn:#b54708; --bad:#c4320a; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:center; gap:16px; padding:12px 24px; background:#0f1b2d; color:#fff; }
  header h1 { font-size:18px; margin:0; letter-spacing:.3px; }
  header .meta { color:#b8c4d6; font-size:13px; }
  header .pill { margin-left:auto; }
  main { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:16px; padding:16px 24px 32px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size:14px; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); margin:0 0 10px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:middle; }
  th { font-weight:600; color:var(--muted); font-size:12px; }
  td.num { text-align:right; font-variant-numeric: tabular-nums; }
  button { font:inherit; border:1px solid var(--line); background:#fff; border-radius:6px; padding:3px 10px; cursor:pointer; }
  button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
  button:disabled { opacity:.5; cursor:default; }
  .pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; background:#eef2f6; color:var(--ink); }
  .pill.ok { background:#dafbe1; color:var(--ok); } .pill.warn { background:#fff4e5; color:var(--warn); } .pill.bad { background:#fee4e2; color:var(--bad); }
  .gauges { display:grid; grid-template-columns: repeat(3, 1fr); gap:12px; }
  .gauge { border:1px solid var(--line); border-radius:8px; padding:10px; }
  .gauge .value { font-size:22px; font-weight:600; font-variant-numeric: tabular-nums; }
  .gauge .label { color:var(--muted); font-size:12px; }
  .meter { height:6px; background:#eef2f6; border-radius:3px; overflow:hidden; margin-top:6px; }
  .meter > div { height:100%; background:var(--accent); width:0; transition: width .4s; }
  .bar { position:relative; height:16px; background:#eef2f6; border-radius:4px; overflow:hidden; min-width:120px; }
  .bar > div { height:100%; background:var(--accent); transition: width .4s; }
  .bar > span { position:absolute; inset:0; text-align:center; font-size:11px; line-height:16px; color:#0f1b2d; }
  .search { display:flex; gap:8px; margin-bottom:10px; }
  .search input[type=text] { flex:1; padding:6px 8px; border:1px solid var(--line); border-radius:6px; font:inherit; }
  select, input[type=number] { font:inherit; padding:5px; border:1px solid var(--line); border-radius:6px; }
  .hit { border-bottom:1px solid var(--line); padding:8px 0; }
  .hit .score { font-variant-numeric: tabular-nums; color:var(--accent); font-weight:600; margin-right:8px; }
  .hit .id { color:var(--muted); font-size:12px; }
  .hit pre { margin:4px 0 0; white-space:pre-wrap; font:inherit; }
  .muted { color:var(--muted); }
  .error { color:var(--bad); }
  #token-box { display:none; gap:8px; align-items:center; padding:10px 24px; background:#fff4e5; border-bottom:1px solid var(--line); }
  #token-box input { flex:1; max-width:420px; padding:5px 8px; border:1px solid var(--line); border-radius:6px; }
  #toast { position:fixed; bottom:16px; right:16px; background:#0f1b2d; color:#fff; padding:8px 14px; border-radius:8px; opacity:0; transition:opacity .3s; max-width:480px; }
</style>
</head>
<body>
<header>
  <h1>Tidemark</h1>
  <span class="meta" id="agent-meta">connecting…</span>
  <span class="pill" id="live">offline</span>
</header>
<div id="token-box">
  <span>This call needs the API token:</span>
  <input id="token" type="password" placeholder="Bearer token (api.token_env / api.token_file)" autocomplete="off">
  <button class="primary" id="token-save">Use token</button>
</div>
<main>
  <section class="wide">
    <h2>Replication</h2>
    <div class="gauges">
      <div class="gauge"><div class="label">Lag</div><div class="value" id="lag-bytes">–</div><div class="meter"><div id="lag-bytes-meter"></div></div></div>
      <div class="gauge"><div class="label">Lag (time)</div><div class="value" id="lag-seconds">–</div><div class="meter"><div id="lag-seconds-meter"></div></div></div>
      <div class="gauge"><div class="label">WAL retained by the slot</div><div class="value" id="wal-retained">–</div><div class="meter"><div id="wal-meter"></div></div></div>
    </div>
    <p class="muted" id="slot-line"></p>
  </section>
  <section class="wide">
    <h2>Entities</h2>
    <table id="entities"><thead><tr><th>Entity</th><th>Table</th><th class="num">Documents</th><th>State</th><th class="num">Dead letters</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Jobs</h2>
    <table id="jobs"><thead><tr><th>Job</th><th>Entity</th><th>Kind</th><th>Status</th><th>Progress</th><th class="num">Rate</th><th class="num">ETA</th><th></th></tr></thead><tbody></tbody></table>
    <p class="muted" id="jobs-empty">No jobs yet.</p>
  </section>
  <section>
    <h2>Search</h2>
    <form class="search" id="search-form">
      <select id="search-entity"></select>
      <input type="text" id="search-q" placeholder="What are you looking for?">
      <input type="number" id="search-k" value="5" min="1" max="100" style="width:64px">
      <button class="primary" id="search-go" type="submit">Search</button>
    </form>
    <div id="hits"><p class="muted">Results appear here with their scores (cosine similarity).</p></div>
  </section>
  <section>
    <h2>Dead letters</h2>
    <div style="display:flex; justify-content:space-between; align-items:center; margin-bottom:8px">
      <span class="muted" id="dead-summary">–</span>
      <button id="dead-retry" disabled>Retry all</button>
    </div>
    <table id="dead"><thead><tr><th>Entity</th><th>Id</th><th>Stage</th><th>Error</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Drift</h2>
    <div id="drift"><p class="muted">Validate an entity to compare the index with its table.</p></div>
  </section>
  <section>
    <h2>Embedder &amp; pipeline</h2>
    <table id="embedder"><tbody></tbody></table>
  </section>
</main>
<div id="toast"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("tidemark.token") || "";
let entityNames = [];

function esc(text) { return String(text ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); }
function bytes(n) { if (n == null) return "–"; const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; }
function seconds(s) { if (s == null) return "–"; if (s < 1) return (s * 1000).toFixed(0) + " ms"; if (s < 120) return s.toFixed(1) + " s"; const m = Math.floor(s / 60); return m + " min " + Math.round(s % 60) + " s"; }
function eta(s) { if (s == null) return ""; s = Math.round(s); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); }
function meter(el, value, scale) { el.style.width = Math.min(100, value == null ? 0 : 100 * Math.log10(1 + value) / Math.log10(1 + scale)) + "%"; }
function toast(text, bad) { const t = $("toast"); t.textContent = text; t.style.background = bad ? "#c4320a" : "#0f1b2d"; t.style.opacity = 1; clearTimeout(toast.timer); toast.timer = setTimeout(() => t.style.opacity = 0, 3500); }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) { $("token-box").style.display = "flex"; }
  if (!response.ok) { const e = new Error((data.error && data.error.message) || response.statusText); e.status = response.status; e.code = data.error && data.error.code; throw e; }
  return data;
}

function renderStatus(status) {
  const a = status.agent;
  $("agent-meta").textContent = a.phase + " · checkpoint " + (a.checkpoint || "none") + " · up " + seconds(a.uptime_seconds) + " · v" + a.version;
  const r = status.replication;
  if (r) {
    $("lag-bytes").textContent = bytes(r.lag_bytes); meter($("lag-bytes-meter"), r.lag_bytes, 1 << 30);
    $("lag-seconds").textContent = seconds(r.lag_seconds); meter($("lag-seconds-meter"), r.lag_seconds, 300);
    $("wal-retained").textContent = bytes(r.retained_bytes); meter($("wal-meter"), r.retained_bytes, 16 * 1024 * 1024 * 1024);
    $("slot-line").textContent = "slot " + r.slot + (r.exists ? (r.active ? " (streaming)" : " (inactive)") : " (missing)") + " · WAL status " + (r.wal_status || "–") + " · confirmed " + (r.confirmed_lsn || "–") + " · server " + r.server_lsn;
  } else {
    $("slot-line").innerHTML = '<span class="error">' + esc(status.source_error || "source unreachable") + "</span>";
  }
  const body = $("entities").tBodies[0];
  const names = status.entities.map(e => e.name);
  if (names.join() !== entityNames.join()) {
    entityNames = names;
    $("search-entity").innerHTML = names.map(n => "<option>" + esc(n) + "</option>").join("");
    $("drift").innerHTML = '<p class="muted">Validate an entity to compare the index with its table.</p><p id="drift-latest"></p>' + names.map(n => '<button data-validate="' + esc(n) + '">Validate ' + esc(n) + "</button> ").join("");
  }
  body.innerHTML = status.entities.map(e => {
    const cls = e.state === "loaded" ? "ok" : e.state === "not_loaded" ? "bad" : "warn";
    const state = '<span class="pill ' + cls + '">' + esc(e.state.replace("_", " ")) + "</span>" + (e.job ? " " + e.job.percent.toFixed(0) + "%" : "");
    return '<tr data-entity="' + esc(e.name) + '"><td>' + esc(e.name) + "</td><td>" + esc(e.table) + '</td><td class="num documents">' + e.documents.toLocaleString() + "</td><td>" + state + '</td><td class="num">' + e.dead_letters + "</td>" +
      '<td><button data-action="backfill" data-entity="' + esc(e.name) + '">Backfill</button> <button data-action="rebuild" data-entity="' + esc(e.name) + '">Rebuild</button></td></tr>';
  }).join("");
  const emb = status.embedder, p = status.pipeline;
  const rows = [];
  if (emb) rows.push(["Model", esc(emb.model) + " (" + emb.dimensions + " dims)"], ["Provider", emb.healthy ? '<span class="pill ok">healthy</span>' : '<span class="pill bad">failing</span> ' + esc(emb.last_error)], ["Requests / inputs / tokens", emb.requests + " / " + emb.inputs + " / " + emb.tokens], ["Errors / retries", emb.errors + " / " + emb.retries]);
  rows.push(["Batches", p.batches], ["Upserts / deletes / truncates", p.upserts + " / " + p.deletes + " / " + p.truncates], ["Embeddings skipped (unchanged)", p.embeddings_skipped], ["Commit → searchable p50 / p99", p.latency_p50_ms + " / " + p.latency_p99_ms + " ms"]);
  $("embedder").tBodies[0].innerHTML = rows.map(r => "<tr><th>" + r[0] + "</th><td>" + r[1] + "</td></tr>").join("");
  const latest = $("drift-latest");
  if (latest && status.drift) {
    const found = Object.entries(status.drift);
    latest.textContent = found.length ? "Latest validation: " + found.map(([n, c]) => n + " " + (c ? c + " ids differ" : "in sync")).join(", ") : "";
  }
}

function renderJobs(jobs) {
  $("jobs-empty").style.display = jobs.length ? "none" : "block";
  $("jobs").tBodies[0].innerHTML = jobs.map(j => {
    const cls = j.status === "completed" ? "ok" : (j.status === "failed" || j.status === "cancelled") ? "bad" : "warn";
    const active = ["queued", "running", "paused"].includes(j.status);
    const actions = active ? (j.status === "paused" ? '<button data-job-action="resume" data-job="' + j.id + '">Resume</button>' : '<button data-job-action="pause" data-job="' + j.id + '">Pause</button>') + ' <button data-job-action="cancel" data-job="' + j.id + '">Cancel</button>'
      : (j.failed > 0 ? '<button data-job-action="retry-failed" data-job="' + j.id + '">Retry failed</button>' : "") + (j.kind === "rebuild" && j.status === "completed" && !j.rolled_back ? ' <button data-job-action="rollback" data-job="' + j.id + '">Roll back</button>' : "");
    return '<tr class="job" data-job="' + j.id + '" data-status="' + j.status + '"><td>' + j.id + "</td><td>" + esc(j.entity) + "</td><td>" + j.kind + '</td><td><span class="pill ' + cls + '">' + j.status + "</span></td>" +
      '<td><div class="bar"><div style="width:' + j.percent + '%"></div><span class="percent">' + j.percent.toFixed(0) + "% · " + j.processed.toLocaleString() + "/" + j.estimated_total.toLocaleString() + "</span></div></td>" +
      '<td class="num">' + (j.rate ? Math.round(j.rate).toLocaleString() + " rows/s" : "") + '</td><td class="num">' + eta(j.eta_seconds) + "</td><td>" + actions + "</td></tr>";
  }).join("");
}

async function loadDeadLetters() {
  try {
    const data = await api("GET", "/api/dead-letters");
    const letters = data.dead_letters;
    $("dead-summary").textContent = letters.length ? letters.length + " rows could not be indexed" : "none — every row is indexed";
    $("dead-retry").disabled = letters.length === 0;
    $("dead").tBodies[0].innerHTML = letters.slice(0, 50).map(l => "<tr><td>" + esc(l.entity) + "</td><td>" + esc(l.id) + "</td><td>" + esc(l.stage) + '</td><td class="error">' + esc(l.error) + "</td></tr>").join("");
  } catch (e) { $("dead-summary").textContent = e.message; }
}

async function streamEvents() {
  for (;;) {
    try {
      const headers = token ? { "Authorization": "Bearer " + token } : {};
      const response = await fetch("/api/events", { headers });
      if (response.status === 401) $("token-box").style.display = "flex";
      if (!response.ok || !response.body) throw new Error("events: HTTP " + response.status);
      $("live").textContent = "live"; $("live").className = "pill ok";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n");
          if (!data) continue;
          const update = JSON.parse(data);
          renderStatus(update.status); renderJobs(update.jobs);
          if (update.status.dead_letters !== streamEvents.lastDead) { streamEvents.lastDead = update.status.dead_letters; loadDeadLetters(); }
        }
      }
    } catch (e) { /* reconnect below */ }
    $("live").textContent = "reconnecting"; $("live").className = "pill warn";
    await new Promise(r => setTimeout(r, 2000));
  }
}

document.addEventListener("click", async (event) => {
  const target = event.target;
  if (!(target instanceof HTMLButtonElement)) return;
  try {
    if (target.dataset.action) {
      const entity = target.dataset.entity;
      const path = target.dataset.action === "rebuild" ? "/api/ai/bulk-sync/rebuild/" : "/api/ai/bulk-sync/index/";
      const job = await api("POST", path + encodeURIComponent(entity));
      toast("queued " + job.id + " (" + job.kind + " of " + entity + ")");
    } else if (target.dataset.jobAction) {
      const outcome = await api("POST", "/api/jobs/" + encodeURIComponent(target.dataset.job) + "/" + target.dataset.jobAction);
      toast(outcome.message);
    } else if (target.id === "dead-retry") {
      const outcome = await api("POST", "/api/dead-letters/retry");
      toast(outcome.message); loadDeadLetters();
    } else if (target.dataset.validate) {
      const report = await api("POST", "/api/ai/bulk-sync/validate/" + encodeURIComponent(target.dataset.validate));
      $("drift").insertAdjacentHTML("beforeend", "<p>" + esc(report.entity) + ": " + esc((report.status || "").replace("_", " ")) + " — " + report.checked + " rows checked, " + report.missing + " missing, " + report.orphaned + " orphaned, " + report.stale + " stale, " + (report.dead_lettered || 0) + " dead-lettered</p>");
    } else if (target.id === "token-save") {
      token = $("token").value.trim(); sessionStorage.setItem("tidemark.token", token); $("token-box").style.display = "none"; toast("token saved for this tab");
    }
  } catch (e) {
    if (target.dataset.validate) $("drift").insertAdjacentHTML("beforeend", '<p class="muted">' + esc(e.message) + "</p>");
    toast(e.message, true);
  }
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("search-q").value.trim(); if (!q) return;
  const params = new URLSearchParams({ entity: $("search-entity").value, q, k: $("search-k").value || "5" });
  try {
    const result = await api("GET", "/api/ai/search?" + params);
    $("hits").innerHTML = result.hits.length ? result.hits.map(h => '<div class="hit"><span class="score">' + h.score.toFixed(3) + '</span><span class="id">' + esc(h.id) + "</span><pre>" + esc(h.content) + "</pre></div>").join("")
      + '<p class="muted">' + result.hits.length + " hits in " + result.took_ms + " ms</p>" : '<p class="muted">No results.</p>';
  } catch (e) { $("hits").innerHTML = '<p class="error">' + esc(e.message) + "</p>"; }
});

api("GET", "/api/status").then(s => { renderStatus(s); }).catch(e => { $("agent-meta").textContent = e.message; });
loadDeadLetters();
streamEvents();
</script>
</body>
</html>
"""#
}
