// The console's entry: tabs, the key form, and each view's module.

import { getKey, setKey } from "./api.js";
import { mountBatches } from "./batches.js";
import { mountMesh } from "./mesh.js";
import { mountPlayground } from "./playground.js";
import { mountTemplates } from "./templates.js";
import { mountUsage } from "./usage.js";

const views = {
  playground: mountPlayground(document.getElementById("view-playground")),
  mesh: mountMesh(document.getElementById("view-mesh")),
  usage: mountUsage(document.getElementById("view-usage")),
  templates: mountTemplates(document.getElementById("view-templates")),
  batches: mountBatches(document.getElementById("view-batches")),
};
let current = null;

function show(name) {
  if (!views[name]) name = "playground";
  if (current && current !== name) views[current].hide();
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  for (const [key, view] of Object.entries(views)) view.root.hidden = key !== name;
  current = name;
  views[name].show();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function keyState() {
  document.getElementById("key-state").textContent = getKey() ? "key set" : "no key";
}

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => show(tab.dataset.view));
}
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("key-input");
  setKey(input.value.trim());
  input.value = "";
  keyState();
  if (current) {
    views[current].hide();
    views[current].show();
  }
});
document.getElementById("key-forget").addEventListener("click", () => {
  setKey("");
  keyState();
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
keyState();
show(location.hash.slice(1));
