// The Glow demo page: talks to the JSON API of glow_tf/demo/app.py. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {info: null, current: null, second: null, source: null, exampleLabels: [], pending: 0, shown: 0,
               issued: 0};

function setError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// One API call; counts pending requests (tests wait on body[data-pending="0"]).
async function api(path, body) {
  state.pending += 1;
  document.body.dataset.pending = state.pending;
  try {
    const options = body instanceof FormData ? {method: "POST", body}
      : body ? {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)}
        : {};
    const response = await fetch(path, options);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `${response.status}`);
    setError("");
    return data;
  } finally {
    state.pending -= 1;
    document.body.dataset.pending = state.pending;
  }
}

// Shows an image answer unless a later request has already been shown.
async function show(path, body) {
  const ticket = ++state.issued;
  try {
    const data = await api(path, body);
    if (ticket > state.shown) {
      state.shown = ticket;
      setCurrent(data.image);
    }
    return data;
  } catch (e) {
    setError(e.message);
    return null;
  }
}

function setCurrent(url) {
  const img = $("current");
  img.src = url;
  img.dataset.version = String(Number(img.dataset.version) + 1);
  $("download").href = url;
}

function label() {
  return state.info.ycond ? Number($("y").value) : null;
}

// --- encoding: uploads, examples, random samples -----------------------------------------------
function uploadForm(file) {
  const form = new FormData();
  form.append("image", file);
  form.append("align", $("align").checked ? "1" : "0");
  if (state.info.ycond) form.append("y", String(label()));
  return form;
}

async function encodeFrom(source) {
  let body;
  if (source.kind === "file") body = uploadForm(source.file);
  else if (source.kind === "example") body = {example: source.k, y: label()};
  else body = {temperature: temperatures(), seed: Number($("seed").value), y: label()};
  const data = await show(source.kind === "random" ? "/api/random" : "/api/encode", body);
  if (!data) return;
  state.source = source;
  state.current = data;
  $("input-img").src = data.input || data.image;
  buildSliders(data.projection);
  $("blend").value = 0;
  $("blend-value").textContent = "0";
  updateBlendButtons();
}

async function encodeSecond(body) {
  try {
    const data = await api("/api/encode", body);
    state.second = data;
    $("blend-input").src = data.image;
    updateBlendButtons();
  } catch (e) {
    setError(e.message);
  }
}

function temperatures() {
  if (!$("advanced").checked) return Number($("temperature").value);
  return Array.from(document.querySelectorAll(".level-temperature"), (s) => Number(s.value));
}

// --- attribute sliders ---------------------------------------------------------------------------
function buildSliders(projection) {
  const box = $("sliders");
  box.textContent = "";
  for (const name of state.info.directions) {
    const p = projection[name];
    const row = document.createElement("div");
    row.className = "slider";
    const title = document.createElement("span");
    title.textContent = (state.info.labels || {})[name] || name.replace(/_/g, " ");
    const slider = document.createElement("input");
    Object.assign(slider, {type: "range", step: "0.01", min: Math.min(-2, p - 1).toFixed(2),
                           max: Math.max(2, p + 1).toFixed(2)});
    slider.value = p;
    slider.dataset.name = name;
    slider.dataset.start = String(slider.value);  // the image's own projection (as the slider rounds it)
    const range = document.createElement("button");
    range.textContent = "strip";
    range.className = "range-button";
    range.dataset.name = name;
    const value = document.createElement("output");
    value.textContent = Number(slider.value).toFixed(2);
    slider.addEventListener("input", () => {
      value.textContent = Number(slider.value).toFixed(2);
      manipulate();
    });
    range.addEventListener("click", () => manipulateRange(name));
    row.append(title, slider, value, range);
    box.append(row);
  }
}

// {name: slider - start} of the sliders moved away from the image's own projection.
function offsets() {
  const out = {};
  for (const s of document.querySelectorAll("#sliders input")) {
    const a = Number(s.value) - Number(s.dataset.start);
    if (a !== 0) out[s.dataset.name] = a;
  }
  return out;
}

function manipulate() {
  if (!state.current) return;
  const alphas = offsets();
  if (Object.keys(alphas).length === 0) {
    state.shown = ++state.issued;
    setCurrent(state.current.image);
    return;
  }
  show("/api/manipulate", {id: state.current.id, alphas});
}

async function manipulateRange(name) {
  if (!state.current) return;
  const alphas = offsets();
  delete alphas[name];
  await showRange(`/api/manipulate_range`, {id: state.current.id, attr: name, points: 7, alphas},
                  `${(state.info.labels || {})[name] || name.replace(/_/g, " ")}: -1 .. +1`);
}

async function showRange(path, body, title) {
  try {
    const data = await api(path, body);
    $("range").hidden = false;
    $("range-title").textContent = title;
    $("range-strip").src = data.strip;
    $("range-png").href = data.strip;
    $("range-gif").href = data.gif;
  } catch (e) {
    setError(e.message);
  }
}

// --- blending --------------------------------------------------------------------------------------
function updateBlendButtons() {
  const ready = Boolean(state.current && state.second);
  $("blend").disabled = !ready;
  $("blend-strip").disabled = !ready;
}

function blend() {
  const alpha = Number($("blend").value);
  $("blend-value").textContent = alpha.toFixed(2);
  if (state.current && state.second) show("/api/mix", {id1: state.current.id, id2: state.second.id, alpha});
}

// --- set-up ------------------------------------------------------------------------------------------
async function addExamples(info) {
  for (let k = 0; k < info.examples; k++) {
    const data = await api(`/api/example/${k}`);
    state.exampleLabels.push(data.y);
    for (const [box, second] of [[$("examples"), false], [$("blend-examples"), true]]) {
      const thumb = document.createElement("img");
      thumb.src = data.image;
      thumb.className = "example";
      thumb.dataset.k = String(k);
      thumb.title = data.y === null ? `example ${k}` : `example ${k} (class ${data.y})`;
      thumb.addEventListener("click", () => {
        if (second) encodeSecond({example: k, y: info.ycond ? (data.y ?? label()) : null});
        else pickExample(k);
      });
      box.append(thumb);
    }
  }
}

// An example, encoded with its own class (the class picker follows it).
function pickExample(k) {
  if (state.info.ycond && state.exampleLabels[k] !== null) $("y").value = String(state.exampleLabels[k]);
  return encodeFrom({kind: "example", k});
}

async function start() {
  const info = state.info = await api("/api/info");
  document.title = info.title;
  $("title").textContent = info.title;
  $("model-info").textContent = `${info.image_size}x${info.image_size}, ${info.channels} channel(s), `
    + `${info.n_levels} levels${info.ycond ? `, ${info.n_y} classes` : ""}, ${info.directions.length} direction(s)`;
  $("align-row").hidden = !info.can_align;
  $("align").checked = info.align_default;
  $("no-directions").hidden = info.directions.length > 0;
  if (info.ycond) {
    $("class-row").hidden = false;
    for (let c = 0; c < info.n_y; c++) $("y").append(new Option(String(c), String(c)));
  }
  for (let i = 0; i < info.n_levels; i++) {
    const row = document.createElement("label");
    row.textContent = i === info.n_levels - 1 ? "top " : `level ${i} `;
    const s = document.createElement("input");
    Object.assign(s, {type: "range", min: "0", max: "1", step: "0.05", value: "0.7", className: "level-temperature"});
    row.append(s);
    $("levels").append(row);
  }
  $("upload").addEventListener("change", (e) => {
    if (e.target.files.length) encodeFrom({kind: "file", file: e.target.files[0]});
  });
  $("blend-upload").addEventListener("change", (e) => {
    if (e.target.files.length) encodeSecond(uploadForm(e.target.files[0]));
  });
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = $("temperature").value;
  });
  $("advanced").addEventListener("change", () => { $("levels").hidden = !$("advanced").checked; });
  $("random").addEventListener("click", () => encodeFrom({kind: "random"}));
  $("y").addEventListener("change", () => { if (state.source) encodeFrom(state.source); });
  $("reset").addEventListener("click", () => {
    if (!state.current) return;
    buildSliders(state.current.projection);
    manipulate();
  });
  $("blend").addEventListener("input", blend);
  $("blend-strip").addEventListener("click", () => showRange(
    "/api/mix_range", {id1: state.current.id, id2: state.second.id, points: 7}, "blend: 0 .. 1"));
  await addExamples(info);
  if (info.examples > 0) await pickExample(0);
  else await encodeFrom({kind: "random"});
  document.body.dataset.ready = "1";
}

start().catch((e) => setError(e.message));
