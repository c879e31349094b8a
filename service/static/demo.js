// dlwp-serving demo page: calls the typed API (/api/imdb, /api/reuters, /api/boston) and shows
// the answers. The Boston form and the example texts come from the service's own /openapi.json,
// so they cannot drift from service/catalog.py.
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

// "houses[0].rm" → "rm", "reviews[0]" → "review": the names a person typed into.
function plainField(field) {
  return String(field)
    .replace(/^houses\[0\]\./, "")
    .replace(/^reviews\[0\]$/, "review")
    .replace(/^newswires\[0\]$/, "newswire");
}

function meta({ answer, serverMs, roundTrip }) {
  const server = serverMs !== null ? `${Number(serverMs).toFixed(1)} ms` : "time unknown";
  return el("p", {
    class: "meta",
    "data-testid": "meta",
    text: `model ${answer.model} v${answer.version} · ${server} · ${Math.round(roundTrip)} ms round trip`,
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

wire($("imdb-form"), async (output, version) => {
  const review = needText($("imdb-review"), "review");
  const result = await call("/api/imdb", { reviews: [review] }, version);
  const prediction = result.answer.predictions[0];
  showResult(
    output,
    el(
      "p",
      { class: "big" },
      el("span", { "data-testid": "label", text: prediction.label }),
      " · ",
      el("span", { "data-testid": "probability", text: percent(prediction.probability) }),
    ),
    el("ul", { class: "bars" }, ...Object.entries(prediction.scores).map(([k, p]) => bar(k, p))),
    meta(result),
  );
});

wire($("reuters-form"), async (output, version) => {
  const newswire = needText($("reuters-newswire"), "newswire");
  const topK = $("reuters-top-k").value;
  const body = { newswires: [newswire], top_k: topK === "" ? null : Number(topK) };
  const result = await call("/api/reuters", body, version);
  const topics = result.answer.predictions[0].topics;
  showResult(
    output,
    el("p", { class: "big", text: `Most likely: ${topics[0].topic}` }),
    el("ol", { class: "bars", "data-testid": "topics" }, ...topics.map((t) => bar(t.topic, t.probability))),
    meta(result),
  );
});

wire($("boston-form"), async (output, version) => {
  const house = {};
  for (const input of $("boston-fields").querySelectorAll("input")) {
    house[input.name] = input.value === "" ? null : Number(input.value);
  }
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

// The Boston fields, from the House schema of /openapi.json: name, description (with the unit),
// range, and the first house of the data set as the example.
function buildBostonFields(schema) {
  const house = schema.components.schemas.House;
  const example = (house.examples && house.examples[0]) || {};
  const fields = Object.entries(house.properties).map(([name, prop]) => {
    const id = `boston-${name}`;
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
  $("boston-fields").replaceChildren(...fields);
}

function fillExamples(schema) {
  const schemas = schema.components.schemas;
  const first = (name) => (schemas[name] && schemas[name].examples && schemas[name].examples[0]) || {};
  const review = first("ReviewsRequest").reviews;
  const newswire = first("NewswiresRequest").newswires;
  if (review && !$("imdb-review").value) $("imdb-review").value = review[0];
  if (newswire && !$("reuters-newswire").value) $("reuters-newswire").value = newswire[0];
}

async function fillVersions(model) {
  try {
    const response = await fetch(`/v2/models/${model}`);
    if (!response.ok) return;
    const { versions } = await response.json();
    const select = $(`${model}-version`);
    for (const v of versions || []) select.append(el("option", { value: v, text: `v${v}` }));
  } catch (_) {
    // The newest version still works; the list is a convenience.
  }
}

async function start() {
  for (const model of ["imdb", "reuters", "boston"]) fillVersions(model);
  try {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const schema = await response.json();
    fillExamples(schema);
    buildBostonFields(schema);
  } catch (error) {
    $("boston-fields").replaceChildren();
    showError($("boston-output"), Object.assign(
      new Error("Could not load the Boston features from /openapi.json."),
      { lines: [String(error.message || error)] },
    ));
  }
  document.body.dataset.ready = "true";
}

start();
