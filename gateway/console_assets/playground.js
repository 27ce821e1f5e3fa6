// Playground: one model's reply, or a council's branches side by side, streamed as it comes.

import { getJson, stream } from "./api.js";
import { attemptRow, h, short, tokens, usd } from "./dom.js";

// One streamed reply: its text, live stats and attempt trail.
function replyPanel(title, testid) {
  const text = h("pre", { class: "reply-text", "data-testid": `${testid}-text` });
  const status = h("span", { class: "status", "data-testid": `${testid}-status`, text: "waiting" });
  const ttft = h("span", { "data-testid": `${testid}-ttft`, text: "TTFT –" });
  const used = h("span", { "data-testid": `${testid}-tokens`, text: "tokens –" });
  const cost = h("span", { "data-testid": `${testid}-cost`, text: "cost –" });
  const served = h("span", { class: "muted" });
  const requestId = h("span", { class: "muted mono", "data-testid": `${testid}-request-id` });
  const trail = h("ol", { class: "trail", "data-testid": `${testid}-trail` });
  const root = h(
    "article",
    { class: "reply", "data-testid": testid },
    h("header", {}, h("strong", { text: title }), " ", served, " ", status),
    text,
    h("p", { class: "stats" }, ttft, used, cost, requestId),
    trail,
  );
  const started = performance.now();
  let first = true;
  return {
    root,
    event(ev) {
      if (ev.start) {
        served.textContent = `${ev.start.provider}/${ev.start.model}${ev.start.cacheHit ? " (cached)" : ""}`;
        status.textContent = "streaming";
        requestId.textContent = ev.start.requestId || "";
      } else if (ev.textDelta) {
        if (first) {
          first = false;
          ttft.textContent = `TTFT ${(performance.now() - started).toFixed(0)} ms`;
        }
        text.textContent += ev.textDelta.text || "";
      } else if (ev.usage) {
        used.textContent = `tokens ${tokens(ev.usage)}`;
      } else if (ev.switch) {
        const s = ev.switch;
        trail.append(
          h("li", { class: "attempt switch" }, `switched ${s.fromProvider}/${s.fromModel} → ${s.toProvider}/${s.toModel}`, h("span", { class: "reason", text: short(s.reason, "ERROR_REASON_") })),
        );
      } else if (ev.finish) {
        const f = ev.finish;
        used.textContent = `tokens ${tokens(f.usage)}`;
        cost.textContent = `cost ${usd(f.costUsd)}${f.cacheHit ? " (cache hit)" : ""}`;
        trail.replaceChildren(...(f.attempts || []).map(attemptRow));
        status.textContent = `finished: ${short(f.reason, "FINISH_REASON_")}`;
        root.classList.add("done");
      }
    },
    fail(message) {
      status.textContent = message;
      root.classList.add("failed");
    },
  };
}

export function mountPlayground(root) {
  const model = h("select", { id: "pg-model", "data-testid": "model" });
  const council = h("input", { type: "checkbox", id: "pg-council", "data-testid": "council-toggle" });
  const members = h("fieldset", { class: "members", hidden: true, "data-testid": "members" }, h("legend", { text: "Council members" }));
  const judge = h("select", { id: "pg-judge", "data-testid": "judge" });
  const fallbacks = h("input", { id: "pg-fallbacks", placeholder: "e.g. anthropic/claude-haiku-4-5", "data-testid": "fallbacks" });
  const system = h("textarea", { id: "pg-system", rows: 2, placeholder: "System prompt (optional)" });
  const prompt = h("textarea", { id: "pg-prompt", rows: 4, placeholder: "Your message", "data-testid": "prompt" });
  const send = h("button", { type: "submit", "data-testid": "send", text: "Send" });
  const cancel = h("button", { type: "button", disabled: true, "data-testid": "cancel", text: "Cancel" });
  const output = h("div", { class: "outputs", "data-testid": "outputs" });
  const error = h("p", { class: "error", hidden: true, "data-testid": "pg-error" });
  let running = null;
  let loaded = false;

  council.addEventListener("change", () => {
    members.hidden = !council.checked;
  });
  cancel.addEventListener("click", () => running && running.abort());

  const form = h(
    "form",
    { class: "playground" },
    h("div", { class: "row" }, h("label", { for: "pg-model", text: "Model" }), model, h("label", {}, council, " council")),
    h("div", { class: "row" }, h("label", { for: "pg-fallbacks", text: "Fallbacks" }), fallbacks),
    members,
    system,
    prompt,
    h("div", { class: "row" }, send, cancel),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  root.append(form, error, output);

  function messages() {
    const out = [];
    if (system.value.trim()) out.push({ role: "ROLE_SYSTEM", content: system.value });
    out.push({ role: "ROLE_USER", content: prompt.value });
    return out;
  }

  async function run() {
    error.hidden = true;
    output.replaceChildren();
    const controller = new AbortController();
    running = controller;
    send.disabled = true;
    cancel.disabled = false;
    const panels = new Map();
    try {
      if (!council.checked) {
        const panel = replyPanel(model.value, "reply");
        output.append(panel.root);
        panels.set("", panel);
        const input = { model: model.value, messages: messages() };
        const others = fallbacks.value.split(",").map((m) => m.trim()).filter(Boolean);
        if (others.length) input.fallbacks = others;
        await stream("/api/v1/chat/stream", { input }, (ev) => panel.event(ev), controller.signal);
      } else {
        // a branch's name allows letters, digits, '_', '.' and '-': "openai/gpt-4o" -> "openai-gpt-4o"
        const chosen = [...members.querySelectorAll("input:checked")].map((i) => ({ model: i.value, name: i.value.replace(/[^A-Za-z0-9_.-]/g, "-") }));
        const models = new Map(chosen.map((m) => [m.name, m.model]));
        const body = { input: { messages: messages() }, members: chosen };
        if (judge.value) body.judge = { model: judge.value };
        output.classList.add("council");
        const branch = (name) => {
          if (!panels.has(name)) {
            const panel = replyPanel(name === "judge" ? `judge: ${judge.value}` : models.get(name) || name, name === "judge" ? "judge" : "branch");
            output.append(panel.root);
            panels.set(name, panel);
          }
          return panels.get(name);
        };
        for (const m of chosen) branch(m.name);
        if (judge.value) branch("judge");
        await stream("/api/v1/council/stream", body, (item) => {
          const panel = branch(item.branch);
          if (item.error) panel.fail(`failed: ${short(item.error.reason, "ERROR_REASON_")} ${item.error.message || ""}`);
          else if (item.event) panel.event(item.event);
        }, controller.signal);
      }
    } catch (err) {
      const message = controller.signal.aborted ? "cancelled" : `${err.reason || "error"}: ${err.message}`;
      for (const panel of panels.values()) if (!panel.root.classList.contains("done")) panel.fail(message);
      if (!controller.signal.aborted) {
        error.textContent = message;
        error.hidden = false;
      }
    } finally {
      output.classList.toggle("council", council.checked);
      running = null;
      send.disabled = false;
      cancel.disabled = true;
    }
  }

  async function load() {
    try {
      const reply = await getJson("/api/v1/models");
      const names = (reply.models || []).map((m) => m.name);
      model.replaceChildren(...names.map((n) => h("option", { value: n, text: n })));
      judge.replaceChildren(h("option", { value: "", text: "no judge" }), ...names.map((n) => h("option", { value: n, text: n })));
      members.replaceChildren(
        h("legend", { text: "Council members" }),
        ...names.map((n) => h("label", { class: "member" }, h("input", { type: "checkbox", value: n }), ` ${n}`)),
        h("label", {}, "Judge ", judge),
      );
      loaded = true;
    } catch (err) {
      error.textContent = `cannot list models: ${err.message}`;
      error.hidden = false;
    }
  }

  return {
    root,
    show() {
      if (!loaded) load();
    },
    hide() {},
  };
}

