// dlwp-serving demo page: the book models' forms, calling their typed API (/api/imdb,
// /api/reuters, /api/boston), and what every form shares. The Boston fields and the example texts
// come from the service's own schemas of what is loaded (GET /api/{model}/schema), generated from the
// models' configs, so they cannot drift from them. models.js adds every other loaded model.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const percent = (p) => `${(p * 100).toFixed(1)} %`;

// One call to the service: the parsed answer, the service's time and the round trip; or an Error
// whose message is plain words (a validation error, an HTTP status, or an unreachable service).
async function call(path, body, version) {
  const url = version ? `${path}?version=${encodeURIComponent(version)}` : path;
  const started = performance.now();
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw Object.assign(new Error("Could not reach the service. Is it running?"), {
      lines: [String(error.message || error)],
    });
  }
  const roundTrip = performance.now() - started;
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    answer = null;
  }
  if (!response.ok) {
    const status = `${response.status} ${response.statusText}`.trim();
    const details = answer && Array.isArray(answer.details) ? answer.details : [];
    const lines = details.length
      ? details.map((d) => (d.field ? `${plainField(d.field)}: ${d.reason}` : d.reason))
      : [answer && answer.error ? answer.error : "no explanation was given"];
    const title = response.status === 422
      ? "The service did not accept this input:"
      : `The service answered with an error (${status}):`;
    throw Object.assign(new Error(title), { lines, fields: details.map((d) => d.field) });
  }
  return { answer, serverMs: response.headers.get("X-Process-Time-Ms"), roundTrip };
}

// "houses[0].rm" → "rm", "reviews[0]" → "review": the names a person typed into (a typed
// request's one item). V2's "inputs[0].data" stays whole: the tensor form has one editor.
function plainField(field) {
  const text = String(field);
  if (/^(inputs|outputs)\[/.test(text)) return text;
  return text.replace(/^\w+\[0\]\./, "").replace(/^(\w+)s\[0\]$/, "$1");
}

// The model and version that answered (typed answers: model, version; V2: model_name, ...).
function meta({ answer, serverMs, roundTrip }) {
  const server = serverMs !== null ? `${Number(serverMs).toFixed(1)} ms` : "time unknown";
  const model = answer.model ?? answer.model_name;
  const version = answer.version ?? answer.model_version;
  return el("p", {
    class: "meta",
    "data-testid": "meta",
    text: `model ${model} v${version} · ${server} · ${Math.round(roundTrip)} ms round trip`,
  });
}

function showError(output, error) {
  output.className = "output error";
  output.setAttribute("role", "alert");
  const lines = (error.lines || []).map((line) => el("li", { text: line }));
  output.replaceChildren(el("p", { class: "title", text: error.message }));
  if (lines.length) output.append(el("ul", {}, ...lines));
}

function showResult(output, ...children) {
  output.className = "output";
  output.removeAttribute("role");
  output.replaceChildren(...children);
}

function bar(name, probability) {
  return el(
    "li",
    {},
    el("span", { class: "name", text: name }),
    el("meter", { min: "0", max: "1", value: String(probability), "aria-label": name }),
    el("span", { class: "pct", text: percent(probability) }),
  );
}

// Every form: submit → disable the button, call, show; the button comes back whatever happens.
function wire(form, run) {
  const output = $(`${form.dataset.model}-output`);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    button.disabled = true;
    output.setAttribute("aria-busy", "true");
    try {
      await run(output, form.elements.version.value);
    } catch (error) {
      showError(output, error);
      for (const field of error.fields || []) {
        const input = form.querySelector(`[name="${CSS.escape(plainField(field))}"]`);
        if (input) input.setAttribute("aria-invalid", "true");
      }
    } finally {
      output.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
}

function needText(textarea, what) {
  const text = textarea.value;
  if (!text.trim()) {
    textarea.setAttribute("aria-invalid", "true");
    throw Object.assign(new Error(`Type or paste a ${what} first.`), { lines: [] });
  }
  return text;
}

// A binary classifier's answer: the label and its probability, then each label's.
function showLabel(output, result, key) {
  const prediction = result.answer.predictions[0];
  showResult(
    output,
    el(
      "p",
      { class: "big" },
      el("span", { "data-testid": "label", text: prediction[key] }),
      " · ",
      el("span", { "data-testid": "probability", text: percent(prediction.probability) }),
    ),
    el("ul", { class: "bars" }, ...Object.entries(prediction.scores).map(([k, p]) => bar(k, p))),
    meta(result),
  );
}

// A multiclass answer: the most probable labels (the list `many`, each label under `key`).
function showRanked(output, result, many, key) {
  const ranked = result.answer.predictions[0][many];
  showResult(
    output,
    el("p", { class: "big", text: `Most likely: ${ranked[0][key]}` }),
    el("ol", { class: "bars", "data-testid": many }, ...ranked.map((t) => bar(t[key], t.probability))),
    meta(result),
  );
}

// top_k from a number field: null where empty (the service says it wants a number).
const topK = (input) => (input.value === "" ? null : Number(input.value));

wire($("imdb-form"), async (output, version) => {
  const review = needText($("imdb-review"), "review");
  showLabel(output, await call("/api/imdb", { reviews: [review] }, version), "label");
});

wire($("reuters-form"), async (output, version) => {
  const newswire = needText($("reuters-newswire"), "newswire");
  const body = { newswires: [newswire], top_k: topK($("reuters-top-k")) };
  showRanked(output, await call("/api/reuters", body, version), "topics", "topic");
});

wire($("boston-form"), async (output, version) => {
  const house = fieldValues($("boston-fields"));
  const result = await call("/api/boston", { houses: [house] }, version);
  const { price, unit } = result.answer.predictions[0];
  const dollars = unit === "$1000s"
    ? ` ≈ ${(price * 1000).toLocaleString("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 })}`
    : "";
  showResult(
    output,
    el(
      "p",
      { class: "big" },
      el("span", { "data-testid": "price", text: price.toFixed(2) }),
      ` (in ${unit})${dollars}`,
    ),
    el("p", { text: "Median value of owner-occupied homes for a tract like this one." }),
    meta(result),
  );
});

// A feature without a physical bound is still bounded by float32 (the model's datatype); that
// bound is no help to a person, so it is shown as none.
const FLOAT32_MAX = 3.4028234663852886e38;
const physical = (bound) => (bound === undefined || Math.abs(bound) >= FLOAT32_MAX ? undefined : bound);

// One row of named features (a typed request's item schema): the name, description (with the
// unit), range, and the schema's example as the starting values. `prefix`: the inputs' ids.
function buildFields(container, prefix, row) {
  const example = (row.examples && row.examples[0]) || {};
  const fields = Object.entries(row.properties).map(([name, prop]) => {
    const id = `${prefix}-${name}`;
    const min = physical(prop.minimum);
    const max = physical(prop.maximum);
    const range = `${min ?? "−∞"} to ${max ?? "∞"}`;
    const input = el("input", {
      id,
      name,
      type: "number",
      inputmode: "decimal",
      step: "any",
      required: "",
      "aria-describedby": `${id}-hint`,
    });
    if (min !== undefined) input.min = min;
    if (max !== undefined) input.max = max;
    if (example[name] !== undefined) input.value = example[name];
    return el(
      "div",
      { class: "field" },
      el("label", { for: id }, el("code", { text: name }), prop.description || ""),
      input,
      el("span", { class: "hint", id: `${id}-hint`, text: `range ${range}` }),
    );
  });
  container.replaceChildren(...fields);
}

// The values of the fields buildFields made: name → number (null where empty).
function fieldValues(container) {
  const values = {};
  for (const input of container.querySelectorAll("input")) {
    values[input.name] = input.value === "" ? null : Number(input.value);
  }
  return values;
}

// A typed endpoint's schemas (GET /api/{model}/schema): the request's item schema of a tabular model,
// and the example text of a text model.
function rowSchema(typed) {
  const items = typed.request.properties[typed.items].items;
  return items.$ref ? typed.request.$defs[items.$ref.split("/").pop()] : items;
}

function exampleText(typed) {
  const example = (typed.request.examples || [])[0];
  return example && example[typed.items] ? example[typed.items][0] : "";
}

async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return response.json();
}

async function fillVersions(model, select = $(`${model}-version`)) {
  try {
    const { versions } = await fetchJson(`/v2/models/${encodeURIComponent(model)}`);
    for (const v of versions || []) select.append(el("option", { value: v, text: `v${v}` }));
  } catch (_) {
    // The newest version still works; the list is a convenience.
  }
}

// The book models' sections: hidden where the model is not loaded, else filled from its schemas.
const BOOK = ["imdb", "reuters", "boston"];

async function startBook(loaded) {
  for (const model of BOOK.filter((m) => loaded && !loaded.has(m))) {
    $(model).hidden = true;
    document.querySelector(`#nav a[href="#${model}"]`).parentElement.hidden = true;
  }
  const shown = BOOK.filter((m) => !$(m).hidden);
  await Promise.all(shown.map(async (model) => {
    fillVersions(model);
    try {
      const typed = await fetchJson(`/api/${model}/schema`);
      if (model === "boston") buildFields($("boston-fields"), "boston", rowSchema(typed));
      else if (!$(`${model}-form`).querySelector("textarea").value) {
        $(`${model}-form`).querySelector("textarea").value = exampleText(typed);
      }
    } catch (error) {
      if (model !== "boston") return;
      $("boston-fields").replaceChildren();
      showError($("boston-output"), Object.assign(
        new Error("Could not load the Boston features from /api/boston/schema."),
        { lines: [String(error.message || error)] },
      ));
    }
  }));
}

async function start() {
  const loaded = await startModels(); // models.js: the list, other forms, the tensor form
  await startBook(loaded);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
