// Hand-written SVG charts: a sparkline, horizontal bars and day columns.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

function title(el, text) {
  const t = svg("title", {});
  t.textContent = text;
  el.append(t);
  return el;
}

// A line through `values` (oldest first), scaled to its own maximum.
export function sparkline(values, width = 120, height = 24) {
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "spark" });
  if (values.length < 2) return root;
  const top = Math.max(...values) || 1;
  const step = width / (values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`)
    .join(" ");
  root.append(svg("polyline", { points, fill: "none", class: "spark-line" }));
  return root;
}

// One bar per item ({label, value, text}), longest first as given.
export function bars(items, width = 420) {
  const row = 22;
  const labelWidth = 150;
  const height = Math.max(row * items.length, row);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "bars" });
  const top = Math.max(...items.map((i) => i.value), 0) || 1;
  items.forEach((item, i) => {
    const y = i * row;
    const label = svg("text", { x: 0, y: y + 15, class: "bar-label" });
    label.textContent = item.label.length > 22 ? `${item.label.slice(0, 21)}…` : item.label;
    const span = ((width - labelWidth - 80) * item.value) / top;
    const bar = title(svg("rect", { x: labelWidth, y: y + 4, width: Math.max(span, 1), height: 14, class: "bar" }), `${item.label}: ${item.text}`);
    const value = svg("text", { x: labelWidth + span + 6, y: y + 15, class: "bar-value" });
    value.textContent = item.text;
    root.append(label, bar, value);
  });
  return root;
}

// One column per item ({label, value, text}) in the order given (days, oldest first).
export function columns(items, width = 420, height = 120) {
  const root = svg("svg", { width, height: height + 18, viewBox: `0 0 ${width} ${height + 18}`, class: "columns" });
  if (!items.length) return root;
  const top = Math.max(...items.map((i) => i.value), 0) || 1;
  const slot = Math.min(width / items.length, 48);
  items.forEach((item, i) => {
    const tall = (height * item.value) / top;
    root.append(title(svg("rect", { x: i * slot + 2, y: height - tall, width: Math.max(slot - 4, 1), height: Math.max(tall, 1), class: "bar" }), `${item.label}: ${item.text}`));
    if (items.length <= 14 || i % Math.ceil(items.length / 7) === 0) {
      const label = svg("text", { x: i * slot + 2, y: height + 14, class: "bar-label" });
      label.textContent = item.label.slice(5);
      root.append(label);
    }
  });
  return root;
}
