// A small element builder and the formats every view shares.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// protobuf JSON: a Duration is "1.25s", an int64 a string, enums their full names.
export function seconds(duration) {
  return duration ? parseFloat(duration) : null;
}

export function ms(duration) {
  const s = seconds(duration);
  return s === null ? "–" : `${(s * 1000).toFixed(s < 1 ? 1 : 0)} ms`;
}

export function num(value) {
  return Number(value || 0);
}

export function usd(value) {
  const v = num(value);
  return `$${v < 0.01 && v > 0 ? v.toFixed(6) : v.toFixed(4)}`;
}

export function short(enumName, prefix) {
  if (!enumName) return "";
  const name = enumName.startsWith(prefix) ? enumName.slice(prefix.length) : enumName;
  return name.toLowerCase().replaceAll("_", "-");
}

export function tokens(usage) {
  const u = usage || {};
  return `${num(u.inputTokens)} in / ${num(u.outputTokens)} out`;
}

export function attemptRow(a) {
  const outcome = short(a.outcome, "ATTEMPT_OUTCOME_") || "unknown";
  const reason = short(a.errorReason, "ERROR_REASON_");
  const flags = [a.retry && "retry", a.hedged && "hedge"].filter(Boolean).join(", ");
  return h(
    "li",
    { class: `attempt ${outcome}` },
    h("span", { class: "target", text: `${a.provider}/${a.model}` }),
    h("span", { class: "outcome", text: outcome }),
    reason && h("span", { class: "reason", text: reason }),
    flags && h("span", { class: "muted", text: flags }),
    h("span", { class: "muted", text: ms(a.latency) }),
    a.detail && h("span", { class: "muted", text: a.detail }),
  );
}
