// Prompt templates: every template with its latest version and A/B weights; a click opens
// its versions, each with its weight, its share of calls and the ledger's statistics of its
// calls (GET /api/v1/templates, /api/v1/templates/{name}, /api/v1/templates/{name}/stats).
// A tenant's key sees its own tenant's statistics only.

import { getJson } from "./api.js";
import { h, num, short, usd } from "./dom.js";

function msText(value) {
  return value ? `${num(value).toFixed(0)} ms` : "–";
}

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "–";
}

function weightsText(weights) {
  if (!weights || !weights.length) return "latest";
  return weights.map((w) => `v${w.version}: ${num(w.weight)}`).join(", ");
}

// Each version's share of calls: its weight over the sum; without weights the latest gets all.
function shares(versions, weights) {
  const out = new Map();
  if (!weights || !weights.length) {
    out.set(Math.max(...versions), 1);
    return out;
  }
  const total = weights.reduce((sum, w) => sum + num(w.weight), 0);
  for (const w of weights) out.set(w.version, total > 0 ? num(w.weight) / total : 0);
  return out;
}

function content(t) {
  const vars = (t.variables || []).map((v) => v.name + (v.required ? "" : "?")).join(", ");
  return h("div", { class: "template-body", "data-testid": "template-content" },
    h("p", { class: "muted", text: `v${t.version} · ${t.description || "no description"} · variables: ${vars || "none"}` }),
    t.system ? h("pre", { class: "prompt" }, h("strong", { text: "system: " }), t.system) : null,
    ...(t.messages || []).map((m) => h("pre", { class: "prompt" }, h("strong", { text: `${short(m.role, "ROLE_")}: ` }), m.content || "")));
}

export function mountTemplates(root) {
  const list = h("tbody", { "data-testid": "templates" });
  const state = h("p", { class: "muted", "data-testid": "templates-state", text: "loading…" });
  const detail = h("section", { class: "detail", hidden: true, "data-testid": "template-detail" });
  root.append(
    h("h2", { text: "Templates" }),
    state,
    h("table", { class: "grid calls" },
      h("thead", {}, h("tr", {}, ...["Name", "Latest", "Description", "Weights", "Updated"].map((t) => h("th", { text: t })))),
      list),
    detail,
  );
  let opened = "";

  async function load() {
    try {
      const reply = await getJson("/api/v1/templates");
      const items = reply.templates || [];
      state.textContent = items.length ? `${items.length} template${items.length > 1 ? "s" : ""}` : "No templates yet.";
      list.replaceChildren(...items.map((t) => h("tr", { class: "call", "data-template": t.name, onclick: () => open(t.name) },
        h("td", { class: "mono", text: t.name }),
        h("td", { text: `v${t.latestVersion}` }),
        h("td", { text: t.description || "" }),
        h("td", { text: weightsText(t.weights) }),
        h("td", { text: when(t.updatedAt) }))));
      if (opened) await open(opened);
    } catch (err) {
      state.textContent = `${err.reason || "error"}: ${err.message}`;
    }
  }

  async function open(name, version) {
    opened = name;
    detail.hidden = false;
    detail.replaceChildren(h("p", { class: "muted", text: "loading…" }));
    try {
      const path = `/api/v1/templates/${encodeURIComponent(name)}`;
      const [got, stats] = await Promise.all([
        getJson(version ? `${path}?version=${version}` : path),
        getJson(`${path}/stats`),
      ]);
      const versions = got.versions || [];
      const share = shares(versions, got.weights);
      const byVersion = new Map((stats.versions || []).map((s) => [s.version, s]));
      const rows = [...versions].reverse().map((v) => {
        const s = byVersion.get(v) || {};
        const weight = (got.weights || []).find((w) => w.version === v);
        return h("tr", { class: "call", "data-version": v, onclick: () => open(name, v) },
          h("td", { text: `v${v}` }),
          h("td", { "data-testid": "weight", text: weight ? String(num(weight.weight)) : "–" }),
          h("td", { "data-testid": "share", text: `${((share.get(v) || 0) * 100).toFixed(0)} %` }),
          h("td", { "data-testid": "version-calls", text: String(num(s.calls)) }),
          h("td", { "data-testid": "version-errors", text: String(num(s.errors)) }),
          h("td", { text: String(num(s.inputTokens)) }),
          h("td", { text: String(num(s.outputTokens)) }),
          h("td", { "data-testid": "version-cost", text: usd(s.costUsd) }),
          h("td", { text: `${msText(s.latencyP50Ms)} / ${msText(s.latencyMeanMs)}` }),
          h("td", { text: `${msText(s.ttftP50Ms)} / ${msText(s.ttftMeanMs)}` }));
      });
      detail.replaceChildren(
        h("h3", { "data-testid": "template-name", text: name }),
        h("table", { class: "grid calls" },
          h("thead", {}, h("tr", {}, ...["Version", "Weight", "Share", "Calls", "Errors", "Input", "Output", "Cost", "Latency p50 / mean", "TTFT p50 / mean"].map((t) => h("th", { text: t })))),
          h("tbody", { "data-testid": "versions" }, ...rows)),
        content(got.template || {}),
      );
    } catch (err) {
      detail.replaceChildren(h("p", { class: "error", text: `${err.reason || "error"}: ${err.message}` }));
    }
  }

  return { root, show: load, hide() {} };
}
