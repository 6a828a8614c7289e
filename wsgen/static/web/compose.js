// The composition builder: a form built from the composition JSON Schema
// (the `composition.schema` of the server's `generators` reply), nothing
// hard-coded about kinds or fields, so new injectors, placements, faults or
// base kinds appear by themselves. Base, noise, anomaly injectors (add,
// remove, reorder by removing) and faults; a preset to start from; the spec
// as JSON beside it; Start subscribes to it (app.js: wsgenPage.startComposition).
// Several channels (docs/compositions.md) are not in that schema: their
// fields (names, gain, offset, own bases, noise correlation, and each
// injector's target channels) are written here, in plain text boxes.
//
// The schema walker understands what pydantic writes: $ref into $defs,
// anyOf [X, null] (optional: a checkbox), oneOf with a discriminator or
// const tags (a select of variants), objects with properties, arrays (of a
// tagged union: a list with add/remove; of scalars: JSON text), numbers,
// integers, booleans, enums, consts, and free objects (JSON text).
(() => {
  "use strict";
  const page = window.wsgenPage;
  if (!page) return;
  const { app, el, fmt } = page;
  const $ = (id) => document.getElementById(id);

  /** A lively starting point: a 2 s sine, a little noise, a spike every 3 s, a level shift every 7 s. */
  const EXAMPLE = {
    interval: 0.05,
    base: { kind: "sine", params: { amplitude: 2, frequency: 0.5, sample_rate: 20 }, offset: 10 },
    noise: { kind: "normal", std_dev: 0.1 },
    anomalies: [
      { kind: "spike", placement: { mode: "periodic", every: 3 }, height: 4 },
      { kind: "level-shift", placement: { mode: "periodic", every: 7 }, min_length: 10, max_length: 20, height: -3 },
    ],
    faults: {},
  };

  let root = null;          // the composition schema
  let spec = null;          // the spec being edited (a plain object, edited in place)

  const clone = (x) => JSON.parse(JSON.stringify(x));

  function resolve(schema) {
    let s = schema;
    while (s && s.$ref) s = root.$defs[s.$ref.split("/").pop()];
    return s ?? {};
  }

  /** [schema without null, nullable] of anyOf [X, null]. */
  function unNull(schema) {
    const any = schema.anyOf;
    if (any && any.length === 2 && any.some((x) => x.type === "null")) {
      return [any.find((x) => x.type !== "null"), true];
    }
    return [schema, false];
  }

  /** The variants of a union: [{label, schema, tag: [name, value] | null}]. */
  function variants(schema) {
    const list = schema.oneOf ?? schema.anyOf ?? [];
    return list.map((v) => {
      const r = resolve(v);
      const tagName = Object.keys(r.properties ?? {}).find((k) => r.properties[k].const !== undefined);
      if (tagName) return { label: String(r.properties[tagName].const), schema: r, tag: [tagName, r.properties[tagName].const] };
      if (r.type === "number" || r.type === "integer") return { label: "fixed", schema: r, tag: null };
      return { label: (r.title ?? "value").replace(/Height$/, "").toLowerCase() || "value", schema: r, tag: null };
    });
  }

  function isUnion(schema) { return Boolean(schema.oneOf || (schema.anyOf && !unNull(schema)[1])); }

  /** Which variant ``value`` is. */
  function variantOf(vs, value) {
    if (typeof value === "number") return vs.findIndex((v) => v.schema.type === "number" || v.schema.type === "integer");
    if (value && typeof value === "object") {
      const tagged = vs.findIndex((v) => v.tag && value[v.tag[0]] === v.tag[1]);
      if (tagged >= 0) return tagged;
      const keys = Object.keys(value);
      return vs.findIndex((v) => !v.tag && v.schema.properties && keys.every((k) => k in v.schema.properties));
    }
    return -1;
  }

  /** A new value of a schema: its default, or for an object its tag and its
   * properties' defaults (those without one are left to the server). */
  function fresh(schema) {
    const s = resolve(schema);
    if (s.default !== undefined && s.default !== null) return clone(s.default);
    if (s.type === "number" || s.type === "integer") return s.minimum > 0 ? s.minimum : 1;
    if (s.properties) {
      const out = {};
      for (const [k, p] of Object.entries(s.properties)) {
        const r = resolve(p);
        if (r.const !== undefined) out[k] = r.const;
        else if (r.default !== undefined && r.default !== null && typeof r.default !== "object") out[k] = r.default;
      }
      return out;
    }
    return undefined;
  }

  let fieldCount = 0;

  /** A labelled row: the field's title, unit and description as a tooltip. */
  function row(path, schema, control) {
    const s = resolve(schema);
    const name = path[path.length - 1];
    // the property's own name (a $ref's title is its class name: "BaseSpec")
    const title = typeof name === "number" ? `#${name + 1}` : String(name).replace(/_/g, " ");
    const tip = [s.description ?? "", s.unit ? `[${s.unit}]` : "",
                 s.default !== undefined && s.default !== null && typeof s.default !== "object" ? `default ${fmt(s.default)}` : ""]
      .filter(Boolean).join(" · ");
    return el("div", { class: "c-row", "data-path": path.join(".") },
      el("label", { title: tip, for: control.id || undefined }, title, s.unit ? el("span", { class: "unit", text: ` ${s.unit}` }) : null),
      control);
  }

  function idFor(path) { return "c-" + path.join("-").replace(/[^A-Za-z0-9_-]/g, "_"); }

  /** The editor of ``obj[key]`` under ``schema``; ``changed()`` after each edit. */
  function editor(obj, key, schema, path, changed) {
    const [inner, nullable] = unNull(schema);
    if (nullable) {
      const box = el("div", { class: "c-optional" });
      const on = el("input", { type: "checkbox", id: idFor(path) + "-on", checked: obj[key] != null });
      const body = el("div", { class: "c-nested" });
      const draw = () => {
        body.replaceChildren();
        if (obj[key] != null) body.append(editor(obj, key, inner, path, changed));
      };
      on.addEventListener("change", () => {
        if (on.checked) obj[key] = fresh(isUnion(resolve(inner)) ? variants(resolve(inner))[0].schema : inner);
        else delete obj[key];
        draw();
        changed();
      });
      draw();
      box.append(el("label", { class: "c-switch", for: on.id }, on, " on"), body);
      return box;
    }
    const s = resolve(schema);
    if (isUnion(s)) return unionEditor(obj, key, s, path, changed);
    if (s.properties) return objectEditor(obj, key, s, path, changed);
    if (s.type === "array" && s.items && isUnion(resolve(s.items))) return listEditor(obj, key, s, path, changed);
    return scalarEditor(obj, key, s, path, changed);
  }

  function unionEditor(obj, key, s, path, changed) {
    const vs = variants(s);
    const box = el("div", { class: "c-union" });
    const pick = el("select", { id: idFor(path) + "-variant", title: s.description ?? "" });
    pick.append(el("option", { value: "", text: "(server default)" }));
    vs.forEach((v, i) => pick.append(el("option", { value: String(i), text: v.label })));
    const body = el("div", { class: "c-nested" });
    const draw = () => {
      body.replaceChildren();
      const i = variantOf(vs, obj[key]);
      pick.value = i >= 0 ? String(i) : "";
      if (i < 0) return;
      const v = vs[i];
      if (v.schema.properties) body.append(fields(obj[key], v.schema, path, changed));
      else body.append(scalarEditor(obj, key, v.schema, path, changed));
    };
    pick.addEventListener("change", () => {
      if (pick.value === "") delete obj[key];
      else obj[key] = fresh(vs[Number(pick.value)].schema);
      draw();
      changed();
    });
    draw();
    box.append(pick, body);
    return box;
  }

  /** Whether ``s`` is a base: a ``kind`` among registry generators and a
   * free ``params`` object (whose schema is then that kind's, from the catalogue). */
  function kindWithParams(s) {
    const kind = s.properties?.kind, params = s.properties?.params;
    return Boolean(kind?.enum && params && params.type === "object" && !params.properties);
  }

  /** The params of a registry kind: its catalogue schema, without the
   * interval (the composition's paces the samples). */
  function paramsEditor(target, path, changed) {
    const spec = app.catalogue.get(target.kind);
    const props = Object.entries(spec?.params_schema?.properties ?? {}).filter(([k]) => k !== "interval");
    if (!spec) return scalarEditor(target, "params", { type: "object" }, path, changed);   // not in the catalogue: JSON
    const params = target.params ?? (target.params = {});
    const box = el("div", { class: "c-fields" });
    for (const [k, p] of props) box.append(row([...path, k], p, editor(params, k, p, [...path, k], changed)));
    return box;
  }

  /** The properties of an object (its tag is the select above it: not shown again). */
  function fields(target, s, path, changed) {
    const box = el("div", { class: "c-fields" });
    const draw = () => {
      box.replaceChildren();
      for (const [k, p] of Object.entries(s.properties)) {
        const r = resolve(p);
        if (r.const !== undefined) continue;
        const sub = [...path, k];
        let ed;
        if (kindWithParams(s) && k === "params") {
          ed = paramsEditor(target, sub, changed);
        } else if (kindWithParams(s) && k === "kind") {
          // another kind: its own params (its demo values, as the form above starts from)
          ed = editor(target, k, p, sub, () => {
            const demo = { ...(app.catalogue.get(target.kind)?.demo ?? {}) };
            delete demo.interval;
            target.params = demo;
            changed();
            draw();
          });
        } else {
          ed = editor(target, k, p, sub, changed);
        }
        box.append(row(sub, p, ed));
      }
    };
    draw();
    return box;
  }

  function objectEditor(obj, key, s, path, changed) {
    if (obj[key] == null || typeof obj[key] !== "object") obj[key] = fresh(s) ?? {};
    return fields(obj[key], s, path, changed);
  }

  function listEditor(obj, key, s, path, changed) {
    const box = el("div", { class: "c-list" });
    const itemSchema = resolve(s.items);
    const vs = variants(itemSchema);
    const draw = () => {
      box.replaceChildren();
      const list = obj[key] ?? (obj[key] = []);
      list.forEach((item, i) => {
        const v = vs[variantOf(vs, item)];
        const remove = el("button", { type: "button", class: "c-remove", id: `${idFor([...path, i])}-remove`,
                                      text: "remove", title: "remove this one" });
        remove.addEventListener("click", () => { list.splice(i, 1); draw(); changed(); });
        box.append(el("fieldset", { class: "c-item", id: idFor([...path, i]) },
          el("legend", {}, `${i + 1}. ${v ? v.label : "?"} `, remove),
          key === "anomalies" && spec.channels ? targetsEditor(item, [...path, i], changed) : null,
          v ? fields(item, v.schema, [...path, i], changed) : el("code", { text: JSON.stringify(item) })));
      });
      const add = el("select", { id: `${idFor(path)}-add`, title: `add to ${key}` });
      add.append(el("option", { value: "", text: `add ${String(key).replace(/ies$/, "y").replace(/s$/, "")}…` }));
      vs.forEach((v, i) => add.append(el("option", { value: String(i), text: v.label })));
      add.disabled = s.maxItems !== undefined && list.length >= s.maxItems;
      add.addEventListener("change", () => {
        if (add.value === "") return;
        list.push(fresh(vs[Number(add.value)].schema));
        draw();
        changed();
      });
      box.append(add);
    };
    draw();
    return box;
  }

  function scalarEditor(obj, key, s, path, changed) {
    const id = idFor(path) + `-${fieldCount++}`;
    const value = obj[key];
    const err = el("small", { class: "field-error" });
    const set = (v) => { if (v === undefined) delete obj[key]; else obj[key] = v; changed(); };
    let control;
    if (s.enum) {
      control = el("select", { id });
      if (value === undefined) control.append(el("option", { value: "", text: "(default)" }));
      for (const e of s.enum) control.append(el("option", { value: String(e), text: String(e), selected: e === value }));
      control.addEventListener("change", () => set(control.value === "" ? undefined : s.enum.find((e) => String(e) === control.value)));
    } else if (s.type === "boolean") {
      control = el("input", { type: "checkbox", id, checked: Boolean(value ?? s.default) });
      control.addEventListener("change", () => set(control.checked));
    } else if (s.type === "number" || s.type === "integer") {
      control = el("input", { type: "number", id, value: value ?? "", step: s.type === "integer" ? 1 : "any",
                              placeholder: s.default != null ? fmt(s.default) : "" });
      control.addEventListener("input", () => {
        const text = control.value.trim();
        if (text === "") { err.textContent = ""; set(undefined); return; }
        const x = Number(text);
        const lo = s.minimum ?? s.exclusiveMinimum, hi = s.maximum ?? s.exclusiveMaximum;
        let problem = "";
        if (!Number.isFinite(x)) problem = "not a number";
        else if (s.type === "integer" && !Number.isInteger(x)) problem = "a whole number";
        else if (lo !== undefined && (s.exclusiveMinimum !== undefined ? x <= lo : x < lo)) problem = `${s.exclusiveMinimum !== undefined ? ">" : "≥"} ${fmt(lo)}`;
        else if (hi !== undefined && (s.exclusiveMaximum !== undefined ? x >= hi : x > hi)) problem = `≤ ${fmt(hi)}`;
        err.textContent = problem ? `must be ${problem}` : "";
        control.classList.toggle("invalid", Boolean(problem));
        if (!problem) set(x);
      });
    } else {
      // free objects (base params), lists of scalars (indices), text: JSON, else the text itself
      const shown = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
      control = el("input", { type: "text", id, value: shown, placeholder: s.type === "array" ? "[1, 2, 3]" : s.type === "object" ? "{}" : "" });
      control.addEventListener("input", () => {
        const text = control.value.trim();
        if (text === "") { set(undefined); return; }
        try { set(JSON.parse(text)); err.textContent = ""; } catch { if (s.type === "string") set(text); else err.textContent = "not JSON"; }
      });
    }
    return el("span", { class: "c-scalar" }, control, err);
  }

  // -- channels --------------------------------------------------------------------------
  const CHANNEL_FIELDS = ["channels", "gain", "offset", "bases"];

  /** "x, y z" -> ["x", "y", "z"]; a range "temp_1..temp_8" as given (the server expands it); JSON as JSON. */
  function parseNames(text) {
    const t = text.trim();
    if (!t) return undefined;
    if (t.startsWith("[")) return JSON.parse(t);
    if (t.includes("..")) return t;
    return t.split(/[\s,]+/).filter(Boolean);
  }

  /** "1, 2 0.5" -> [1, 2, 0.5]; JSON (a list, or an object {name: number}) as JSON. */
  function parseNumbers(text) {
    const t = text.trim();
    if (!t) return undefined;
    if (t.startsWith("[") || t.startsWith("{")) return JSON.parse(t);
    const xs = t.split(/[\s,]+/).filter(Boolean).map(Number);
    if (xs.some((x) => !Number.isFinite(x))) throw new Error("numbers separated by commas, or JSON");
    return xs;
  }

  /** "1, 0.8; 0.8, 1" (rows separated by ; or new lines) -> [[1, 0.8], [0.8, 1]]; JSON as JSON. */
  function parseMatrix(text) {
    const t = text.trim();
    if (!t) return undefined;
    if (t.startsWith("[")) return JSON.parse(t);
    const rows = t.split(/[;\n]+/).map((r) => r.trim()).filter(Boolean)
      .map((r) => r.split(/[\s,]+/).filter(Boolean).map(Number));
    if (rows.some((r) => r.some((x) => !Number.isFinite(x)))) throw new Error("rows of numbers separated by ;");
    return rows;
  }

  const shownList = (v) => v === undefined ? "" : Array.isArray(v) && v.every((x) => typeof x !== "object")
    ? v.join(", ") : typeof v === "string" ? v : JSON.stringify(v);
  const shownMatrix = (m) => Array.isArray(m) && m.every(Array.isArray) ? m.map((r) => r.join(", ")).join(";\n") : shownList(m);

  /** Each box: [id, read(text) -> spec changes]. */
  const CHANNEL_BOXES = [
    ["compose-channels", (t) => ({ channels: parseNames(t) })],
    ["compose-gain", (t) => ({ gain: parseNumbers(t) })],
    ["compose-offset", (t) => ({ offset: parseNumbers(t) })],
    ["compose-bases", (t) => ({ bases: t.trim() ? JSON.parse(t) : undefined })],
    ["compose-correlation", (t) => ({ correlation: parseMatrix(t) })],
  ];

  /** The channel boxes into the spec (after an edit); true when they all read. */
  function readChannels() {
    let ok = true;
    const problems = [];
    for (const [id, read] of CHANNEL_BOXES) {
      const box = $(id);
      let changes;
      try { changes = read(box.value); } catch (err) {
        ok = false;
        box.classList.add("invalid");
        problems.push(`${box.previousElementSibling?.textContent ?? id}: ${err.message}`);
        continue;
      }
      box.classList.remove("invalid");
      for (const [k, v] of Object.entries(changes)) {
        if (k === "correlation") {
          if (v === undefined) { if (spec.noise) delete spec.noise.correlation; }
          else spec.noise = { kind: "normal", ...(spec.noise ?? {}), correlation: v };
        } else if (v === undefined) delete spec[k];
        else spec[k] = v;
      }
    }
    if (!spec.channels) {        // one signal: no field of channels may stay
      for (const k of CHANNEL_FIELDS) delete spec[k];
      if (spec.noise) delete spec.noise.correlation;
      for (const a of spec.anomalies ?? []) delete a.channels;
    }
    $("compose-channels-error").textContent = problems.join("; ");
    return ok;
  }

  /** The channel boxes from the spec (after a preset or the JSON box). */
  function drawChannels() {
    $("compose-channels").value = shownList(spec.channels);
    $("compose-gain").value = shownList(spec.gain);
    $("compose-offset").value = shownList(spec.offset);
    $("compose-bases").value = spec.bases === undefined ? "" : JSON.stringify(spec.bases);
    $("compose-correlation").value = shownMatrix(spec.noise?.correlation);
    for (const [id] of CHANNEL_BOXES) $(id).classList.remove("invalid");
    $("compose-channels-error").textContent = "";
    $("compose-channel-fields").hidden = !spec.channels;
  }

  /** An injector's target channels: names separated by commas (empty: all). */
  function targetsEditor(item, path, changed) {
    const id = `${idFor(path)}-channels`;
    const input = el("input", { type: "text", id, value: (item.channels ?? []).join(", "), placeholder: "all channels" });
    input.addEventListener("input", () => {
      const names = input.value.split(/[\s,]+/).filter(Boolean);
      if (names.length) item.channels = names; else delete item.channels;
      changed();
    });
    return el("div", { class: "c-row", "data-path": [...path, "channels"].join(".") },
      el("label", { for: id, title: "the names of the channels this injector changes and labels (empty: all)" }, "channels"),
      input);
  }

  // -- the panel ----------------------------------------------------------------------
  function render() {
    const form = $("compose-form");
    if (!form || !root) return;
    drawChannels();
    form.replaceChildren();
    fieldCount = 0;
    const holder = { spec };
    form.append(fields(spec, root, [], changed));
    holder.spec = spec;
    changed();
  }

  function changed() {
    $("compose-json").value = JSON.stringify(spec);
  }

  function load(name) {
    const presets = app.composition?.presets ?? {};
    spec = clone(name === "example" || !presets[name] ? EXAMPLE : presets[name]);
    render();
  }

  function start() {
    const seed = $("compose-seed").value.trim();
    const problem = page.checkSeed(seed);
    $("compose-seed").classList.toggle("invalid", Boolean(problem));
    if (problem) { page.showError({ code: "invalid_form", message: problem }); return; }
    if (document.querySelector("#compose-form .invalid, #compose-channels-box .invalid")) {
      page.showError({ code: "invalid_form", message: "fix the composition fields marked in red first" });
      return;
    }
    page.startComposition(clone(spec), seed);
  }

  function setup() {
    if (root || !app.composition?.schema) return;
    root = app.composition.schema;
    const presets = $("compose-preset");
    presets.replaceChildren(el("option", { value: "example", text: "lively example" }),
      ...Object.keys(app.composition.presets ?? {}).map((n) => el("option", { value: n, text: `preset: ${n}` })));
    presets.addEventListener("change", () => load(presets.value));
    $("compose-start").addEventListener("click", start);
    for (const [id] of CHANNEL_BOXES) {
      $(id).addEventListener("input", () => { readChannels(); changed(); });
      // on leaving a box: the form again (the injectors' channels fields, the noise's correlation)
      $(id).addEventListener("change", () => { if (readChannels()) render(); });
    }
    $("compose-json").addEventListener("change", () => {
      try { spec = JSON.parse($("compose-json").value); render(); } catch (err) {
        page.showError({ code: "invalid_form", message: `the composition is not JSON: ${err.message}` });
      }
    });
    load("example");
    $("compose-start").disabled = false;
  }

  // The schema comes with the `generators` reply: look for it until it is there.
  const timer = setInterval(() => { if (app.composition?.schema) { setup(); clearInterval(timer); } }, 100);

  window.wsgen.composition = {
    spec: () => clone(spec),
    load,
    start,
  };
})();
