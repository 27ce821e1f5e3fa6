// Live mesh: every target's breaker, load, error rate and latency, and the latest calls,
// from the gateway's /api/v1/mesh/stream (one snapshot a second while the view is open).

import { getJson, stream } from "./api.js";
import { sparkline } from "./charts.js";
import { attemptRow, h, ms, num, seconds, short, tokens, usd } from "./dom.js";

const HISTORY = 40;

export function mountMesh(root) {
  const state = h("p", { class: "muted", "data-testid": "mesh-state", text: "not connected" });
  const targets = h("tbody", { "data-testid": "targets" });
  const calls = h("tbody", { "data-testid": "calls" });
  const detail = h("aside", { class: "detail", hidden: true, "data-testid": "call-detail" });
  const history = new Map();
  let controller = null;
  let retry = null;

  root.append(
    h("h2", { text: "Targets" }),
    state,
    h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ...["Target", "Breaker", "In flight", "Queued", "Error rate", "Latency (p50)", "Latency trend"].map((t) => h("th", { text: t })))),
      targets),
    h("h2", { text: "Recent calls" }),
    h("div", { class: "split" },
      h("table", { class: "grid calls" },
        h("thead", {}, h("tr", {}, ...["Started", "Request", "Tenant", "Model", "Outcome", "Tokens", "Cost", "Duration"].map((t) => h("th", { text: t })))),
        calls),
      detail),
  );

  function render(snapshot) {
    state.textContent = `live · ${new Date(snapshot.snapshotTime).toLocaleTimeString()}`;
    targets.replaceChildren(...(snapshot.targets || []).map((t) => {
      const breaker = short(t.breakerState, "BREAKER_STATE_") || "closed";
      const series = history.get(t.name) || [];
      series.push((seconds(t.latency) || 0) * 1000);
      if (series.length > HISTORY) series.shift();
      history.set(t.name, series);
      const wait = breaker === "open" && t.timeToHalfOpen ? ` (${Math.ceil(seconds(t.timeToHalfOpen))} s)` : "";
      return h("tr", { "data-target": t.name },
        h("td", { text: t.name }),
        h("td", {}, h("span", { class: `badge ${breaker}`, "data-testid": "breaker", text: breaker + wait })),
        h("td", { text: num(t.inFlight) }),
        h("td", { text: num(t.queued) }),
        h("td", { text: t.recentAttempts ? `${(num(t.errorRate) * 100).toFixed(0)} % of ${t.recentAttempts}` : "–" }),
        h("td", { text: ms(t.latency) }),
        h("td", {}, sparkline(series)));
    }));
    calls.replaceChildren(...(snapshot.recentCalls || []).map((c) => {
      const state = short(c.state, "CALL_STATE_");
      return h("tr", { class: `call ${state}`, "data-request-id": c.requestId, onclick: () => open(c.requestId) },
        h("td", { text: new Date(c.startTime).toLocaleTimeString() }),
        h("td", { class: "mono", text: c.requestId.slice(0, 12) }),
        h("td", { "data-testid": "call-tenant", text: c.tenant }),
        h("td", { text: c.provider ? `${c.provider}/${c.model}` : c.route }),
        h("td", { text: state + (c.errorReason ? ` (${short(c.errorReason, "ERROR_REASON_")})` : "") }),
        h("td", { text: tokens(c.usage) }),
        h("td", { text: usd(c.costUsd) }),
        h("td", { text: ms(c.duration) }));
    }));
  }

  async function open(requestId) {
    detail.hidden = false;
    detail.replaceChildren(h("p", { class: "muted", text: "loading…" }));
    try {
      const reply = await getJson(`/api/v1/calls?request_id=${encodeURIComponent(requestId)}`);
      const c = (reply.calls || [])[0];
      if (!c) {
        detail.replaceChildren(h("p", { text: "This call is not in the ledger (or not yours)." }));
        return;
      }
      detail.replaceChildren(
        h("h3", { text: "Call" }),
        h("dl", {},
          h("dt", { text: "Request id" }), h("dd", { class: "mono", "data-testid": "detail-request-id", text: c.requestId }),
          h("dt", { text: "Tenant / key" }), h("dd", { text: `${c.tenant} / ${c.keyId || "–"}` }),
          h("dt", { text: "Asked for" }), h("dd", { text: c.route }),
          h("dt", { text: "Outcome" }), h("dd", { text: short(c.state, "CALL_STATE_") }),
          h("dt", { text: "TTFT / duration" }), h("dd", { text: `${ms(c.timeToFirstToken)} / ${ms(c.duration)}` }),
          h("dt", { text: "Cost / saved" }), h("dd", { text: `${usd(c.costUsd)} / ${usd(c.cacheSavingsUsd)}${c.cacheHit ? " (response cache)" : ""}` }),
          h("dt", { text: "Trace id" }), h("dd", { class: "mono", "data-testid": "detail-trace-id", text: c.traceId || "– (no trace)" })),
        h("h3", { text: "Attempt trail" }),
        h("ol", { class: "trail", "data-testid": "detail-trail" }, ...(c.attempts || []).map(attemptRow)),
      );
    } catch (err) {
      detail.replaceChildren(h("p", { class: "error", text: err.message }));
    }
  }

  async function watch() {
    const mine = new AbortController();
    controller = mine;
    state.textContent = "connecting…";
    try {
      await stream("/api/v1/mesh/stream", { interval: "1s", recentCalls: 20 }, render, mine.signal);
      state.textContent = "the stream ended; reconnecting…";
    } catch (err) {
      if (mine.signal.aborted) return;
      if (err.status === 401 || err.status === 403) {
        // retrying cannot help: wait for a key (entering one restarts the view)
        state.textContent = `${err.reason}: ${err.message}. Enter an API key above.`;
        controller = null;
        return;
      }
      state.textContent = `${err.reason || "error"}: ${err.message}; retrying…`;
    }
    if (controller === mine) retry = setTimeout(watch, 2000);
  }

  return {
    root,
    show() {
      if (!controller) watch();
    },
    hide() {
      clearTimeout(retry);
      if (controller) controller.abort();
      controller = null;
    },
  };
}
