// gpulock status page. It renders /gpulock/status as pushed by
// /gpulock/events (or polled when events fail). Every text from the server
// goes in with textContent: client ids and commands are never HTML.
"use strict";

const POLL_MS = 2000;
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function dur(s) {
  if (s === undefined || s === null || !isFinite(s)) return "–";
  s = Math.max(0, s);
  if (s < 10) return s.toFixed(1) + "s";
  s = Math.round(s);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60), r = s % 60;
  if (m < 60) return m + "m " + String(r).padStart(2, "0") + "s";
  return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

function clock(t) {
  const d = new Date(t);
  return isNaN(d.getTime()) ? "–" : d.toLocaleTimeString();
}

function gib(b) { return (b / 1073741824).toFixed(1) + " GiB"; }

function setRows(table, rows, emptyId) {
  const tbody = table.tBodies[0];
  tbody.replaceChildren(...rows);
  document.getElementById(emptyId).hidden = rows.length > 0;
  table.hidden = rows.length === 0;
}

function row(cells, attrs) {
  const tr = el("tr");
  for (const c of cells) {
    const td = el("td", c.cls, c.text);
    tr.appendChild(td);
  }
  if (attrs) for (const k in attrs) tr.dataset[k] = attrs[k];
  return tr;
}

function holderText(h) {
  const who = h.service || "unknown";
  let what = who;
  if (h.command && !h.command.startsWith("gpulock shim")) what += " (" + h.command + ")";
  what += ", pid " + (h.child_pid || h.pid);
  return what;
}

function chart(samples, span, bucket) {
  const W = 300, H = 60;
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const end = Date.now(), start = end - span * 1000;
  const x = (t) => ((t - start) / (span * 1000)) * W;
  const bw = Math.max(1, (bucket / span) * W);
  let maxLine = 1;
  for (const s of samples) maxLine = Math.max(maxLine, s.line);
  const base = document.createElementNS(SVGNS, "line");
  base.setAttribute("class", "axis");
  base.setAttribute("x1", 0); base.setAttribute("x2", W);
  base.setAttribute("y1", H - 0.5); base.setAttribute("y2", H - 0.5);
  svg.appendChild(base);
  const pts = [];
  for (const s of samples) {
    const t = new Date(s.start).getTime();
    const r = document.createElementNS(SVGNS, "rect");
    r.setAttribute("class", "busy");
    r.setAttribute("x", x(t).toFixed(1));
    r.setAttribute("width", bw.toFixed(1));
    r.setAttribute("y", (H - s.busy * H).toFixed(1));
    r.setAttribute("height", (s.busy * H).toFixed(1));
    svg.appendChild(r);
    pts.push((x(t) + bw / 2).toFixed(1) + "," + (H - (s.line / maxLine) * (H - 4)).toFixed(1));
  }
  if (pts.length > 0) {
    const pl = document.createElementNS(SVGNS, "polyline");
    pl.setAttribute("class", "queue");
    pl.setAttribute("points", pts.join(" "));
    svg.appendChild(pl);
  }
  const title = document.createElementNS(SVGNS, "title");
  title.textContent = "busy share (bars) and line length (line) over the last " + dur(span);
  svg.appendChild(title);
  return { svg, maxLine };
}

function gpuCard(g, st, sh) {
  const own = g.name === st.name;
  const card = el("div", "card");
  card.dataset.gpu = g.name;
  card.appendChild(el("h3", null, (sh.host || "") + " · GPU " + (g.gpu === null ? g.name : g.gpu)));
  const state = el("div", "state");
  state.dataset.waiters = (g.waiters || []).length;
  if (!g.held) {
    state.appendChild(el("span", "state-free", "free"));
  } else {
    state.appendChild(el("span", "state-busy", "busy"));
    if (g.holder) {
      state.dataset.since = g.holder.since;
      state.dataset.pid = g.holder.pid;
      state.dataset.service = g.holder.service;
      state.appendChild(document.createTextNode(" by " + holderText(g.holder) +
        " since " + clock(g.holder.since) + " (" + dur(g.holder.held_seconds) + ")"));
    } else {
      state.appendChild(document.createTextNode(" by a process that left no description (flock?)"));
    }
  }
  card.appendChild(state);
  if (own) {
    const running = el("div");
    running.id = "running";
    for (const j of sh.running || []) {
      const d = el("div", "job");
      d.dataset.client = j.client;
      d.appendChild(el("span", null, "running: "));
      d.appendChild(el("strong", "client", j.client));
      d.appendChild(document.createTextNode(" · " + j.route + " · waited " + dur(j.waited_seconds) +
        " · ran " + dur(j.ran_seconds)));
      if (j.progress && j.progress.max > 0) {
        const m = el("div", "meter");
        const bar = el("div");
        bar.style.width = Math.min(100, (100 * j.progress.value) / j.progress.max).toFixed(0) + "%";
        m.appendChild(bar);
        d.appendChild(m);
        d.appendChild(el("span", "muted small", "step " + j.progress.value + " of " + j.progress.max));
      }
      running.appendChild(d);
    }
    card.appendChild(running);
    if (sh.vram && sh.vram.total > 0) {
      const v = el("div", "small");
      v.appendChild(el("span", null, "VRAM " + gib(sh.vram.used) + " of " + gib(sh.vram.total)));
      const m = el("div", "meter");
      const bar = el("div");
      bar.style.width = ((100 * sh.vram.used) / sh.vram.total).toFixed(0) + "%";
      m.appendChild(bar);
      v.appendChild(m);
      card.appendChild(v);
    }
  }
  if (g.waiters && g.waiters.length > 0) {
    card.appendChild(el("div", "small", g.waiters.length + " waiting (lock files):"));
    const ol = el("ol", "waiters small");
    for (const w of g.waiters) {
      ol.appendChild(el("li", null, (w.service || "unknown") + ", pid " + w.pid + ", waited " + dur(w.waited_seconds)));
    }
    card.appendChild(ol);
  }
  const samples = (sh.history || {})[g.name] || [];
  const span = sh.history_seconds || 3600, bucket = sh.bucket_seconds || 60;
  const c = chart(samples, span, bucket);
  card.appendChild(c.svg);
  let busy = 0;
  for (const s of samples) busy += s.busy;
  const share = samples.length ? Math.round((100 * busy) / samples.length) : 0;
  card.appendChild(el("div", "muted small", "last " + dur(span) + ": busy " + share + "% of the time seen, line up to " +
    (samples.length ? c.maxLine : 0)));
  return card;
}

// gatewayCard renders one registered GPU of a gateway's cluster.
function gatewayCard(g) {
  const card = el("div", "card");
  card.dataset.gpu = g.id;
  card.appendChild(el("h3", null, g.node + " · GPU " + g.gpu + " · " + g.profile));
  const state = el("div", "state");
  state.dataset.free = g.free;
  const st = g.state || (g.free ? "free" : g.reserved ? "reserved" : "busy");
  state.dataset.state = st;
  state.appendChild(el("span", st === "free" ? "state-free" : "state-busy", st));
  if (g.job) state.appendChild(document.createTextNode(" · " + g.job + (g.job_client ? " for " + g.job_client : "")));
  else if (g.holder) state.appendChild(document.createTextNode(" · " + g.holder.service));
  state.appendChild(document.createTextNode(" · lease " + dur(g.lease_seconds)));
  card.appendChild(state);
  const u = el("div", "small", g.url);
  u.dataset.url = g.url;
  card.appendChild(u);
  return card;
}

// renderGateway renders a gateway's status: the same page, a second data model.
function renderGateway(gw) {
  document.getElementById("host").textContent = "· gateway · " + gw.profile;
  document.getElementById("banners").replaceChildren();
  document.getElementById("gpus").replaceChildren(...(gw.gpus || []).map(gatewayCard));
  const counts = Object.entries(gw.waiting_by_profile || {}).map(([p, n]) => p + " " + n).join(", ");
  document.getElementById("line-service").textContent = "(the cluster's: " + gw.line_length + " waiting" +
    (counts ? "; " + counts : "") + ")";
  document.getElementById("line-empty").textContent = "Nobody waits in the cluster's line.";
  document.getElementById("estimate-note").hidden = true;
  const footer = document.querySelector("footer");
  if (!footer.dataset.gateway) {
    const a = el("a", null, "/gpulock/status");
    a.href = "status";
    footer.replaceChildren("Read-only view of the gateway's ", a, " (the cluster's state in Redis).");
    footer.dataset.gateway = "1";
  }
  const lineRows = (gw.line || []).map((j, i) => row([
    { text: j.position || i + 1 }, { text: j.profile }, { text: j.client ? j.id + " · " + j.client : j.id, cls: "client" },
    { text: j.state + (j.priority && j.priority !== "normal" ? " · " + j.priority : "") },
    { text: dur(j.waited_seconds) }, { text: "–" },
  ], { client: j.id }));
  setRows(document.getElementById("line"), lineRows, "line-empty");
  const recentRows = (gw.recent || []).slice(0, 10).map((f) => row([
    { text: clock(f.ended) }, { text: f.service }, { text: f.client, cls: "client" }, { text: f.route },
    { text: dur(f.waited_seconds) }, { text: dur(f.ran_seconds) }, { text: f.result },
  ], { client: f.client, result: f.result }));
  setRows(document.getElementById("recent"), recentRows, "recent-empty");
}

function render(st) {
  if (st.gateway) { renderGateway(st.gateway); return; }
  const sh = st.shim || {};
  document.getElementById("host").textContent = "· " + (sh.host || "") + " · " + (sh.service || "");
  const banners = [];
  for (const b of sh.banners || []) {
    const d = el("div", "banner", b.text);
    d.dataset.kind = b.kind;
    banners.push(d);
  }
  document.getElementById("banners").replaceChildren(...banners);

  const gpus = sh.gpus && sh.gpus.length ? sh.gpus : [st];
  document.getElementById("gpus").replaceChildren(...gpus.map((g) => gpuCard(g.name === st.name ? st : g, st, sh)));

  document.getElementById("line-service").textContent = "(" + (sh.service || "") + " on GPU " + st.gpu + ")";
  const lineRows = (sh.queue || []).map((q) => row([
    { text: q.position }, { text: sh.service }, { text: q.request_id, cls: "client" }, { text: q.route },
    { text: dur(q.waited_seconds) },
    { text: q.estimated_start_seconds === undefined || q.estimated_start_seconds === null ? "no estimate yet" : "in ~" + dur(q.estimated_start_seconds) },
  ], { client: q.request_id }));
  setRows(document.getElementById("line"), lineRows, "line-empty");
  document.getElementById("mean-of").textContent = sh.mean_of > 0 ?
    "the last " + sh.mean_of + " finished jobs (now " + dur(sh.mean_job_seconds) + ")" : "the last finished jobs (none yet)";

  const recentRows = (sh.recent || []).slice(0, 10).map((f) => row([
    { text: clock(f.ended) }, { text: f.service }, { text: f.client, cls: "client" }, { text: f.route },
    { text: dur(f.waited_seconds) }, { text: dur(f.ran_seconds) }, { text: f.result },
  ], { client: f.client, result: f.result }));
  setRows(document.getElementById("recent"), recentRows, "recent-empty");
}

function setConn(text, cls) {
  const c = document.getElementById("conn");
  c.textContent = text;
  c.className = "conn " + cls;
}

let polling = null;

function poll() {
  fetch("status", { cache: "no-store" })
    .then((r) => { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
    .then((st) => { render(st); setConn("live (polling), updated " + clock(Date.now()), "live"); })
    .catch((e) => setConn("cannot reach the shim (" + e.message + "); retrying", "down"));
}

function startPolling() {
  if (polling !== null) return;
  poll();
  polling = setInterval(poll, POLL_MS);
}

function start() {
  if (typeof EventSource === "undefined") { startPolling(); return; }
  const es = new EventSource("events");
  es.addEventListener("status", (ev) => {
    render(JSON.parse(ev.data));
    setConn("live, updated " + clock(Date.now()), "live");
  });
  es.addEventListener("status_error", (ev) => {
    setConn("the shim cannot read the status: " + JSON.parse(ev.data).error, "down");
  });
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) startPolling();
    else setConn("reconnecting…", "down");
  });
}

document.addEventListener("DOMContentLoaded", start);
