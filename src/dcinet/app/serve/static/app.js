// The search page: builds the form from /api/health, posts to /api/search, renders the results.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search-form");

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function kind() {
  return form.querySelector("input[name=kind]:checked").value;
}

function showKind() {
  for (const box of form.querySelectorAll(".query")) box.hidden = box.dataset.kind !== kind();
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function preview(input, target) {
  const file = input.files[0];
  if (target.src) URL.revokeObjectURL(target.src);
  target.hidden = !file;
  if (file) target.src = URL.createObjectURL(file);
}

async function loadHealth() {
  try {
    const response = await fetch("/api/health");
    const health = await response.json();
    const counts = Object.entries(health.counts).map(([m, n]) => `${n} ${m}`).join(", ");
    $("status").textContent = `${health.kind} index of ${health.feature} features: ${counts}; ` +
      `${health.classes} classes; uploads up to ${health.max_upload_mb} MB.`;
    for (const target of health.targets) $("target").append(el("option", { value: target }, target));
    for (const name of health.class_names) $("class-names").append(el("option", { value: name }));
    for (const radio of form.querySelectorAll("input[name=kind]")) {
      radio.disabled = !health.query_modalities.includes(radio.value);
    }
  } catch (err) {
    $("status").textContent = "the server did not answer /api/health";
  }
}

function card(hit) {
  const li = el("li", { class: "result", "data-modality": hit.modality });
  const head = el("div", { class: "head" });
  head.append(el("span", { class: "rank" }, `#${hit.rank}`), el("span", { class: "score" }, hit.score.toFixed(4)));
  li.append(head);
  const what = hit.class_name === null ? "an unlabelled item" : hit.class_name;
  if (hit.modality === "image" && hit.thumbnail) {
    li.append(el("img", { src: hit.thumbnail, alt: what, loading: "lazy" }));
  } else if (hit.modality === "audio" && hit.thumbnail) {
    li.append(el("img", { src: hit.thumbnail, alt: `spectrogram of ${what}`, loading: "lazy" }));
    if (!/\.(png|jpe?g)$/i.test(hit.path || "")) li.append(el("audio", { src: hit.media, controls: "", preload: "none" }));
  } else if (hit.text !== null) {
    li.append(el("p", { class: "snippet" }, hit.text));
  }
  if (hit.class_name !== null) li.append(el("span", { class: "cls" }, hit.class_name.replaceAll("_", " ")));
  else li.append(el("span", { class: "cls unlabelled" }, "no class"));
  if (hit.path) li.append(el("span", { class: "path", title: hit.path }, hit.path));
  li.append(el("span", { class: "badge" }, hit.modality));
  return li;
}

async function search(event) {
  event.preventDefault();
  showError("");
  const data = new FormData();
  const k = kind();
  if (k === "text") data.append("text", $("query-text").value);
  else {
    const file = $(`query-${k}`).files[0];
    if (!file) return showError(`choose an ${k} file first`);
    data.append(k, file, file.name);
  }
  data.append("modality", $("target").value);
  data.append("k", $("k").value);
  const className = $("class-name").value.trim();
  if (className) data.append("class", className);
  $("search-button").disabled = true;
  $("summary").textContent = "searching…";
  try {
    const response = await fetch("/api/search", { method: "POST", body: data });
    const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) {
      $("summary").textContent = "";
      return showError(body.error || `the server answered ${response.status}`);
    }
    $("results").replaceChildren(...body.results.map(card));
    $("summary").textContent = `${body.results.length} results for the ${body.query.modality} query ` +
      `(${body.query.target === "all" ? "all modalities" : body.query.target}` +
      `${body.query.class ? `, class ${body.query.class}` : ""}), best first`;
  } catch (err) {
    $("summary").textContent = "";
    showError("the request failed; is the server still running?");
  } finally {
    $("search-button").disabled = false;
  }
}

for (const radio of form.querySelectorAll("input[name=kind]")) radio.addEventListener("change", showKind);
$("query-image").addEventListener("change", () => preview($("query-image"), $("image-preview")));
$("query-audio").addEventListener("change", () => preview($("query-audio"), $("audio-preview")));
form.addEventListener("submit", search);
showKind();
loadHealth();
