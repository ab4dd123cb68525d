// skucast live dashboard: plain JS, charts drawn as inline SVG, data from the worker's own API.
// Refreshes every ?refresh=N seconds (default 3). Everything from the API goes in via textContent.
"use strict";

const REFRESH_S = Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 3);
const TOP_N = 6;
const RECENT_N = 8;
const CARD_DAYS = 28;
const DRILL_DAYS = 56;
const DRILL_HOURS = 48;
const SVG_NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

const state = { selected: null, refreshes: 0, openBySku: new Map() };

// ---- small helpers -------------------------------------------------------------------------

// /health answers 503 with its usual body when a dependency is down; anything else failing is an error.
async function api(path) {
  const res = await fetch(path, { cache: "no-store" });
  const body = await res.json();
  if (!res.ok && !(res.status === 503 && path === "/health")) throw new Error(body.error || `${res.status} ${path}`);
  return { status: res.status, body };
}

function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const dayNum = (iso) => Math.round(Date.parse(iso.slice(0, 10) + "T00:00:00Z") / DAY_MS);
const dayIso = (n) => new Date(n * DAY_MS).toISOString().slice(0, 10);
const shortDay = (n) => new Date(n * DAY_MS).toUTCString().slice(5, 11); // "09 Dec"
const midIndex = (qs) => qs.reduce((best, q, i) => (Math.abs(q - 0.5) < Math.abs(qs[best] - 0.5) ? i : best), 0);

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// ---- charts --------------------------------------------------------------------------------

// Daily actual units (line) against the forecast: p50 (dashed) and the p10–p90 band.
function dayChart(hist, forecast, { width, height, compact }) {
  if (!(hist && hist.buckets.length) && !forecast) return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "day-chart" });
  const pad = { l: compact ? 30 : 42, r: 10, t: 8, b: compact ? 16 : 22 };
  const days = hist ? hist.buckets.map((b) => dayNum(b.start)) : [];
  const start = forecast ? dayNum(forecast.start_date) : null;
  const mid = forecast ? midIndex(forecast.quantiles) : 0;
  const hiQ = forecast ? forecast.quantiles.length - 1 : 0;
  const fcDays = forecast ? forecast.values.map((_, i) => start + i) : [];
  const x0 = Math.min(...days, ...fcDays);
  const x1 = Math.max(...days, ...fcDays, x0 + 1);
  const actual = hist ? hist.buckets.map((b) => b.units) : [];
  const top = niceMax(Math.max(1, ...actual, ...(forecast ? forecast.values.map((v) => v[hiQ]) : [])) * 1.05);
  const X = (d) => pad.l + ((d - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - (v / top) * (height - pad.t - pad.b);

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "day-chart" });
  for (let i = 0; i <= (compact ? 2 : 4); i++) {
    const v = (top * i) / (compact ? 2 : 4);
    root.append(svg("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v) }));
    root.append(svg("text", { class: "axis-label", x: pad.l - 4, y: Y(v) + 3, "text-anchor": "end" }, fmt(v)));
  }
  const ticks = compact ? [x0, start ?? x1, x1] : [x0, x0 + Math.round((x1 - x0) / 3), start ?? x1, x1];
  for (const d of [...new Set(ticks)]) {
    const anchor = d === x0 ? "start" : d === x1 ? "end" : "middle";
    root.append(svg("text", { class: "axis-label", x: X(d), y: height - 4, "text-anchor": anchor }, shortDay(d)));
  }
  if (forecast) {
    const upper = fcDays.map((d, i) => `${X(d)},${Y(forecast.values[i][hiQ])}`);
    const lower = fcDays.map((d, i) => `${X(d)},${Y(forecast.values[i][0])}`).reverse();
    root.append(svg("polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
    root.append(svg("polyline", { class: "p50", points: fcDays.map((d, i) => `${X(d)},${Y(forecast.values[i][mid])}`).join(" ") }));
    root.append(svg("line", { class: "today-line", x1: X(start), x2: X(start), y1: pad.t, y2: height - pad.b }));
    if (!compact) root.append(svg("text", { class: "axis-label", x: X(start) + 4, y: pad.t + 8 }, "today"));
  }
  if (days.length) {
    root.append(svg("polyline", { class: "actual", points: days.map((d, i) => `${X(d)},${Y(actual[i])}`).join(" ") }));
    const lastDay = days[days.length - 1];
    const surging = forecast && lastDay === start && actual[actual.length - 1] > forecast.values[0][hiQ];
    root.append(svg("circle", { class: surging ? "surge-dot" : "actual-dot", cx: X(lastDay), cy: Y(actual[actual.length - 1]), r: 3.5 }));
  }
  return root;
}

function hourChart(hist, { width, height }) {
  const pad = { l: 42, r: 10, t: 8, b: 22 };
  const units = hist.buckets.map((b) => b.units);
  const top = niceMax(Math.max(1, ...units) * 1.05);
  const slot = (width - pad.l - pad.r) / Math.max(1, units.length);
  const Y = (v) => height - pad.b - (v / top) * (height - pad.t - pad.b);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "hour-chart" });
  for (let i = 0; i <= 2; i++) {
    const v = (top * i) / 2;
    root.append(svg("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v) }));
    root.append(svg("text", { class: "axis-label", x: pad.l - 4, y: Y(v) + 3, "text-anchor": "end" }, fmt(v)));
  }
  hist.buckets.forEach((b, i) => {
    const x = pad.l + i * slot;
    if (b.units > 0) root.append(svg("rect", { class: "bar", x: x + 1, y: Y(b.units), width: Math.max(1, slot - 2), height: Y(0) - Y(b.units) }));
    if (i % 12 === 0) root.append(svg("text", { class: "axis-label", x, y: height - 4 }, b.start.slice(5).replace("T", " ")));
  });
  return root;
}

// ---- panels --------------------------------------------------------------------------------

function renderHealth(health) {
  const set = (id, ok) => document.getElementById(id).setAttribute("data-ok", String(ok));
  set("kafka-pill", health.kafka);
  set("redis-pill", health.redis);
  document.getElementById("model-pill").textContent = `model ${health.model}`;
}

function moverCard(mover, hist) {
  const fc = mover.forecast;
  const mid = fc ? midIndex(fc.quantiles) : 0;
  const today = fc ? fc.values[0] : null;
  const lastBucket = hist && hist.buckets.length ? hist.buckets[hist.buckets.length - 1] : null;
  const alert = state.openBySku.get(mover.sku);
  const card = el("article", { class: "card" + (alert ? " surging" : "") + (mover.sku === state.selected ? " selected" : ""), "data-sku": mover.sku });
  card.append(el("div", { class: "card-head" },
    el("span", { class: "sku", text: mover.sku }),
    alert ? el("span", { class: `badge ${alert.severity}`, text: alert.severity }) : null,
    fc && fc.fallback ? el("span", { class: "badge fallback", text: "cold start" }) : null,
    el("span", { class: "week", text: `7-day p50 ${fmt(mover.expected_units)}` })));
  const chart = dayChart(hist, fc, { width: 280, height: 104, compact: true });
  chart.setAttribute("data-testid", "mover-chart");
  chart.setAttribute("data-sku", mover.sku);
  if (lastBucket) chart.setAttribute("data-last-actual", String(lastBucket.units));
  if (today) chart.setAttribute("data-p50-today", String(today[mid]));
  card.append(chart);
  if (today) {
    card.append(el("div", { class: "today" }, "today ",
      el("b", { class: "today-actual", text: lastBucket ? fmt(lastBucket.units) : "–" }), " · p50 ",
      el("b", { class: "today-p50", text: fmt(today[mid]) }), " · p90 ",
      el("b", { class: "today-p90", text: fmt(today[today.length - 1]) })));
  }
  card.addEventListener("click", () => select(mover.sku));
  return card;
}

function renderMovers(movers, histories) {
  const box = document.getElementById("movers");
  if (!movers.length) {
    box.replaceChildren(el("p", { class: "empty", text: "Waiting for the first forecasts…" }));
    return;
  }
  box.replaceChildren(...movers.map((m, i) => moverCard(m, histories[i])));
}

function renderRecent(events) {
  const items = events.map((a) => el("li", { class: "recent-event", "data-sku": a.sku },
    el("span", { class: `state ${a.state}`, text: a.state }),
    el("span", { class: "sku", text: a.sku }),
    el("span", { class: "what", text: `${fmt(a.observed)} vs p90 ${fmt(a.upper)}` }),
    el("span", { class: "when", text: `${a.day.slice(5)} · ${a.made_at.slice(11, 19)}` })));
  document.getElementById("recent").replaceChildren(...(items.length ? items : [el("li", { class: "empty", text: "No alert events yet." })]));
}

function renderAlerts(alerts) {
  const count = document.getElementById("alert-count");
  count.textContent = String(alerts.length);
  count.setAttribute("data-n", String(alerts.length));
  const rows = alerts.map((a) => {
    const row = el("tr", { class: "alert-row", "data-alert-id": a.alert_id, "data-sku": a.sku },
      el("td", {}, el("span", { class: `badge ${a.severity}`, text: a.severity })),
      el("td", {}, el("span", { class: "sku", text: a.sku }),
        a.festival ? el("span", { class: "badge festival", text: a.festival }) : null),
      el("td", { class: "num observed", text: fmt(a.observed) }),
      el("td", { class: "num expected", text: fmt(a.expected) }),
      el("td", { class: "num upper", text: fmt(a.upper) }),
      el("td", { class: "num score", text: fmt(a.score) }),
      el("td", { class: "day", text: a.day }));
    row.addEventListener("click", () => select(a.sku));
    return row;
  });
  const body = document.getElementById("alert-rows");
  body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty-row" }, el("td", { colSpan: 7, text: "No open alerts." }))]));
}

async function renderDrill(sku) {
  document.getElementById("drill-sku").textContent = sku || "–";
  const error = document.getElementById("drill-error");
  if (!sku) return;
  const enc = encodeURIComponent(sku);
  const [fc, days, hours] = await Promise.all([
    fetch(`/skus/${enc}/forecast`, { cache: "no-store" }),
    fetch(`/skus/${enc}/history?grain=day&n=${DRILL_DAYS}`, { cache: "no-store" }),
    fetch(`/skus/${enc}/history?grain=hour&n=${DRILL_HOURS}`, { cache: "no-store" }),
  ]);
  const body = document.querySelector("#drill .drill-body");
  body.hidden = days.status === 404;
  if (days.status === 404) {
    error.hidden = false;
    error.textContent = `Unknown SKU ${sku}: no orders counted for it.`;
    for (const id of ["drill-day-chart", "drill-hour-chart", "drill-facts"]) document.getElementById(id).replaceChildren();
    document.querySelector("#drill-forecast tbody").replaceChildren();
    return;
  }
  error.hidden = true;
  const forecast = fc.ok ? await fc.json() : null;
  const dayHist = await days.json();
  const hourHist = await hours.json();
  const chart = dayChart(dayHist, forecast, { width: 760, height: 220, compact: false });
  chart.setAttribute("data-testid", "drill-chart");
  chart.setAttribute("data-sku", sku);
  document.getElementById("drill-day-chart").replaceChildren(chart);
  document.getElementById("drill-hour-chart").replaceChildren(hourChart(hourHist, { width: 760, height: 110 }));

  const alert = state.openBySku.get(sku);
  const facts = [
    ["last event", new Date(dayHist.watermark).toISOString().replace("T", " ").slice(0, 16) + " UTC"],
    ["first seen", dayHist.first_seen.slice(0, 10)],
    ["today so far", fmt(dayHist.buckets[dayHist.buckets.length - 1].units) + " units"],
    ["model", forecast ? forecast.model_version : "no forecast yet"],
    ["history", forecast ? `${forecast.history_days} days` : "–"],
    ["fallback", forecast && forecast.fallback ? forecast.fallback : "none"],
    ["alert", alert ? `${alert.severity}, score ${fmt(alert.score)}` + (alert.festival ? ` (${alert.festival})` : "") : "none"],
  ];
  document.getElementById("drill-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const rows = forecast ? forecast.values.map((v, i) => el("tr", {},
    el("td", { text: dayIso(dayNum(forecast.start_date) + i) }),
    el("td", { class: "num", text: fmt(v[0]) }),
    el("td", { class: "num", text: fmt(v[midIndex(forecast.quantiles)]) }),
    el("td", { class: "num", text: fmt(v[v.length - 1]) }))) : [];
  document.querySelector("#drill-forecast tbody").replaceChildren(...rows);
}

// ---- refresh loop --------------------------------------------------------------------------

function select(sku) {
  state.selected = sku;
  history.replaceState(null, "", `#sku=${encodeURIComponent(sku)}`);
  document.querySelectorAll(".card").forEach((c) => c.classList.toggle("selected", c.dataset.sku === sku));
  renderDrill(sku).catch(showError);
}

function showError(err) {
  const updated = document.getElementById("updated");
  updated.classList.add("stale");
  updated.textContent = `offline: ${err.message}`;
}

async function refresh() {
  const [health, movers, alerts, recent] = await Promise.all([
    api("/health"), api(`/skus?top=${TOP_N}`), api("/alerts?state=open"), api(`/alerts?state=all&n=${RECENT_N}`)]);
  renderHealth(health.body);
  state.openBySku = new Map(alerts.body.alerts.map((a) => [a.sku, a]));
  const skus = movers.body.skus;
  const histories = await Promise.all(skus.map((m) =>
    api(`/skus/${encodeURIComponent(m.sku)}/history?grain=day&n=${CARD_DAYS}`).then((r) => r.body).catch(() => null)));
  renderMovers(skus, histories);
  renderAlerts(alerts.body.alerts);
  renderRecent(recent.body.alerts);
  if (!state.selected) state.selected = alerts.body.alerts[0]?.sku ?? skus[0]?.sku ?? null;
  await renderDrill(state.selected);
  state.refreshes += 1;
  document.body.setAttribute("data-refreshes", String(state.refreshes));
  const updated = document.getElementById("updated");
  updated.classList.remove("stale");
  updated.textContent = `updated ${new Date().toLocaleTimeString()} · every ${REFRESH_S}s`;
}

async function loop() {
  try {
    await refresh();
  } catch (err) {
    showError(err);
  }
  setTimeout(loop, REFRESH_S * 1000);
}

const fromHash = new URLSearchParams(location.hash.slice(1)).get("sku");
if (fromHash) state.selected = fromHash;
document.getElementById("drill-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const sku = document.getElementById("drill-input").value.trim();
  if (sku) select(sku);
});
loop();
