// rnnkit serve: builds the form from /api/info and shows each app's answer with its renderer.
// A new app reuses a renderer below or adds one to RENDERERS (keyed by the handler's `result`).
"use strict";
const $ = (id) => document.getElementById(id);
let INFO = null;

function showError(message) { const box = $("error"); box.textContent = message; box.hidden = !message; }

function buildForm(info) {
  const form = $("form");
  for (const field of info.form) {
    const label = document.createElement("label");
    label.textContent = field.label; label.htmlFor = field.name;
    let input;
    if (field.kind === "textarea" || field.kind === "series") {
      input = document.createElement("textarea");
    } else if (field.kind === "image" || field.kind === "audio") {
      input = document.createElement("input");
      input.type = "file"; input.accept = field.kind === "image" ? "image/*" : ".wav,audio/wav,audio/x-wav";
    } else {
      input = document.createElement("input");
      input.type = field.kind === "text" ? "text" : "number";
      if (field.kind === "number") input.step = "any";
      if (field.minimum !== null) input.min = field.minimum;
      if (field.maximum !== null) input.max = field.maximum;
    }
    input.id = input.name = field.name;
    let initial = field.default;
    if (field.kind === "series" && info.example) initial = info.example.map((row) => row.join(", ")).join("\n");
    if (initial !== null && initial !== undefined) input.value = initial;
    form.append(label, input);
  }
}

function readFile(file) {  // a data: URL; the server takes it as base64
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

async function readForm(info) {
  const body = {};
  for (const field of info.form) {
    const text = $(field.name).value;
    if (field.kind === "image" || field.kind === "audio") {
      const file = $(field.name).files[0];
      if (file) body[field.name] = await readFile(file);
    } else if (field.kind === "number" || field.kind === "integer") {
      if (text.trim() !== "") body[field.name] = Number(text);
    } else if (field.kind === "series") {
      body[field.name] = text.trim().split(/\n+/).map((line) => line.split(/[,;\s]+/).filter(Boolean).map(Number));
    } else {
      body[field.name] = text;
    }
  }
  return body;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify(body) });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error; } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${message}`);
  }
  return response;
}

function drawLines(canvas, series, labels) {
  // series: [{values: [[x, y]...], color}], drawn on shared axes
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 40;
  const xs = series.flatMap((s) => s.values.map((p) => p[0])), ys = series.flatMap((s) => s.values.map((p) => p[1]));
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const X = (x) => pad + (x - x0) / (x1 - x0 || 1) * (W - 2 * pad), Y = (y) => H - pad - (y - y0) / (y1 - y0 || 1) * (H - 2 * pad);
  ctx.clearRect(0, 0, W, H); ctx.font = "12px sans-serif"; ctx.fillStyle = "#444";
  ctx.strokeStyle = "#999"; ctx.strokeRect(pad, pad, W - 2 * pad, H - 2 * pad);
  ctx.fillText(y1.toPrecision(4), 2, pad); ctx.fillText(y0.toPrecision(4), 2, H - pad);
  series.forEach((s, i) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    s.values.forEach((p, k) => (k ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke(); ctx.fillStyle = s.color; ctx.fillText(labels[i], pad + 10 + 120 * i, pad - 10);
  });
}

function heatmap(canvas, weights, rows, cols) {
  const ctx = canvas.getContext("2d"), cell = 28, left = 90, top = 70;
  canvas.width = left + cell * cols.length + 10; canvas.height = top + cell * rows.length + 10;
  const top1 = Math.max(...weights.flat(), 1e-9);  // darkest cell = the largest weight
  ctx.font = "12px sans-serif"; ctx.fillStyle = "#222";
  cols.forEach((c, j) => { ctx.save(); ctx.translate(left + j * cell + cell / 2, top - 6); ctx.rotate(-Math.PI / 3);
                           ctx.fillText(c, 0, 0); ctx.restore(); });
  rows.forEach((r, i) => {
    ctx.fillStyle = "#222"; ctx.fillText(r, 4, top + i * cell + cell * 0.65);
    weights[i].forEach((w, j) => { const v = Math.round(255 * (1 - w / top1));
      ctx.fillStyle = `rgb(${v},${v},255)`; ctx.fillRect(left + j * cell, top + i * cell, cell - 1, cell - 1); });
  });
}

const RENDERERS = {
  async stream(body, result) {
    const reader = (await post("/api/stream", body)).body.getReader(), decoder = new TextDecoder();
    const out = document.createElement("pre"); out.id = "output"; result.append(out);
    out.textContent = body.prime || "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.textContent += decoder.decode(value, { stream: true });
    }
    out.dataset.done = "true";
  },
  async probabilities(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("div"); out.id = "output";
    out.innerHTML = `<p><b id="label"></b> (${(100 * answer.probability).toFixed(1)} %)</p>`;
    out.querySelector("#label").textContent = answer.label;
    for (const [label, p] of Object.entries(answer.probabilities).sort((a, b) => b[1] - a[1])) {
      const row = document.createElement("div"); row.className = "bar";
      row.innerHTML = `<span></span><span class="fill" style="width:${Math.max(1, 300 * p)}px"></span><span>${(100 * p).toFixed(1)} %</span>`;
      row.firstChild.textContent = label; out.append(row);
    }
    result.append(out); out.dataset.done = "true";
  },
  async text(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("p"); out.id = "output"; out.textContent = answer.text;
    result.append(out); out.dataset.done = "true";
  },
  async caption(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("div"); out.id = "output";
    const text = document.createElement("p"); text.id = "caption"; text.textContent = answer.caption;
    out.append(text);
    const picture = new Image(); picture.src = body.image; await picture.decode();
    const [rows, cols] = answer.grid, size = 96;
    answer.words.forEach((word, i) => {  // each word: the image, its attention over the regions laid on top
      const figure = document.createElement("figure"); figure.className = "attention";
      const canvas = document.createElement("canvas"); canvas.width = canvas.height = size;
      const ctx = canvas.getContext("2d"), top1 = Math.max(...answer.attention[i], 1e-9);
      ctx.drawImage(picture, 0, 0, size, size);
      answer.attention[i].forEach((w, k) => {
        ctx.fillStyle = `rgba(0,0,0,${0.75 * (1 - w / top1)})`;  // dark where the word did not look
        ctx.fillRect((k % cols) * size / cols, Math.floor(k / cols) * size / rows, size / cols, size / rows);
      });
      const caption = document.createElement("figcaption"); caption.textContent = word;
      figure.append(canvas, caption); out.append(figure);
    });
    result.append(out); out.dataset.done = "true";
  },
  async music(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("div"); out.id = "output";
    const link = document.createElement("a"); link.id = "midi"; link.download = "rnnkit-sample.mid";
    link.href = `data:audio/midi;base64,${answer.midi}`;
    link.textContent = `Download the MIDI file (${answer.notes} notes, ${answer.seconds} s)`;
    const roll = document.createElement("img"); roll.id = "roll"; roll.alt = "piano roll of the sample";
    roll.src = `data:image/png;base64,${answer.png}`;
    out.append(link, document.createElement("br"), roll); result.append(out); out.dataset.done = "true";
  },
  async forecast(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("div"); out.id = "output";
    const canvas = document.createElement("canvas"); canvas.width = 760; canvas.height = 320; out.append(canvas);
    const n = answer.history.length, shown = Math.min(n, 4 * answer.forecast.length + 20);
    const history = answer.history.slice(n - shown).map((row, i) => [n - shown + i, row[0]]);
    const future = [[n - 1, answer.history[n - 1][0]], ...answer.forecast.map((row, i) => [n + i, row[0]])];
    drawLines(canvas, [{ values: history, color: "#4a7fb5" }, { values: future, color: "#d2691e" }],
              [`history: ${answer.targets[0]}`, "forecast"]);
    const table = document.createElement("p");
    table.textContent = "forecast: " + answer.forecast.map((row) => row.map((v) => v.toPrecision(5)).join(" / ")).join(", ");
    out.append(table); result.append(out); out.dataset.done = "true";
  },
  async translation(body, result) {
    const answer = await (await post("/api/predict", body)).json();
    const out = document.createElement("div"); out.id = "output";
    const text = document.createElement("p"); text.id = "translation"; text.textContent = answer.translation;
    out.append(text);
    if (answer.attention) {
      const canvas = document.createElement("canvas"); out.append(canvas);
      heatmap(canvas, answer.attention, answer.output_tokens, answer.source_tokens);
    }
    result.append(out); out.dataset.done = "true";
  },
};

async function run() {
  showError(""); $("result").textContent = ""; $("run").disabled = true; $("status").textContent = "working…";
  try {
    await RENDERERS[INFO.result](await readForm(INFO), $("result"));
    $("status").textContent = "done";
  } catch (error) {
    showError(error.message); $("status").textContent = "";
  } finally {
    $("run").disabled = false;
  }
}

async function start() {
  INFO = await (await fetch("/api/info")).json();
  document.title = `rnnkit: ${INFO.title}`;
  $("title").textContent = INFO.title;
  $("subtitle").textContent = `run ${INFO.run} (rnnkit ${INFO.app})`;
  buildForm(INFO);
  $("run").disabled = false;
  $("run").addEventListener("click", run);
}

start().catch((error) => showError(`could not load /api/info: ${error.message}`));
