// dlwp-serving demo page: every loaded model (GET /api, and each one's V2 metadata), a typed form
// for each one with a typed endpoint besides the book models (its fields and words from
// GET /api/{model}/schema, generated from its config), and the tensor form: a V2 inference request
// (POST /v2/models/{m}/infer) prefilled from a model's metadata, for any model. Uses demo.js's
// helpers (el, call, wire, showLabel, showRanked, buildFields, …).
"use strict";

const metadata = new Map(); // model → its V2 metadata (versions, inputs)
const TASKS = {
  binary_classification: "binary classification",
  multiclass_classification: "multiclass classification",
  regression: "regression",
};

// The list, the other typed forms and the tensor form; the names of the loaded models, or null
// where they could not be listed.
async function startModels() {
  let models;
  try {
    ({ models } = await fetchJson("/api"));
  } catch (error) {
    showError($("models-output"), Object.assign(
      new Error("Could not list the loaded models (GET /api)."),
      { lines: [String(error.message || error)] },
    ));
    return null;
  }
  await Promise.all(models.map(async ({ name }) => {
    try {
      metadata.set(name, await fetchJson(`/v2/models/${encodeURIComponent(name)}`));
    } catch (_) {
      // Unloaded meanwhile: its tensor form stays empty.
    }
  }));
  for (const model of models) {
    if (model.typed && !BOOK.includes(model.name)) await addTypedForm(model.name);
  }
  listModels(models);
  startTensors(models);
  return new Set(models.map((m) => m.name));
}

function listModels(models) {
  const rows = models.map(({ name, versions, typed }) => {
    const forms = el("td", { class: "forms" });
    const section = BOOK.includes(name) ? name : `typed-${name}`;
    if (typed && $(section)) forms.append(el("a", { href: `#${section}`, text: "Typed form" }), " ");
    const tensors = el("button", {
      type: "button",
      class: "small",
      "aria-label": `Send tensors to ${name}`,
      text: "Tensors",
    });
    tensors.addEventListener("click", () => pickTensors(name, true));
    forms.append(tensors);
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, el("code", { text: name })),
      el("td", { text: versions.map((v) => `v${v}`).join(", ") }),
      forms,
    );
  });
  $("models-table").tBodies[0].replaceChildren(...rows);
}

// --- typed forms of the other models ----------------------------------------------------------

async function addTypedForm(name) {
  let typed;
  try {
    typed = await fetchJson(`/api/${encodeURIComponent(name)}/schema`);
  } catch (_) {
    return; // unloaded meanwhile
  }
  const id = `m-${name}`;
  const fields = typed.encoding === "features" ? featureFields(id, typed) : textFields(id, typed);
  const version = el("select", { id: `${id}-version`, name: "version" },
    el("option", { value: "", text: "newest" }));
  const form = el(
    "form",
    { id: `${id}-form`, "data-model": id, novalidate: "" },
    ...fields.nodes,
    el(
      "div",
      { class: "actions" },
      ...fields.actions,
      el("span", { class: "pick" }, el("label", { for: version.id, class: "inline", text: "Version" }), version),
      el("button", { type: "submit", text: "Predict" }),
    ),
  );
  $("typed-forms").append(el(
    "section",
    { id: `typed-${name}`, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, `${name} `, el("span", { class: "model", text: `(${TASKS[typed.task]})` })),
    form,
    el("div", { id: `${id}-output`, class: "output", "aria-live": "polite", "aria-atomic": "true" }),
  ));
  $("nav-models").before(el("li", {}, el("a", { href: `#typed-${name}`, text: name })));
  fillVersions(name, version);
  wire(form, async (output, chosen) => {
    const result = await call(`/api/${encodeURIComponent(name)}`, fields.body(), chosen);
    if (typed.task === "binary_classification") showLabel(output, result, typed.label);
    else if (typed.task === "multiclass_classification") showRanked(output, result, typed.labels, typed.label);
    else showValue(output, result, typed.value);
  });
}

// A text model's inputs: the text (its example to start with), and top_k where it ranks labels.
function textFields(id, typed) {
  const properties = typed.request.properties;
  const what = plainField(`${typed.items}[0]`);
  const text = el("textarea", { id: `${id}-text`, name: what, rows: "4", required: "" });
  text.value = exampleText(typed);
  const actions = [];
  let top = null;
  if (properties.top_k) {
    top = el("input", {
      id: `${id}-top-k`, name: "top_k", type: "number", inputmode: "numeric", step: "1",
      min: "1", max: String(properties.top_k.maximum), value: String(properties.top_k.default),
    });
    const label = `${typed.labels[0].toUpperCase()}${typed.labels.slice(1)} to show`;
    actions.push(el("span", { class: "pick" }, el("label", { for: top.id, class: "inline", text: label }), top));
  }
  return {
    nodes: [el("label", { for: text.id, text: properties[typed.items].description || typed.items }), text],
    actions,
    body: () => ({ [typed.items]: [needText(text, what)], ...(top ? { top_k: topK(top) } : {}) }),
  };
}

// A tabular model's inputs: one field per feature, from its row's schema.
function featureFields(id, typed) {
  const container = el("div", { id: `${id}-fields`, class: "fields" });
  buildFields(container, id, rowSchema(typed));
  const help = typed.request.properties[typed.items].description;
  return {
    nodes: [el("p", { text: help }), container],
    actions: [],
    body: () => ({ [typed.items]: [fieldValues(container)] }),
  };
}

// A regression's answer: the value and its unit.
function showValue(output, result, key) {
  const prediction = result.answer.predictions[0];
  showResult(
    output,
    el(
      "p",
      { class: "big" },
      el("span", { "data-testid": "value", text: String(Number(prediction[key].toPrecision(6))) }),
      ` (in ${prediction.unit})`,
    ),
    meta(result),
  );
}

// --- the tensor form --------------------------------------------------------------------------

function startTensors(models) {
  const select = $("tensors-model");
  select.replaceChildren(...models.map(({ name }) => el("option", { value: name, text: name })));
  const first = models.find((m) => !m.typed) || models[0];
  if (first) pickTensors(first.name, false);
  select.addEventListener("change", () => pickTensors(select.value, false));
}

// The tensor form for `name`: its versions, and a request of its inputs, prefilled with zeros.
function pickTensors(name, focus) {
  const found = metadata.get(name);
  $("tensors-model").value = name;
  $("tensors-version").replaceChildren(
    el("option", { value: "", text: "newest" }),
    ...((found && found.versions) || []).map((v) => el("option", { value: v, text: `v${v}` })),
  );
  $("tensors-request").value = found ? requestText(found.inputs) : "";
  $("tensors-output").replaceChildren();
  if (focus) {
    $("tensors").scrollIntoView();
    $("tensors-request").focus();
  }
}

// A V2 inference request of the model's inputs: name, datatype, shape (-1, any size, as 1) and
// as many zeros (or false, or "") as the shape holds; a tensor's data on one line.
function requestText(inputs) {
  const tensors = inputs.map(({ name, datatype, shape }) => {
    const sized = shape.map((d) => (d === -1 ? 1 : d));
    const count = sized.reduce((a, b) => a * b, 1);
    const zero = datatype === "BYTES" ? '""' : datatype === "BOOL" ? "false" : "0";
    const head = `"name": ${JSON.stringify(name)}, "datatype": "${datatype}", "shape": ${JSON.stringify(sized)}`;
    return `    {${head},\n     "data": [${Array(count).fill(zero).join(", ")}]}`;
  });
  return `{\n  "inputs": [\n${tensors.join(",\n")}\n  ]\n}\n`;
}

wire($("tensors-form"), async (output, version) => {
  const name = $("tensors-model").value;
  const editor = $("tensors-request");
  let body;
  try {
    body = JSON.parse(editor.value);
  } catch (error) {
    editor.setAttribute("aria-invalid", "true");
    throw Object.assign(new Error("The request is not valid JSON."), { lines: [String(error.message)] });
  }
  const model = `/v2/models/${encodeURIComponent(name)}`;
  const path = `${model}${version ? `/versions/${encodeURIComponent(version)}` : ""}/infer`;
  showTensors(output, await call(path, body, ""));
});

const preview = (data) => `[${data.slice(0, 12).join(", ")}${data.length > 12 ? ", …" : ""}]`;

function showTensors(output, result) {
  const head = ["Output", "Datatype", "Shape", "Data"].map((h) => el("th", { scope: "col", text: h }));
  const rows = result.answer.outputs.map((o) => el(
    "tr",
    {},
    el("th", { scope: "row" }, el("code", { text: o.name })),
    el("td", { text: o.datatype }),
    el("td", { text: JSON.stringify(o.shape) }),
    el("td", { class: "data", text: preview(o.data) }),
  ));
  showResult(
    output,
    el("table", { class: "tensors", "data-testid": "outputs" }, el("thead", {}, el("tr", {}, ...head)), el("tbody", {}, ...rows)),
    meta(result),
  );
}
