// What the API offers, read from its OpenAPI description (generated from the YAML): the
// collections, their fields, list parameters and commands.

const ROUTES = new Set(["restore", "history", "events"]);
const NOT_FILTERS = new Set(["order", "q", "select", "limit", "cursor", "Prefer", "min_position"]);

export function resolve(description, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 10) {
    const name = decodeURIComponent(schema.$ref.replace("#/components/schemas/", ""));
    schema = description.components.schemas[name];
  }
  return schema || {};
}

function bodySchema(description, operation) {
  const content = operation && operation.requestBody && operation.requestBody.content;
  const json = content && content["application/json"];
  return json ? resolve(description, json.schema) : null;
}

/** The collections of the description, by `app/doc`. */
export function collectionsOf(description) {
  const collections = new Map();
  for (const [path, item] of Object.entries(description.paths)) {
    const match = /^\/v1\/([a-z][a-z0-9_]*)\/([a-z][a-z0-9_]*)$/.exec(path);
    if (!match || !item.get || !item.post || !item.get.parameters) continue;
    const [, app, doc] = match;
    const name = `${app}.${doc}`;
    const parameters = item.get.parameters.filter((p) => p.in === "query");
    const order = parameters.find((p) => p.name === "order");
    collections.set(`${app}/${doc}`, {
      app,
      doc,
      name,
      path,
      document: resolve(description, { $ref: `#/components/schemas/${name}` }),
      create: bodySchema(description, item.post),
      patch: null,
      filters: parameters
        .filter((p) => !NOT_FILTERS.has(p.name))
        .map((p) => ({ name: p.name, operators: p["x-herald-operators"] || ["eq"] })),
      sortable: (order && order["x-herald-sortable"]) || [],
      searchable: parameters.some((p) => p.name === "q"),
      commands: [],
    });
  }
  for (const [path, item] of Object.entries(description.paths)) {
    const onDocument = /^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/\{id\}\/([a-z][a-z0-9_]*)$/.exec(path);
    const onCollection = /^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/([a-z][a-z0-9_]*)$/.exec(path);
    const documentPath = /^\/v1\/([a-z0-9_]+)\/([a-z0-9_]+)\/\{id\}$/.exec(path);
    if (documentPath && collections.has(`${documentPath[1]}/${documentPath[2]}`) && item.patch) {
      collections.get(`${documentPath[1]}/${documentPath[2]}`).patch = bodySchema(description, item.patch);
    }
    const command = onDocument || onCollection;
    if (!command || !item.post || ROUTES.has(command[3])) continue;
    const collection = collections.get(`${command[1]}/${command[2]}`);
    if (!collection) continue;
    collection.commands.push({
      name: command[3],
      onCollection: !onDocument,
      summary: item.post.summary || "",
      params: bodySchema(description, item.post) || { type: "object", properties: {} },
    });
  }
  return collections;
}

/** The fields a table shows: the document's top-level scalar fields, first ones first. */
export function columnsOf(collection, most = 5) {
  const properties = (collection.document && collection.document.properties) || {};
  const managed = new Set(["id", "version", "created_at", "created_by", "updated_at", "updated_by"]);
  return Object.entries(properties)
    .filter(([name, schema]) => !managed.has(name) && !["object", "array"].includes(typeOf(schema)))
    .map(([name]) => name)
    .slice(0, most);
}

/** A JSON Schema's main type (`["string", "null"]` is a string). */
export function typeOf(schema) {
  if (!schema) return "string";
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== "null") || "string";
  if (schema.type) return schema.type;
  if (schema.enum) return typeof schema.enum[0] === "number" ? "number" : "string";
  return "string";
}
