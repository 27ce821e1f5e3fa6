// Batches: the caller's batch jobs, newest first, with their progress (refreshed every two
// seconds while the view is open); a click opens a batch's dead letters, each with its last
// error and attempt trail (GET /api/v1/batches, /api/v1/batches/{id}/dead-letters).

import { getJson } from "./api.js";
import { h, num, short } from "./dom.js";

const REFRESH_MS = 2000;

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "–";
}

// Items with a final outcome (succeeded, failed, dead or cancelled) over all items.
function progress(counts) {
  const c = counts || {};
  const total = num(c.total);
  const done = num(c.completed) + num(c.failed) + num(c.dead) + num(c.cancelled);
  return { total, done };
}

function countsText(counts) {
  const c = counts || {};
  return ["completed", "failed", "dead", "cancelled", "pending"]
    .filter((k) => num(c[k]))
    .map((k) => `${num(c[k])} ${k}`)
    .join(" · ") || "no items";
}

function errorText(error) {
  const e = error || {};
  const reason = short(e.reason, "ERROR_REASON_");
  return reason ? `${reason}: ${e.message || ""}` : e.message || "–";
}

export function mountBatches(root) {
  const state = h("p", { class: "muted", "data-testid": "batches-state", text: "loading…" });
  const list = h("tbody", { "data-testid": "batches" });
  const detail = h("section", { class: "detail", hidden: true, "data-testid": "batch-detail" });
  root.append(
    h("h2", { text: "Batches" }),
    state,
    h("table", { class: "grid calls" },
      h("thead", {}, h("tr", {}, ...["Batch", "State", "Mode", "Tenant", "Created", "Progress", "Items"].map((t) => h("th", { text: t })))),
      list),
    detail,
  );
  let timer = null;
  let opened = "";

  async function load() {
    try {
      const reply = await getJson("/api/v1/batches?page_size=100");
      const items = reply.batches || [];
      state.textContent = items.length ? `${items.length} batch${items.length > 1 ? "es" : ""}` : "No batches yet.";
      list.replaceChildren(...items.map((b) => {
        const { total, done } = progress(b.counts);
        const status = short(b.state, "BATCH_STATE_");
        return h("tr", { class: `call ${status}`, "data-batch": b.id, onclick: () => open(b.id) },
          h("td", { class: "mono", text: b.id }),
          h("td", { "data-testid": "batch-state", text: status + (b.statusDetail ? ` (${b.statusDetail})` : "") }),
          h("td", { text: short(b.mode, "BATCH_MODE_") }),
          h("td", { text: b.tenant || "–" }),
          h("td", { text: when(b.createdAt) }),
          h("td", {},
            h("progress", { max: total || 1, value: done }),
            h("span", { "data-testid": "batch-progress", text: ` ${done} / ${total}` })),
          h("td", { "data-testid": "batch-counts", text: countsText(b.counts) }));
      }));
    } catch (err) {
      state.textContent = `${err.reason || "error"}: ${err.message}`;
    }
  }

  async function open(id) {
    opened = id;
    detail.hidden = false;
    detail.replaceChildren(h("p", { class: "muted", text: "loading…" }));
    try {
      const letters = [];
      let token = "";
      do {  // every page: a batch's dead letters are few unless something is badly wrong
        const query = token ? `?page_size=1000&page_token=${encodeURIComponent(token)}` : "?page_size=1000";
        const page = await getJson(`/api/v1/batches/${encodeURIComponent(id)}/dead-letters${query}`);
        letters.push(...(page.deadLetters || []));
        token = page.nextPageToken || "";
      } while (token && opened === id);
      if (opened !== id) return;
      detail.replaceChildren(
        h("h3", { "data-testid": "batch-id", text: `Dead letters of ${id}` }),
        letters.length
          ? h("table", { class: "grid" },
            h("thead", {}, h("tr", {}, ...["Item", "Last error", "Attempts", "Given up"].map((t) => h("th", { text: t })))),
            h("tbody", { "data-testid": "dead-letters" }, ...letters.map((d) => h("tr", { "data-custom-id": (d.item || {}).customId || "" },
              h("td", { class: "mono", text: (d.item || {}).customId || "–" }),
              h("td", { "data-testid": "dead-error", text: errorText(d.error) }),
              h("td", {}, h("ol", { class: "trail" }, ...(d.trail || []).map((a) => h("li", { text: `${errorText(a.error)} · ${when(a.at)}` })))),
              h("td", { text: when(d.deadAt) })))))
          : h("p", { class: "muted", "data-testid": "no-dead-letters", text: "No dead letters: every item has its outcome or is still to run." }),
      );
    } catch (err) {
      detail.replaceChildren(h("p", { class: "error", text: `${err.reason || "error"}: ${err.message}` }));
    }
  }

  return {
    root,
    show() {
      load();
      clearInterval(timer);
      timer = setInterval(load, REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
      timer = null;
    },
  };
}
