// Usage and cost: spend, tokens and cache savings (prompt-cache reads and response-cache hits
// apart) per tenant, key, model and day, from the ledger's totals (POST /api/v1/usage).
// A tenant's key sees its own tenant only.

import { getJson, postJson } from "./api.js";
import { bars, columns } from "./charts.js";
import { h, num, usd } from "./dom.js";

const GROUPS = [
  ["USAGE_GROUPING_TENANT", "tenant", "Tenant"],
  ["USAGE_GROUPING_KEY", "keyId", "API key"],
  ["USAGE_GROUPING_MODEL", "model", "Model"],
  ["USAGE_GROUPING_DAY", "day", "Day"],
];
const PERIODS = [
  ["1", "Today"],
  ["7", "Last 7 days"],
  ["30", "Last 30 days"],
  ["", "All time"],
];

function since(days) {
  if (!days) return undefined;
  const start = new Date();
  start.setUTCHours(0, 0, 0, 0);
  start.setUTCDate(start.getUTCDate() - (Number(days) - 1));
  return start.toISOString();
}

function tokenSum(t) {
  const u = t.usage || {};
  return num(u.inputTokens) + num(u.outputTokens) + num(u.cacheReadTokens) + num(u.cacheWriteTokens);
}

function table(label, field, totals) {
  return h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, ...[label, "Calls", "Failed", "Input", "Output", "Cache read", "Cost", "Saved: prompt", "Saved: response"].map((t) => h("th", { text: t })))),
    h("tbody", {}, ...totals.map((t) => {
      const u = t.usage || {};
      return h("tr", { "data-group": t[field] || "" },
        h("td", { text: t[field] || "–" }),
        h("td", { text: num(t.requests) }),
        h("td", { text: num(t.failed) }),
        h("td", { text: num(u.inputTokens) }),
        h("td", { text: num(u.outputTokens) }),
        h("td", { text: num(u.cacheReadTokens) }),
        h("td", { "data-testid": "cost", text: usd(t.costUsd) }),
        h("td", { "data-testid": "prompt-saved", text: usd(t.promptCacheSavingsUsd) }),
        h("td", { "data-testid": "response-saved", text: usd(t.responseCacheSavingsUsd) }));
    })));
}

function left(cap, remaining, spent) {
  if (cap === undefined) return h("td", { class: "muted", text: "uncapped" });
  const used = cap > 0 ? Math.min(num(spent) / cap, 1) : 1;
  return h("td", {},
    h("meter", { min: 0, max: 1, value: used, high: 0.8, optimum: 0 }),
    ` ${usd(remaining)} of ${usd(cap)} left`);
}

// Each budget the key may see: today's and this month's cap, spend and what is left.
function budgetTable(list) {
  if (!list.length) return [h("h2", { text: "Budgets" }), h("p", { class: "muted", text: "No spending caps apply." })];
  return [
    h("h2", { text: "Budgets" }),
    h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ...["Scope", "Name", "Spent today", "Left today", "Spent this month", "Left this month"].map((t) => h("th", { text: t })))),
      h("tbody", {}, ...list.map((b) => {
        const scope = b.scope === "BUDGET_SCOPE_KEY" ? "key" : "tenant";
        return h("tr", { "data-budget": `${scope}:${b.name}` },
          h("td", { text: scope + (b.wildcard ? " (*)" : "") }),
          h("td", { text: b.name + (scope === "key" && b.tenant ? ` (${b.tenant})` : "") }),
          h("td", { text: usd(b.spentTodayUsd) }),
          left(b.dailyUsd, b.remainingTodayUsd, b.spentTodayUsd),
          h("td", { text: usd(b.spentThisMonthUsd) }),
          left(b.monthlyUsd, b.remainingThisMonthUsd, b.spentThisMonthUsd));
      }))),
  ];
}

export function mountUsage(root) {
  const period = h("select", { "data-testid": "period" }, ...PERIODS.map(([v, t]) => h("option", { value: v, text: t })));
  period.value = "30";
  const refresh = h("button", { type: "button", "data-testid": "usage-refresh", text: "Refresh" });
  const summary = h("div", { class: "cards", "data-testid": "usage-summary" });
  const budgets = h("section", { class: "budgets", "data-testid": "budgets" });
  const sections = h("div", { class: "breakdowns" });
  const error = h("p", { class: "error", hidden: true, "data-testid": "usage-error" });
  root.append(h("div", { class: "row" }, h("label", { text: "Period" }), period, refresh), error, summary, budgets, sections);
  period.addEventListener("change", load);
  refresh.addEventListener("click", load);

  async function totals(groups) {
    const body = { groupBy: groups };
    const from = since(period.value);
    if (from) body.since = from;
    const reply = await postJson("/api/v1/usage", body);
    return reply.totals || [];
  }

  async function load() {
    error.hidden = true;
    try {
      const [[all], ...grouped] = await Promise.all([
        totals([]).then((t) => (t.length ? t : [{}])),
        ...GROUPS.map(([group]) => totals([group])),
      ]);
      const card = (label, value, testid) => h("div", { class: "card" }, h("span", { class: "muted", text: label }), h("strong", { "data-testid": testid, text: value }));
      summary.replaceChildren(
        card("Spend", usd(all.costUsd), "total-cost"),
        card("Calls", String(num(all.requests)), "total-calls"),
        card("Failed", String(num(all.failed)), "total-failed"),
        card("Tokens", String(tokenSum(all)), "total-tokens"),
        card("Prompt-cache savings", usd(all.promptCacheSavingsUsd), "total-prompt-savings"),
        card("Response-cache savings", usd(all.responseCacheSavingsUsd), "total-response-savings"),
      );
      budgets.replaceChildren(...budgetTable((await getJson("/api/v1/budgets")).budgets || []));
      sections.replaceChildren(...GROUPS.map(([group, field, label], i) => {
        const rows = grouped[i];
        const items = rows.map((t) => ({ label: t[field] || "–", value: num(t.costUsd), text: usd(t.costUsd) }));
        const chart = group === "USAGE_GROUPING_DAY" ? columns(items) : bars([...items].sort((a, b) => b.value - a.value).slice(0, 12));
        return h("section", { class: "breakdown", "data-testid": `by-${field}` }, h("h2", { text: `By ${label.toLowerCase()}` }), chart, table(label, field, rows));
      }));
    } catch (err) {
      error.textContent = `${err.reason || "error"}: ${err.message}`;
      error.hidden = false;
    }
  }

  return { root, show: load, hide() {} };
}
