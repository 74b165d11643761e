// The dashboard: reads /api/dashboard and draws every panel (the answers' panels with answers.js). Stored text reaches the page only through
// textContent and attribute setters, never as markup. The window, ecosystem and drill-down live in the
// query string, so a URL can be shared. It keeps a read token only: a token the server refuses (401) or
// finds able to upload (403) is forgotten at once.
"use strict";

const TOKEN_KEY = "batch-metrics-token";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22"];
const $ = (id) => document.getElementById(id);

class NeedToken extends Error {}
// Set by the summary's answer: the server's legacy mode lets a token that can upload read the dashboard.
let tokenCanWrite = false;

async function api(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const answer = await fetch(path, { headers });
  if (answer.status === 401 || answer.status === 403) {
    if (token) sessionStorage.removeItem(TOKEN_KEY);
    const why = answer.status === 403 ? await answer.text() : "That token was refused. Enter a read token.";
    askToken(token ? why : null);
    throw new NeedToken();
  }
  if (!answer.ok) throw new Error(`${path}: ${answer.status} ${await answer.text()}`);
  if (path.startsWith("/api/dashboard?")) tokenCanWrite = answer.headers.get("X-Token-Can-Write") === "true";
  return answer.json();
}

function askToken(why) {
  if (why) $("login-why").textContent = why;
  $("login").hidden = false;
  $("panels").hidden = true;
  $("token").focus();
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const percent = (rate) => (rate * 100).toFixed(1) + "%";
// A rate only where platform validations ran: a run or day that validated nothing has none.
const rateOf = (item) => (item.passed + item.failed ? percent(item.success_rate) : "—");
// "2026-12-01T01:00:00Z" -> "2026-12-01 01:00Z"; text that is not such a time is shown as it is.
const when = (stamp) => String(stamp || "").replace(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(\.\d+)?)?/, "$1 $2");

function state() {
  const query = new URLSearchParams(location.search);
  return {
    days: ["7", "30", "90"].includes(query.get("days")) ? query.get("days") : "30",
    ecosystem: query.get("ecosystem") || "",
    recipe: query.get("recipe") || "",
    run: /^[0-9]{1,18}$/.test(query.get("run") || "") ? query.get("run") : "",
  };
}

function navigate(changes) {
  const query = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    if (value) query.set(name, value); else query.delete(name);
  }
  history.pushState(null, "", "?" + query.toString());
  load();
}

function link(text, changes) {
  const anchor = el("a", text, { href: "#" });
  anchor.addEventListener("click", (event) => { event.preventDefault(); navigate(changes); });
  return anchor;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = String(cell);
    tr.append(td);
  }
  return tr;
}

function fill(tableId, rows, empty) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...rows);
  if (!rows.length) {
    const line = el("tr");
    line.append(el("td", empty, { colspan: $(tableId).tHead.rows[0].cells.length, class: "empty" }));
    body.append(line);
  }
}

function trend(item) {
  const delta = item.recent - item.earlier;
  const arrow = delta > 0 ? "▲" : delta < 0 ? "▼" : "=";
  return el("span", `${arrow} ${item.earlier} → ${item.recent}`,
    { class: delta > 0 ? "worse" : delta < 0 ? "better" : "trend", title: "earlier half → recent half of the window" });
}

// A line chart: one series per ecosystem over the window's days, with labels and a table behind it.
function lineChart(container, table, days, series, { max, label, unit }) {
  // Drawn at the container's own width, so labels keep their size on a phone.
  const width = Math.max(300, Math.round(container.clientWidth || 720));
  const height = width < 500 ? 180 : 240, left = 40, right = 12, top = 12, bottom = 28;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgEl("title", {}, label));
  const x = (index) => left + (days.length > 1 ? index * (width - left - right) / (days.length - 1) : 0);
  const y = (value) => top + (1 - value / max) * (height - top - bottom);
  for (const tick of [0, 0.5, 1]) {
    svg.append(svgEl("line", { x1: left, x2: width - right, y1: y(tick * max), y2: y(tick * max), class: "grid" }));
    svg.append(svgEl("text", { x: left - 6, y: y(tick * max) + 4, "text-anchor": "end" },
      unit === "%" ? `${tick * 100}%` : Math.round(tick * max)));
  }
  for (const index of [0, days.length - 1]) {
    svg.append(svgEl("text", { x: x(index), y: height - 8, "text-anchor": index ? "end" : "start" }, days[index]));
  }
  const dayIndex = new Map(days.map((day, index) => [day, index]));
  series.forEach((line, number) => {
    const color = COLORS[number % COLORS.length];
    const points = line.points.filter((point) => dayIndex.has(point.day));
    const path = points.map((point, i) => `${i ? "L" : "M"}${x(dayIndex.get(point.day)).toFixed(1)},${y(point.value).toFixed(1)}`);
    svg.append(svgEl("path", { d: path.join(""), stroke: color, class: "series" }));
    for (const point of points) {
      const dot = svgEl("circle", { cx: x(dayIndex.get(point.day)), cy: y(point.value), r: 2.5, fill: color });
      dot.append(svgEl("title", {}, `${line.name} ${point.day}: ${point.text}`));
      svg.append(dot);
    }
  });
  const legend = el("ul", null, { class: "legend" });
  series.forEach((line, number) => {
    const item = el("li", line.name);
    item.style.setProperty("--color", COLORS[number % COLORS.length]);
    legend.append(item);
  });
  container.replaceChildren(svg, legend);
  if (!series.length) container.replaceChildren(el("p", "No runs in this window.", { class: "empty" }));
  const head = el("tr");
  head.append(el("th", "day"), ...series.map((line) => el("th", line.name)));
  const rows = days.filter((day) => series.some((line) => line.byDay.has(day))).map((day) =>
    row([day, ...series.map((line) => line.byDay.has(day) ? line.byDay.get(day).text : "")]));
  table.replaceChildren(el("thead"), el("tbody"));
  table.tHead.append(head);
  table.tBodies[0].append(...rows);
}

function windowDays(generatedAt, count) {
  const end = new Date(generatedAt);
  const days = [];
  for (let back = count; back >= 0; back -= 1) {
    days.push(new Date(end.getTime() - back * 86400000).toISOString().slice(0, 10));
  }
  return days;
}

// One line per value of `key` (the ecosystem, or the platform): its points by day.
function seriesOf(daily, value, text, key = (point) => point.ecosystem) {
  const lines = new Map();
  for (const point of daily) {
    const name = key(point);
    if (!lines.has(name)) lines.set(name, []);
    lines.get(name).push({ day: point.day, value: value(point), text: text(point) });
  }
  return [...lines].map(([name, points]) =>
    ({ name, points, byDay: new Map(points.map((point) => [point.day, point])) }));
}

function drawEcosystems(summary) {
  fill("ecosystems-table", summary.ecosystems.map((item) => {
    const latest = item.latest_run;
    const status = el("span", item.stale ? "stale" : "ok", { class: item.stale ? "stale" : "fresh" });
    if (item.stale_after_seconds) {
      status.title = `no batch for longer than ${(item.stale_after_seconds / 3600).toFixed(1)} h`;
    }
    const at = link(when(latest.started_at), { run: String(latest.id), recipe: "" });
    at.className = "time";
    return row([link(item.ecosystem, { ecosystem: item.ecosystem }), at, rateOf(latest), latest.failed,
      latest.generation_failed, item.runs_since_green || item.last_green_at ? item.runs_since_green : "—", status]);
  }), "No batches stored yet.");
}

function drawTables(summary) {
  fill("platforms-table", summary.platforms.map((item) => {
    const bar = el("span", percent(item.success_rate), { class: "bar" });
    bar.style.setProperty("--rate", String(item.success_rate));
    return row([item.ecosystem, item.platform || "(none)", bar, item.passed, item.failed, item.minutes]);
  }), "No runs in this window.");
  fill("failing-table", summary.failing_recipes.map((item) =>
    row([link(item.name, { recipe: item.name, run: "" }), item.ecosystem, item.failures, trend(item)])), "No failures.");
  fill("categories-table", summary.error_categories.map((item) =>
    row([item.name || "(none)", item.ecosystem, item.failures, trend(item)])), "No failures.");
  fill("flaky-table", summary.flaky_recipes.map((item) =>
    row([link(item.recipe_name, { recipe: item.recipe_name, run: "" }), item.ecosystem, item.flips, item.platforms,
      el("span", when(item.last_flip_at), { class: "time" })])), "Nothing flaky.");
}

function drawCharts(summary) {
  const days = windowDays(summary.generated_at, summary.days);
  // For one ecosystem the lines are its platforms: the per-platform breakdown over time.
  const byPlatform = Boolean(summary.ecosystem);
  $("rate-title").textContent = byPlatform ? `Success rate per day on each platform: ${summary.ecosystem}`
    : "Success rate per day";
  const validated = (byPlatform ? summary.platform_days : summary.daily).filter((p) => p.passed + p.failed);
  lineChart($("rate-chart"), $("rate-table"), days,
    seriesOf(validated, (p) => p.success_rate,
      (p) => `${percent(p.success_rate)} (${p.failed} failed)`,
      byPlatform ? (p) => p.platform || "(none)" : undefined),
    { max: 1, label: `Success rate per ${byPlatform ? "platform" : "ecosystem"} and day`, unit: "%" });
  const minutes = (p) => p.macos_minutes + p.linux_minutes;
  const most = Math.max(1, ...summary.daily.map(minutes));
  lineChart($("minutes-chart"), $("minutes-table"), days,
    seriesOf(summary.daily, minutes, (p) => `${minutes(p).toFixed(1)} min (macOS ${p.macos_minutes}, Linux ${p.linux_minutes})`),
    { max: most, label: "Runner minutes per ecosystem and day", unit: "min" });
}

// A recipe's pass/fail strip: one row per ecosystem and platform, one cell per run, oldest on the left.
function drawRecipe(answer) {
  const strips = new Map();
  for (const item of answer.history) {
    const key = `${item.ecosystem} · ${item.platform || "(none)"}`;
    if (!strips.has(key)) strips.set(key, []);
    strips.get(key).push(item);
  }
  const body = [];
  for (const [key, items] of strips) {
    const cell = 8;
    const svg = svgEl("svg", { viewBox: `0 0 ${items.length * cell} 16`, class: "strip", role: "img",
      preserveAspectRatio: "none" });
    svg.style.maxWidth = `${items.length * cell}px`;
    svg.append(svgEl("title", {}, `${answer.recipe_name} on ${key}`));
    items.forEach((item, index) => {
      const box = svgEl("rect", { x: index * cell, y: 0, width: cell - 1, height: 16, class: item.result });
      const why = [item.error_category, item.error_subcategory].filter(Boolean).join(" / ");
      const stage = item.stage === "generation" ? " in generation" : "";
      box.append(svgEl("title", {}, `${when(item.started_at)}: ${item.result}${stage}${why ? " (" + why + ")" : ""}`));
      svg.append(box);
    });
    const counts = items.reduce((sum, item) => (sum[item.result] = (sum[item.result] || 0) + 1, sum), {});
    body.push(el("h3", key), svg,
      el("p", `${counts.passed || 0} passed, ${counts.failed || 0} failed, ${counts.skipped || 0} skipped`, { class: "note" }));
  }
  if (!body.length) body.push(el("p", "No results for this recipe in the window.", { class: "empty" }));
  return body;
}

// Who sent a run: the token's name, or the workflow an OIDC token came from; and a link to its CI run,
// only for an http(s) URL (the server keeps no other, and the page checks again).
function uploadedBy(answer) {
  const who = answer.uploader;
  const line = el("p", null, { class: "note", id: "run-uploader" });
  if (!who) {
    line.textContent = "Uploaded before uploaders were recorded.";
  } else if (who.kind === "oidc") {
    line.textContent = `Uploaded by ${who.repository} (${who.workflow || "workflow unknown"}, ${who.ref || "ref unknown"}, ` +
      `${(who.sha || "").slice(0, 12)}) with GitHub OIDC, let in by the rule “${who.name}”.`;
  } else {
    line.textContent = `Uploaded with the token “${who.name}”.`;
  }
  const url = answer.run_url || "";
  if (/^https?:\/\//i.test(url)) {
    line.append(" ", el("a", "CI run ↗", { href: url, rel: "noopener noreferrer", id: "run-link" }));
  }
  return line;
}

function scrolling(head, rows, attrs) {
  const table = el("table", null, attrs);
  table.append(el("thead"), el("tbody"));
  table.tHead.append(row(head));
  table.tBodies[0].append(...rows);
  const wrap = el("div", null, { class: "scroll" });
  wrap.append(table);
  return wrap;
}

// What the pipeline's own run summary said: generation apart from platform validation.
function drawSummary(summary, unlisted) {
  const parts = [];
  const taken = Object.entries(summary.ecosystems || {}).map(([name, count]) => `${count} ${name}`);
  if (summary.ecosystem) taken.push(summary.ecosystem);
  const funnel = ["generated", "merged", "excluded", "constrained"].filter((key) => key in summary)
    .map((key) => `${summary[key]} ${key}`).join(", ");
  parts.push(el("p", `Run summary ${summary.batch_id || ""} (${summary.source || "as sent"}): generation took ` +
    `${taken.join(", ") || "nothing named"}; ${funnel || "no generation counts"}.`, { class: "note" }));
  const jobs = Object.entries(summary.platforms || {});
  if (jobs.length) {
    parts.push(scrolling(["platform job", "tested", "passed", "failed"],
      jobs.map(([name, counts]) => row([name, counts.tested || 0, counts.passed || 0, counts.failed || 0]))));
  }
  if (unlisted.length) {
    const count = unlisted.reduce((sum, item) => sum + item.passed + item.failed + item.skipped, 0);
    parts.push(el("p", `${count} of these validations are named by no row (the files name only failures): ` +
      "they count in every total and rate, but have no recipe.", { class: "note" }));
  }
  return parts;
}

function drawRun(answer) {
  const failures = answer.failures.map((item) => {
    const why = [item.error_category, item.error_subcategory].filter(Boolean).join(" / ");
    const blocked = item.blocked_by && item.blocked_by.length ? `blocked by ${item.blocked_by.join(", ")}` : "";
    return row([link(item.recipe_name, { recipe: item.recipe_name, run: "" }), item.platform || "(none)",
      item.stage === "generation" ? "generation" : "validation", why, blocked, el("pre", item.error_message || "")]);
  });
  const summary = el("p", `${answer.ecosystem}, ${when(answer.started_at)}: ${rateOf(answer)}, ` +
    `${answer.passed} passed, ${answer.failed} failed, ${answer.skipped} skipped` +
    (answer.truncated ? ` (the first ${answer.failures.length} failures shown)` : ""));
  const body = [summary, uploadedBy(answer)];
  if (answer.ecosystems.length > 1) {
    body.push(scrolling(["ecosystem", "success rate", "passed", "failed", "skipped", "generation failures"],
      answer.ecosystems.map((item) => row([link(item.ecosystem, { ecosystem: item.ecosystem, run: "" }), rateOf(item),
        item.passed, item.failed, item.skipped, item.generation_failed]))));
  }
  if (answer.run_summary) body.push(...drawSummary(answer.run_summary, answer.unlisted));
  body.push(failures.length ? scrolling(["recipe", "platform", "stage", "category", "blocked", "message"], failures,
    { id: "run-failures" })
    : el("p", "No failures.", { class: "empty" }));
  return body;
}

async function drawDrill(current) {
  const panel = $("drill-panel");
  panel.hidden = !(current.recipe || current.run);
  if (panel.hidden) return;
  const close = link("close", { recipe: "", run: "" });
  close.className = "close";
  if (current.recipe) {
    const query = new URLSearchParams({ name: current.recipe, days: current.days });
    if (current.ecosystem) query.set("ecosystem", current.ecosystem);
    const answer = await api("/api/dashboard/recipe?" + query.toString());
    $("drill-title").textContent = `Recipe ${answer.recipe_name}`;
    $("drill-body").replaceChildren(...drawRecipe(answer));
  } else {
    const answer = await api(`/api/dashboard/runs/${current.run}`);
    const parts = drawRun(answer);
    const failures = parts.pop();  // what changed, where and why come before the list of failures
    const answers = await runAnswers(current.run);
    // Title and body change together: never a run's title over the previous drill-down's body.
    $("drill-title").textContent = `Run ${answer.id}: ${answer.batch_id}`;
    $("drill-body").replaceChildren(...parts, ...answers, el("h3", "Failures"), failures);
  }
  $("drill-title").append(" ", close);
}

async function load() {
  const current = state();
  $("days").value = current.days;
  const query = new URLSearchParams({ days: current.days });
  if (current.ecosystem) query.set("ecosystem", current.ecosystem);
  $("status").textContent = "Loading…";
  try {
    const summary = await api("/api/dashboard?" + query.toString());
    const picker = $("ecosystem");
    if (!current.ecosystem) {
      picker.replaceChildren(el("option", "all", { value: "" }),
        ...summary.ecosystems.map((item) => el("option", item.ecosystem, { value: item.ecosystem })));
    } else if (![...picker.options].some((option) => option.value === current.ecosystem)) {
      picker.append(el("option", current.ecosystem, { value: current.ecosystem }));
    }
    picker.value = current.ecosystem;
    $("login").hidden = true;
    $("panels").hidden = false;
    $("token-warning").hidden = !tokenCanWrite;
    drawEcosystems(summary);
    drawCharts(summary);
    drawTables(summary);
    await drawAnswers(current, summary);
    await drawDrill(current);
    if (current.recipe || current.run) $("drill-panel").scrollIntoView();
    $("status").textContent = "";
  } catch (error) {
    $("status").textContent = error instanceof NeedToken ? "" : String(error.message || error);
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  load();
});
$("days").addEventListener("change", () => navigate({ days: $("days").value }));
$("ecosystem").addEventListener("change", () => navigate({ ecosystem: $("ecosystem").value }));
window.addEventListener("popstate", load);
load();
