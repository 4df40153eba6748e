// New run: a form generated from the run config's own JSON schema (GET /modes/{mode}: config_schema and the
// preset's values). Enums are selects, numbers carry the validator's bounds, descriptions are the help, nested
// sections fold; changed fields are marked; out-of-range values are flagged at their field before sending, and
// every problem of a 422 is put next to its field.
let formSchema = {}, presetFlat = {};

// A schema node with $ref followed and Optional (anyOf with null) unwrapped: [node, nullable].
function resolveSchema(node) {
  let nullable = false;
  for (;;) {
    if (node.$ref) node = { ...formSchema.$defs[node.$ref.split("/").pop()], ...(node.description ? { description: node.description } : {}) };
    else if (node.anyOf) {
      const rest = node.anyOf.filter((a) => a.type !== "null");
      nullable = nullable || rest.length < node.anyOf.length;
      if (rest.length !== 1) return [{ type: "json", description: node.description }, nullable];
      node = { ...rest[0], description: node.description || rest[0].description };
    } else return [node, nullable];
  }
}

function kindOf(s) {
  if (s.enum) return "enum";
  if (s.type === "boolean") return "boolean";
  if (s.type === "integer" || s.type === "number") return s.type;
  if (s.type === "object" && s.properties) return "section";
  if (s.type === "object" || s.type === "array" || s.type === "json") return "json";
  return "string";
}

// "number, 0 <= x < 1" from the validator's bounds.
function boundsText(kind, s, nullable) {
  const lo = s.minimum !== undefined ? `${s.minimum} \u2264 ` : s.exclusiveMinimum !== undefined ? `${s.exclusiveMinimum} < ` : "";
  const hi = s.maximum !== undefined ? ` \u2264 ${s.maximum}` : s.exclusiveMaximum !== undefined ? ` < ${s.exclusiveMaximum}` : "";
  const what = kind === "enum" ? `one of ${s.enum.join(", ")}` : kind === "json" ? (s.type === "array" ? "list (JSON)" : "mapping (JSON)")
    : kind === "string" && s.format === "date-time" ? "date-time (ISO 8601 UTC)" : kind;
  return `${what}${lo || hi ? `, ${lo}x${hi}` : ""}${nullable ? ", optional" : ""}`;
}

function flattenConfig(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v) && sectionKeys.has(key)) flattenConfig(v, key, out);
    else out[key] = v;
  }
  return out;
}
const sectionKeys = new Set();

function collectSections(node, prefix = "") {
  for (const [k, raw] of Object.entries(node.properties || {})) {
    const [s] = resolveSchema(raw);
    const key = prefix ? `${prefix}.${k}` : k;
    if (kindOf(s) === "section") { sectionKeys.add(key); collectSections(s, key); }
  }
}

function control(key, kind, s, nullable, value) {
  const common = { id: `f-${key}`, "data-key": key, "data-kind": kind, "data-nullable": nullable ? "1" : "" };
  if (kind === "enum") {
    return el("select", common, [...(nullable ? [el("option", { value: "", selected: value === null }, "(unset)")] : []),
      ...s.enum.map((e) => el("option", { value: e, selected: e === value }, e))]);
  }
  if (kind === "boolean") return el("input", { ...common, type: "checkbox", checked: Boolean(value) });
  if (kind === "json") return el("textarea", { ...common, rows: 2 }, value === undefined || value === null ? "" : JSON.stringify(value));
  if (kind === "number" || kind === "integer") {
    return el("input", { ...common, type: "number", step: kind === "integer" ? "1" : "any", value: value ?? "",
      min: s.minimum ?? s.exclusiveMinimum, max: s.maximum ?? s.exclusiveMaximum,
      "data-exclusive-min": s.exclusiveMinimum, "data-exclusive-max": s.exclusiveMaximum });
  }
  return el("input", { ...common, type: "text", value: value ?? "", maxlength: s.maxLength,
    placeholder: s.format === "date-time" ? "e.g. 2024-11-01T00:00:00Z" : "" });
}

function buildFields(node, prefix = "") {
  const out = [];
  for (const [k, raw] of Object.entries(node.properties || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (key === "mode") continue;  // the mode is the preset picked above
    const [s, nullable] = resolveSchema(raw);
    const kind = kindOf(s);
    const help = raw.description || s.description || "";
    if (kind === "section") {
      const unset = presetFlat[key] === null;
      out.push(el("details", { "data-section": key }, el("summary", {}, key, unset ? " (not used by this preset)" : ""),
        help ? el("p", { class: "help muted" }, help) : "", buildFields(s, key)));
      continue;
    }
    const value = presetFlat[key] !== undefined ? presetFlat[key] : s.default ?? null;
    out.push(el("div", { class: "field", "data-field": key },
      el("label", { for: `f-${key}` }, el("span", { class: "name" }, key),
        el("span", { class: "type", "data-type": kind }, boundsText(kind, s, nullable))),
      control(key, kind, s, nullable, value),
      el("div", {}, el("span", { class: "help" }, help), el("span", { class: "problem" }))));
  }
  return out;
}

// The value a control holds, typed as the schema says (undefined: not a valid value).
function valueOf(input) {
  const kind = input.dataset.kind, raw = input.value;
  if (kind === "boolean") return input.checked;
  if (raw === "" && input.dataset.nullable) return null;
  if (kind === "number" || kind === "integer") return raw === "" ? undefined : Number(raw);
  if (kind === "json") { try { return raw.trim() === "" ? null : JSON.parse(raw); } catch { return undefined; } }
  return raw;
}

// What the browser can tell before sending: type, bounds (exclusive ones included), JSON syntax.
function localProblem(input) {
  const v = valueOf(input), kind = input.dataset.kind;
  if (v === undefined) return kind === "json" ? "not valid JSON" : "a value is required";
  if (v === null || typeof v !== "number") return "";
  if (Number.isNaN(v)) return "not a number";
  if (kind === "integer" && !Number.isInteger(v)) return "must be a whole number";
  const d = input.dataset;
  if (input.min !== "" && (d.exclusiveMin !== undefined ? v <= Number(input.min) : v < Number(input.min)))
    return `must be ${d.exclusiveMin !== undefined ? "greater than" : "at least"} ${input.min}`;
  if (input.max !== "" && (d.exclusiveMax !== undefined ? v >= Number(input.max) : v > Number(input.max)))
    return `must be ${d.exclusiveMax !== undefined ? "less than" : "at most"} ${input.max}`;
  return "";
}

function flag(key, message, source) {
  const field = document.querySelector(`[data-field="${CSS.escape(key)}"]`);
  if (!field) return false;
  field.classList.toggle("invalid", Boolean(message));
  const box = field.querySelector(".problem");
  box.textContent = message;
  box.dataset.source = message ? source : "";
  if (message) field.closest("details")?.setAttribute("open", "");
  return true;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function refresh(input) {
  const key = input.dataset.key, v = valueOf(input);
  const field = input.closest(".field");
  field.classList.toggle("changed", v !== undefined && !same(v, presetFlat[key] ?? null));
  flag(key, localProblem(input), "browser");
  $("changed-count").textContent = `${document.querySelectorAll(".field.changed").length} changed from the preset`;
}

function changedOverrides() {
  const out = {};
  for (const input of document.querySelectorAll("#config-form [data-key]")) {
    if (input.closest(".field").classList.contains("changed")) out[input.dataset.key] = valueOf(input);
  }
  return out;
}

async function loadForm(mode) {
  const detail = await api(`/modes/${enc(mode)}`);
  formSchema = detail.config_schema;
  sectionKeys.clear();
  collectSections(formSchema);
  presetFlat = flattenConfig(detail.preset);
  $("mode-description").textContent = detail.preset.description;
  fill($("config-form"), buildFields(formSchema));
  for (const input of document.querySelectorAll("#config-form [data-key]")) {
    input.addEventListener(input.dataset.kind === "boolean" || input.tagName === "SELECT" ? "change" : "input", () => refresh(input));
  }
  $("config-form").dataset.mode = mode;
  $("changed-count").textContent = "0 changed from the preset";
}

PAGES.new = async (args, query) => {
  const modes = await modeOptions($("mode"), query.get("mode") || "usdt_market_neutral");
  if (!modes.some((m) => m.mode === $("mode").value)) $("mode").value = modes[0].mode;
  $("mode").addEventListener("change", () => {
    history.replaceState(null, "", `/ui/new?mode=${enc($("mode").value)}`);
    loadForm($("mode").value);
  });
  $("reset").addEventListener("click", () => loadForm($("mode").value));
  $("run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("errors").textContent = "";
    for (const f of document.querySelectorAll(".field .problem[data-source=server]")) flag(f.closest(".field").dataset.field, "", "");
    try {
      const created = await postJson("/backtests", { mode: $("mode").value, config_overrides: changedOverrides() });
      location.href = `/ui/runs/${enc(created.id)}`;  // the run's page follows it to the end
    } catch (err) {
      const detail = err.body?.detail;
      if (Array.isArray(detail)) {  // each problem at its field; the rest (rules between fields) above the form
        const rest = detail.filter((d) => !flag(d.field, `${d.message} (sent ${JSON.stringify(d.value)})`, "server"));
        $("errors").textContent = rest.map((d) => `${d.field}: ${JSON.stringify(d.value)} -> ${d.message}`).join("\n")
          || `${detail.length} problem(s): see the marked fields`;
      } else showProblems("errors", err);
    }
  });
  await loadForm($("mode").value);
};
