// The answers to a pipeline owner's questions: what changed since the last run, where it fails (recipe x
// platform), why (failure reasons), how slow and how costly (minutes against the weekly budget), how flaky
// (across runs and within a run, apart). Reads /api/dashboard/{changes,matrix,reasons,speed,flaky} and a run's
// /changes, /matrix, /reasons, and draws them with dashboard.js's helpers (el, row, fill, link, when, api),
// which this file only calls once dashboard.js has run. Stored text goes through textContent only.
"use strict";

const SHOWN_STILL = 5;
const seconds = (value) => (value >= 90 ? `${(value / 60).toFixed(1)} min` : `${value.toFixed(1)} s`);
const plural = (count, word, many) => `${count} ${count === 1 ? word : many || word + "s"}`;
const why = (entry) => [entry.error_category, entry.error_subcategory].filter(Boolean).join(" / ");
const OS_NAMES = { macos: "macOS", linux: "Linux" };

const small = (head, rows, className) => scrolling(head, rows, { class: className });

function counted(change) {
  const counts = change.counts;
  const line = el("p", null, { class: "counts" });
  const parts = [
    [plural(counts.new_failures, "new failure"), counts.new_failures ? "worse" : "trend"],
    [`${counts.fixed} fixed`, counts.fixed ? "better" : "trend"],
    [`${counts.still_failing} still failing`, "trend"],
    [plural(counts.new_recipes, "new recipe"), "trend"],
    [plural(counts.gone_recipes, "gone recipe"), "trend"],
  ];
  parts.forEach(([text, className], index) => {
    if (index) line.append(", ");
    line.append(el("span", text, { class: className }));
  });
  return line;
}

// One ecosystem's comparison: `full` on a run's page (every entry), else the first few of what still fails.
function changeBlock(change, full) {
  const block = el("div", null, { class: "changes", "data-ecosystem": change.ecosystem });
  const title = el("h3");
  title.append(link(change.ecosystem, { ecosystem: change.ecosystem }), " · ",
    link(when(change.started_at), { run: String(change.run_id), recipe: "" }));
  if (change.previous_run_id !== null) {
    title.append(" against ", link(when(change.previous_started_at || String(change.previous_run_id)),
      { run: String(change.previous_run_id), recipe: "" }));
  }
  block.append(title);
  if (change.previous_run_id === null) {
    block.append(el("p", "Its first run: nothing to compare with.", { class: "note" }));
    return block;
  }
  block.append(counted(change));
  const recipe = (entry) => link(entry.recipe_name, { recipe: entry.recipe_name, run: "" });
  if (change.new_failures.length) {
    block.append(small(["new failure", "platform", "why"], change.new_failures.map((entry) =>
      row([recipe(entry), entry.platform || "(none)", why(entry) + (entry.new_recipe ? " (new recipe)" : "")])),
      "new-failures"));
  }
  if (change.fixed.length) {
    block.append(small(["fixed", "platform", "had failed"], change.fixed.map((entry) =>
      row([recipe(entry), entry.platform || "(none)", plural(entry.failed_runs, "run")])), "fixed"));
  }
  const still = [...change.still_failing].sort((a, b) => b.failed_runs - a.failed_runs);
  const shown = full ? still : still.slice(0, SHOWN_STILL);
  if (shown.length) {
    block.append(small(["still failing", "platform", "for"], shown.map((entry) =>
      row([recipe(entry), entry.platform || "(none)", plural(entry.failed_runs, "run")])), "still-failing"));
  }
  const names = [["new", change.new_recipes, change.counts.new_recipes], ["gone", change.gone_recipes, change.counts.gone_recipes]]
    .filter(([, listed]) => listed.length)
    .map(([word, listed, count]) => `${word}: ${listed.join(", ")}${count > listed.length ? ` and ${count - listed.length} more` : ""}`);
  if (names.length) block.append(el("p", `Recipes ${names.join("; ")}.`, { class: "note recipes" }));
  return block;
}

function drawChanges(answer) {
  const blocks = answer.ecosystems.map((change) => changeBlock(change, false));
  $("changes-body").replaceChildren(...(blocks.length ? blocks
    : [el("p", "No run compared yet: each upload is compared with its ecosystem's previous one.", { class: "empty" })]));
}

function drawBudget(minutes) {
  fill("budget-table", minutes.systems.map((system) => {
    const used = system.budget ? system.minutes / system.budget : null;
    const share = el("span", used === null ? "no budget set" : percent(used),
      { class: used === null ? "note" : system.over ? "usage over" : "usage" });
    if (used !== null) share.style.setProperty("--rate", String(Math.min(used, 1)));
    const status = system.over ? el("strong", " over budget", { class: "over" }) : "";
    const cell = el("span");
    cell.append(share, status);
    return row([OS_NAMES[system.os] || system.os, system.minutes.toFixed(1), system.budget ?? "—", cell]);
  }), "No runner minutes.");
  $("budget-panel").classList.toggle("overrun", minutes.systems.some((system) => system.over));
  fill("budget-ecosystems-table", minutes.ecosystems.map((item) =>
    row([item.ecosystem, item.macos_minutes.toFixed(1), item.linux_minutes.toFixed(1)])), "No batch in 7 days.");
}

function matrixCell(counts) {
  if (!counts) return el("span", "—", { class: "cell none" });
  const runs = counts.failed + counts.passed + counts.skipped;
  const className = counts.failed ? "failed" : counts.passed ? "passed" : "skipped";
  return el("span", counts.failed ? `${counts.failed}/${runs} failed` : `${counts.passed}/${runs} passed`,
    { class: `cell ${className}` });
}

function drawMatrix(matrix) {
  const table = $("matrix-table");
  table.replaceChildren(el("thead"), el("tbody"));
  table.tHead.append(row(["recipe", "ecosystem", ...matrix.platforms]));
  table.tBodies[0].append(...matrix.recipes.map((entry) => {
    const cells = new Map(entry.cells.map((cell) => [cell.platform, cell]));
    return row([link(entry.recipe_name, { recipe: entry.recipe_name, run: "" }), entry.ecosystem,
      ...matrix.platforms.map((platform) => matrixCell(cells.get(platform)))]);
  }));
  if (!matrix.recipes.length) fill("matrix-table", [], "No failures in this window.");
  const items = matrix.platform_only.map((entry) => {
    const item = el("li");
    item.append(link(entry.recipe_name, { recipe: entry.recipe_name, run: "" }), ` (${entry.ecosystem}) fails only on `,
      el("strong", entry.failed_on.join(", ")), `; passes on ${entry.passed_on.join(", ")}: in ` +
      `${entry.platform_only_runs} of its ${plural(entry.failing_runs, "failing run")}.`);
    return item;
  });
  $("platform-only-list").replaceChildren(...(items.length ? items
    : [el("li", "None: every failing recipe failed wherever it ran.", { class: "empty" })]));
}

// An example failure: where, the message's head and tail, and the CI run that produced it (http(s) only).
function example(found) {
  const box = el("div", null, { class: "example" });
  box.append(el("span", `${found.recipe_name} on ${found.platform || "(none)"}`, { class: "where" }));
  box.append(el("pre", found.message_head));
  if (found.message_tail) box.append(el("pre", "…\n" + found.message_tail, { class: "tail" }));
  if (/^https?:\/\//i.test(found.run_url || "")) {
    box.append(el("a", "CI run ↗", { href: found.run_url, rel: "noopener noreferrer", class: "ci-run" }));
  }
  return box;
}

function drawReasons(answer) {
  fill("reasons-table", answer.reasons.map((group) => row([
    why(group) || "(none)", group.ecosystem, group.failures, group.runs,
    link(when(group.first_seen_at), { run: String(group.first_seen_run_id), recipe: "" }),
    link(when(group.last_seen_at), { run: String(group.last_seen_run_id), recipe: "" }), example(group.example),
  ])), "No failures in this window.");
}

function drawFlaky(flaky) {
  $("flaky-note").textContent = "Passed and failed by turns on one platform, run after run; the count starts " +
    `again once a result has held for ${flaky.reset_runs} runs.`;
  fill("retried-table", flaky.within_run.map((item) => row([
    link(item.recipe_name, { recipe: item.recipe_name, run: "" }), item.ecosystem, item.retried_passes,
    item.most_attempts, el("span", when(item.last_seen_at), { class: "time" }),
  ])), "Nothing passed after a retry.");
  fill("rates-table", flaky.rates.map((item) => row([
    item.ecosystem, item.validations, percent(item.failure_rate), percent(item.flake_rate),
  ])), "No validations in this window.");
}

function drawSpeed(speed, summary) {
  const byPlatform = Boolean(summary.ecosystem);
  $("duration-title").textContent = byPlatform
    ? `Mean duration per validation per day on each platform: ${summary.ecosystem}`
    : "Mean duration per validation per day";
  const most = Math.max(1, ...speed.durations.map((point) => point.mean_seconds));
  lineChart($("duration-chart"), $("duration-table"), windowDays(summary.generated_at, summary.days),
    seriesOf(speed.durations, (point) => point.mean_seconds,
      (point) => `${seconds(point.mean_seconds)} (${point.results} results)`, (point) => point.line || "(none)"),
    { max: most, label: "Mean seconds per platform validation and day", unit: "s" });
  const rows = [];
  for (const platform of speed.slowest) {
    for (const recipe of platform.recipes) {
      rows.push(row([platform.ecosystem, platform.platform || "(none)",
        link(recipe.recipe_name, { recipe: recipe.recipe_name, run: "" }), seconds(recipe.mean_seconds),
        seconds(recipe.longest_seconds), recipe.runs]));
    }
  }
  fill("slow-table", rows, "No durations in this window.");
}

// Every answer of the main page, fetched together.
async function drawAnswers(current, summary) {
  const query = new URLSearchParams({ days: current.days });
  if (current.ecosystem) query.set("ecosystem", current.ecosystem);
  const [changes, matrix, reasons, speed, flaky] = await Promise.all(["changes", "matrix", "reasons", "speed", "flaky"]
    .map((name) => api(`/api/dashboard/${name}?${query.toString()}`)));
  drawChanges(changes);
  drawBudget(speed.minutes);
  drawMatrix(matrix);
  drawReasons(reasons);
  drawFlaky(flaky);
  drawSpeed(speed, summary);
}

// A run's own answers, for its drill-down: what changed (every entry), its matrix, why it failed.
async function runAnswers(runId) {
  const [changes, matrix, reasons] = await Promise.all(["changes", "matrix", "reasons"]
    .map((name) => api(`/api/dashboard/runs/${runId}/${name}`)));
  const parts = [el("h3", "Since the previous run")];
  parts.push(...(changes.ecosystems.length ? changes.ecosystems.map((change) => changeBlock(change, true))
    : [el("p", "Not compared (stored before comparisons were made, or nothing validated).", { class: "empty" })]));
  if (matrix.recipes.length) {
    parts.push(el("h3", "Where it failed"), small(["recipe", "ecosystem", ...matrix.platforms],
      matrix.recipes.map((entry) => {
        const cells = new Map(entry.cells.map((cell) => [cell.platform, cell.result]));
        const name = link(entry.recipe_name, { recipe: entry.recipe_name, run: "" });
        return row([name, entry.ecosystem + (entry.platform_only ? " (some platforms only)" : ""),
          ...matrix.platforms.map((platform) => el("span", cells.get(platform) || "—",
            { class: `cell ${cells.get(platform) || "none"}` }))]);
      }), "run-matrix"));
  }
  if (reasons.reasons.length) {
    parts.push(el("h3", "Why it failed"), small(["category / subcategory", "ecosystem", "failures", "recipes", "example"],
      reasons.reasons.map((group) => row([why(group) || "(none)", group.ecosystem, group.failures, group.recipes,
        example(group.example)])), "run-reasons"));
  }
  return parts;
}
