// A form generated from a JSON Schema (a create or patch body, a command's params), whose
// problems are shown at their fields. Values are shown with text bindings only: nothing a user
// typed or a document holds is ever parsed as HTML.

import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { typeOf } from "./catalog.js";

function inputKind(schema) {
  const type = typeOf(schema);
  if (schema.enum) return "enum";
  if (type === "boolean") return "boolean";
  if (type === "integer" || type === "number") return "number";
  if (type === "array") {
    const items = schema.items || {};
    return ["object", "array"].includes(typeOf(items)) ? "json" : "list";
  }
  if (type === "object") return "json";
  if (schema.format === "password") return "password";
  return "text";
}

/** The text an input shows for a value. */
function shown(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind === "list") return value.join("\n");
  if (kind === "json") return JSON.stringify(value, null, 2);
  return String(value);
}

/** The value of an input's text, or `{invalid}` with why. Empty means "not sent". */
function parsed(kind, schema, text) {
  if (text === "") return undefined;
  switch (kind) {
    case "number": {
      const number = Number(text);
      return Number.isFinite(number) ? number : { invalid: "must be a number" };
    }
    case "boolean":
      return text === "true";
    case "enum": {
      const match = schema.enum.find((option) => String(option) === text);
      return match === undefined ? { invalid: "is not one of the choices" } : match;
    }
    case "list": {
      const itemKind = inputKind(schema.items || {});
      return text
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "")
        .map((line) => (itemKind === "number" ? Number(line) : line));
    }
    case "json":
      try {
        return JSON.parse(text);
      } catch {
        return { invalid: "is not valid JSON" };
      }
    default:
      return text;
  }
}

/** The problem's field errors by top-level field, and the rest. */
export function errorsByField(problem) {
  const byField = {};
  const general = [];
  for (const error of (problem && problem.errors) || []) {
    const field = (error.pointer || "").split("/")[1];
    const text = error.pointer && error.pointer.split("/").length > 2
      ? `${error.pointer.split("/").slice(2).join("/")}: ${error.detail}`
      : error.detail;
    if (field) (byField[field] = byField[field] || []).push(text);
    else general.push(error.detail || error.parameter);
  }
  return { byField, general };
}

/**
 * `schema`'s fields as inputs, filled from `initial`; `submit(values)` answers a problem (shown
 * at the fields) or nothing when it went through. With `patch`, only what changed is sent (a
 * JSON Merge Patch: a field emptied is `null`).
 */
export function SchemaForm({ schema, initial = {}, submit, label, id, patch = false }) {
  const required = new Set((schema && schema.required) || []);
  // Required fields first, each group in the description's order.
  const properties = Object.entries((schema && schema.properties) || {})
    .filter(([, field]) => !field.readOnly)
    .sort(([a], [b]) => Number(required.has(b)) - Number(required.has(a)));
  const [texts, setTexts] = useState(() =>
    Object.fromEntries(properties.map(([name, field]) => [name, shown(inputKind(field), initial[name])])),
  );
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const local = {};
  const values = {};
  for (const [name, field] of properties) {
    const value = parsed(inputKind(field), field, texts[name] || "");
    if (value && typeof value === "object" && "invalid" in value && !Array.isArray(value)) local[name] = value.invalid;
    else if (patch && JSON.stringify(value) === JSON.stringify(initial[name])) continue;
    else if (value !== undefined) values[name] = value;
    else if (patch && initial[name] !== undefined) values[name] = null;
  }
  const { byField, general } = errorsByField(problem);

  async function onSubmit(event) {
    event.preventDefault();
    if (Object.keys(local).length) return;
    setBusy(true);
    const answer = await submit(values);
    setBusy(false);
    setProblem(answer || null);
  }

  const input = (name, field) => {
    const kind = inputKind(field);
    const value = texts[name] || "";
    const set = (event) => setTexts({ ...texts, [name]: event.currentTarget.value });
    const inputId = `${id}-${name}`;
    if (kind === "enum" || kind === "boolean") {
      const options = kind === "boolean" ? [true, false] : field.enum;
      return html`<select id=${inputId} name=${name} value=${value} onChange=${set}>
        <option value="">—</option>
        ${options.map((option) => html`<option value=${String(option)}>${String(option)}</option>`)}
      </select>`;
    }
    if (kind === "list" || kind === "json") {
      return html`<textarea id=${inputId} name=${name} rows=${kind === "json" ? 4 : 3} value=${value} onInput=${set}
        placeholder=${kind === "list" ? "one per line" : "JSON"}></textarea>`;
    }
    return html`<input id=${inputId} name=${name} type=${kind === "number" ? "text" : kind}
      inputmode=${kind === "number" ? "decimal" : undefined} value=${value} onInput=${set}
      autocomplete=${kind === "password" ? "new-password" : "off"} />`;
  };

  return html`<form class="schema-form" id=${id} onSubmit=${onSubmit} novalidate>
    ${problem && html`<div class="problem" role="alert">
      <strong>${problem.title || "Refused"}</strong> ${problem.detail}
      ${general.length > 0 && html`<ul>${general.map((text) => html`<li>${text}</li>`)}</ul>`}
    </div>`}
    ${properties.length === 0 && html`<p class="muted">No parameters.</p>`}
    ${properties.map(([name, field]) => html`<div class=${"field" + (byField[name] || local[name] ? " invalid" : "")}>
      <label for=${`${id}-${name}`}>${name}${required.has(name) ? " *" : ""}</label>
      ${input(name, field)}
      ${field.description && html`<small class="muted">${field.description}</small>`}
      ${local[name] && html`<small class="error" data-field=${name}>${local[name]}</small>`}
      ${(byField[name] || []).map((text) => html`<small class="error" data-field=${name}>${text}</small>`)}
    </div>`)}
    <button type="submit" disabled=${busy}>${busy ? "…" : label}</button>
  </form>`;
}
