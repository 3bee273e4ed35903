// Herald's console: collections, documents with their history, command forms, live events and
// operations, each within the rights of whoever signed in. Everything shown is bound as text.

import { html } from "htm/preact";
import { render } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import * as api from "./api.js";
import { collectionsOf, columnsOf } from "./catalog.js";
import { SchemaForm } from "./forms.js";

const text = (value) => (value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

function Problem({ problem }) {
  if (!problem) return null;
  const detail = typeof problem === "string" ? problem : problem.detail || problem.title || JSON.stringify(problem);
  return html`<div class="problem" role="alert">${detail}</div>`;
}

function SignIn({ onSignedIn }) {
  const [login, setLogin] = useState(false);
  const [problem, setProblem] = useState(null);
  const [token, setToken] = useState("");
  const [form, setForm] = useState({ tenant: "", username: "", password: "" });
  useEffect(() => {
    api.loginAvailable().then(setLogin, () => setLogin(false));
  }, []);
  const withToken = (event) => {
    event.preventDefault();
    api.useToken(token);
    onSignedIn();
  };
  const withPassword = async (event) => {
    event.preventDefault();
    const refused = await api.signIn(form.tenant, form.username, form.password);
    if (refused) setProblem(refused);
    else onSignedIn();
  };
  const field = (name, type = "text") => html`<div class="field">
    <label for=${`login-${name}`}>${name}</label>
    <input id=${`login-${name}`} type=${type} value=${form[name]}
      autocomplete=${type === "password" ? "current-password" : "username"}
      onInput=${(e) => setForm({ ...form, [name]: e.currentTarget.value })} />
  </div>`;
  return html`<main class="signin">
    <h1>Herald console</h1>
    <${Problem} problem=${problem} />
    ${login && html`<form id="password-login" onSubmit=${withPassword}>
      <h2>Sign in</h2>
      ${field("tenant")} ${field("username")} ${field("password", "password")}
      <button type="submit">Sign in</button>
    </form>`}
    <form id="token-login" onSubmit=${withToken}>
      <h2>Use a token</h2>
      <div class="field">
        <label for="login-token">Bearer token or API key</label>
        <textarea id="login-token" rows="4" value=${token} onInput=${(e) => setToken(e.currentTarget.value)}></textarea>
      </div>
      <button type="submit">Use this token</button>
    </form>
    <p class="muted">The token is kept in this page's memory only: reloading signs out.</p>
  </main>`;
}

function Home({ collections }) {
  return html`<section>
    <h1>Collections</h1>
    <ul class="cards">
      ${[...collections.values()].map((c) => html`<li>
        <a href=${`#/c/${c.app}/${c.doc}`}>${c.name}</a>
        <small class="muted">${c.commands.length} commands</small>
      </li>`)}
    </ul>
  </section>`;
}

function listQuery(collection, state) {
  const params = new URLSearchParams();
  for (const [name, { op, value }] of Object.entries(state.filters)) {
    if (value !== "") params.append(name, `${op}.${value}`);
  }
  if (state.order) params.set("order", `${state.order}.${state.direction}`);
  if (state.q) params.set("q", state.q);
  params.set("limit", "20");
  if (state.cursor) params.set("cursor", state.cursor);
  return `${collection.path}?${params}`;
}

function ListPage({ collection }) {
  const columns = columnsOf(collection);
  const empty = { filters: {}, order: "", direction: "asc", q: "", cursor: null };
  const [query, setQuery] = useState(empty);
  const [draft, setDraft] = useState(empty);
  const [page, setPage] = useState(null);
  const [previous, setPrevious] = useState([]);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    setQuery(empty);
    setDraft(empty);
    setPrevious([]);
  }, [collection.name]);
  useEffect(() => {
    let live = true;
    api.request("GET", listQuery(collection, query)).then((answer) => {
      if (!live) return;
      if (answer.status === 200) {
        setPage(answer.body);
        setProblem(null);
      } else setProblem(answer.body);
    });
    return () => {
      live = false;
    };
  }, [collection.name, query]);
  const apply = (event) => {
    event.preventDefault();
    setPrevious([]);
    setQuery({ ...draft, cursor: null });
  };
  const setFilter = (name, part, value) => {
    const filter = draft.filters[name] || { op: collection.filters.find((f) => f.name === name).operators[0], value: "" };
    setDraft({ ...draft, filters: { ...draft.filters, [name]: { ...filter, [part]: value } } });
  };
  return html`<section>
    <header class="row">
      <h1>${collection.name}</h1>
      <a class="button" href=${`#/c/${collection.app}/${collection.doc}/new`}>New</a>
    </header>
    <form class="query" onSubmit=${apply}>
      ${collection.searchable && html`<div class="field"><label for="list-q">search</label>
        <input id="list-q" value=${draft.q} onInput=${(e) => setDraft({ ...draft, q: e.currentTarget.value })} /></div>`}
      ${collection.filters.map((f) => html`<div class="field filter">
        <label for=${`filter-${f.name}`}>${f.name}</label>
        <select aria-label=${`${f.name} operator`} value=${(draft.filters[f.name] || {}).op || f.operators[0]}
          onChange=${(e) => setFilter(f.name, "op", e.currentTarget.value)}>
          ${f.operators.map((op) => html`<option value=${op}>${op}</option>`)}
        </select>
        <input id=${`filter-${f.name}`} value=${(draft.filters[f.name] || {}).value || ""}
          onInput=${(e) => setFilter(f.name, "value", e.currentTarget.value)} />
      </div>`)}
      ${collection.sortable.length > 0 && html`<div class="field"><label for="list-order">order</label>
        <select id="list-order" value=${draft.order} onChange=${(e) => setDraft({ ...draft, order: e.currentTarget.value })}>
          <option value="">newest last</option>
          ${collection.sortable.map((name) => html`<option value=${name}>${name}</option>`)}
        </select>
        <select aria-label="direction" value=${draft.direction} onChange=${(e) => setDraft({ ...draft, direction: e.currentTarget.value })}>
          <option value="asc">ascending</option><option value="desc">descending</option>
        </select></div>`}
      <button type="submit">Apply</button>
    </form>
    <${Problem} problem=${problem} />
    ${page && html`<table class="documents">
      <thead><tr><th>id</th>${columns.map((c) => html`<th>${c}</th>`)}<th>updated</th></tr></thead>
      <tbody>${page.data.map((row) => html`<tr>
        <td><a href=${`#/c/${collection.app}/${collection.doc}/${row.id}`}>${row.id.slice(0, 8)}…</a></td>
        ${columns.map((c) => html`<td>${text(row[c])}</td>`)}
        <td>${text(row.updated_at)}</td>
      </tr>`)}</tbody>
    </table>
    ${page.data.length === 0 && html`<p class="muted">Nothing matches.</p>`}
    <nav class="row pages">
      <button disabled=${previous.length === 0} onClick=${() => {
        const back = previous.slice(0, -1);
        setQuery({ ...query, cursor: previous[previous.length - 1] });
        setPrevious(back);
      }}>Previous</button>
      <button disabled=${!page.has_more} onClick=${() => {
        setPrevious([...previous, query.cursor]);
        setQuery({ ...query, cursor: page.next_cursor });
      }}>Next</button>
    </nav>`}
  </section>`;
}

/** Submits a command and answers its problem, or navigates on success. */
async function send(method, path, body, headers, done) {
  const answer = await api.request(method, path, { body, headers: { prefer: "wait=10", ...headers } });
  if (answer.status >= 200 && answer.status < 300) {
    done(answer);
    return null;
  }
  return typeof answer.body === "object" ? answer.body : { detail: String(answer.body) };
}

function CreatePage({ collection }) {
  const [done, setDone] = useState(null);
  const back = `#/c/${collection.app}/${collection.doc}`;
  return html`<section>
    <h1>New ${collection.name}</h1>
    ${done && html`<p class="notice">Created.</p>`}
    <${SchemaForm} id="create-form" schema=${collection.create} label="Create" submit=${(values) =>
      send("POST", collection.path, values, {}, (answer) => {
        setDone(answer.body);
        const position = answer.headers.get("herald-position");
        location.hash = `${back}/${answer.body.id || ""}${position ? `?at=${encodeURIComponent(position)}` : ""}`;
      })} />
  </section>`;
}

function Timeline({ history }) {
  if (!history) return null;
  return html`<ol class="timeline">
    ${history.data.map((entry) => html`<li>
      <div class="row"><strong>v${entry.version}</strong> <span>${entry.type}</span>
        <span class="muted">${entry.time}</span></div>
      <div class="muted">by ${text(entry.actor && entry.actor.sub)} (${text(entry.actor && entry.actor.roles)}), command ${text(entry.command_id)}</div>
      <table class="changes"><tbody>
        ${Object.entries(entry.changes).map(([field, change]) => html`<tr>
          <td>${field}</td><td class="before">${text(change.before)}</td><td>→</td><td class="after">${text(change.after)}</td>
        </tr>`)}
      </tbody></table>
    </li>`)}
  </ol>`;
}

function DocumentPage({ collection, id, at }) {
  const base = `${collection.path}/${id}`;
  const [document, setDocument] = useState(null);
  const [etag, setEtag] = useState(null);
  const [history, setHistory] = useState(null);
  const [asOf, setAsOf] = useState("");
  const [problem, setProblem] = useState(null);
  const [position, setPosition] = useState(at);
  const [editing, setEditing] = useState(false);
  const load = async () => {
    const suffix = asOf ? `?as_of=${asOf}` : position ? `?min_position=${encodeURIComponent(position)}` : "";
    const [read, past] = await Promise.all([
      api.request("GET", `${base}${suffix}`),
      api.request("GET", `${base}/history?limit=200`),
    ]);
    if (read.status === 200) {
      setDocument(read.body);
      setEtag(read.headers.get("etag"));
      setProblem(null);
    } else setProblem(read.body);
    setHistory(past.status === 200 ? past.body : null);
  };
  useEffect(() => {
    load();
  }, [id, asOf, position]);
  const after = (answer) => {
    setEditing(false);
    setPosition(answer.headers.get("herald-position"));
  };
  const fields = document ? Object.entries(document).filter(([name]) => name !== "id") : [];
  const commands = collection.commands.filter((c) => !c.onCollection);
  return html`<section>
    <header class="row">
      <h1>${collection.name} <small class="muted">${id}</small></h1>
      <a href=${`#/c/${collection.app}/${collection.doc}`}>back to the list</a>
    </header>
    <${Problem} problem=${problem} />
    ${document && html`<div class="row">
      <label for="as-of">as of version</label>
      <select id="as-of" value=${asOf} onChange=${(e) => setAsOf(e.currentTarget.value)}>
        <option value="">current</option>
        ${(history ? history.data : []).map((entry) => html`<option value=${String(entry.version)}>${entry.version}</option>`)}
      </select>
      ${asOf && html`<span class="notice">as it was at version ${asOf}</span>`}
    </div>
    <dl class="document">${fields.map(([name, value]) => html`<dt>${name}</dt><dd>${text(value)}</dd>`)}</dl>`}
    ${document && !asOf && html`<div class="actions">
      <button onClick=${() => setEditing(!editing)}>${editing ? "Cancel" : "Edit"}</button>
      <button class="danger" onClick=${() => send("DELETE", base, undefined, etag ? { "if-match": etag } : {}, () => {
        location.hash = `#/c/${collection.app}/${collection.doc}`;
      }).then(setProblem)}>Archive</button>
    </div>
    ${editing && collection.patch && html`<${SchemaForm} id="edit-form" schema=${collection.patch} initial=${document} patch
      label="Save" submit=${(values) => send("PATCH", base, values, etag ? { "if-match": etag } : {}, after)} />`}
    ${commands.map((command) => html`<details class="command">
      <summary>${command.name} <small class="muted">${command.summary}</small></summary>
      <${SchemaForm} id=${`command-${command.name}`} schema=${command.params} label=${command.name}
        submit=${(values) => send("POST", `${base}/${command.name}`, values, etag ? { "if-match": etag } : {}, after)} />
    </details>`)}`}
    <h2>History</h2>
    <${Timeline} history=${history} />
  </section>`;
}

function EventsPage({ collections }) {
  const [scope, setScope] = useState("");
  const [types, setTypes] = useState("");
  const [from, setFrom] = useState("now");
  const [running, setRunning] = useState(false);
  const [status, setStatus] = useState("not connected");
  const [received, setReceived] = useState([]);
  const stop = useRef(null);
  useEffect(() => () => stop.current && stop.current.abort(), []);
  const connect = async () => {
    const controller = new AbortController();
    stop.current = controller;
    setRunning(true);
    const path = scope ? `/v1/${scope}/events` : "/v1/events";
    const query = types.trim() ? `?types=${encodeURIComponent(types.trim())}` : "";
    let last = from === "start" ? "AAAAAAAAAAAAAAAAAAAAAA" : null;
    let wait = 1;
    let attempts = 0;
    while (!controller.signal.aborted) {
      try {
        setStatus(attempts++ > 0 && last ? `connected, resumed after ${last}` : "connected");
        for await (const message of api.events(`${path}${query}`, { lastEventId: last, signal: controller.signal })) {
          wait = 1;
          if (message.id) last = message.id;
          if (message.event === "reauth") throw new Error("the token expired");
          if (message.event === "lagged") setStatus("fell behind; resuming");
          let data;
          try {
            data = JSON.parse(message.data);
          } catch {
            data = message.data;
          }
          setReceived((list) => [{ id: message.id, event: message.event, data }, ...list].slice(0, 200));
        }
      } catch (error) {
        if (controller.signal.aborted) break;
        setStatus(`disconnected (${error.message}); reconnecting in ${wait} s`);
      }
      if (controller.signal.aborted) break;
      await new Promise((resume) => setTimeout(resume, wait * 1000));
      wait = Math.min(wait * 2, 10);
    }
    setRunning(false);
    setStatus("not connected");
  };
  return html`<section>
    <h1>Live events</h1>
    <form class="query" onSubmit=${(e) => {
      e.preventDefault();
      if (running) stop.current.abort();
      else connect();
    }}>
      <div class="field"><label for="events-scope">collection</label>
        <select id="events-scope" value=${scope} disabled=${running} onChange=${(e) => setScope(e.currentTarget.value)}>
          <option value="">every collection</option>
          ${[...collections.values()].map((c) => html`<option value=${`${c.app}/${c.doc}`}>${c.name}</option>`)}
        </select></div>
      <div class="field"><label for="events-types">types</label>
        <input id="events-types" placeholder="petstore.product.created,…" value=${types} disabled=${running}
          onInput=${(e) => setTypes(e.currentTarget.value)} /></div>
      <div class="field"><label for="events-from">from</label>
        <select id="events-from" value=${from} disabled=${running} onChange=${(e) => setFrom(e.currentTarget.value)}>
          <option value="now">now</option><option value="start">the start of the log</option>
        </select></div>
      <button type="submit" id="events-toggle">${running ? "Disconnect" : "Connect"}</button>
    </form>
    <p class="muted" id="events-status">${status}</p>
    <ol class="events">${received.map((message) => html`<li>
      <div class="row"><strong>${message.event}</strong><span class="muted">${text(message.data && message.data.time)}</span></div>
      <code>${text(message.data && message.data.data)}</code>
      <div class="muted">by ${text(message.data && message.data.actor && message.data.actor.sub)}, document ${text(message.data && message.data.document_id)}</div>
    </li>`)}</ol>
  </section>`;
}

function parseMetrics(body) {
  const samples = [];
  for (const line of String(body).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-z_:]+)(\{[^}]*\})?\s+([^\s]+)/.exec(line);
    if (match) samples.push({ name: match[1], labels: match[2] || "", value: Number(match[3]) });
  }
  return samples;
}

const GLANCE = [
  ["herald_http_connections_open", "HTTP connections open"],
  ["herald_projection_lag_events", "projection lag (events)"],
  ["herald_projection_lag_seconds", "projection lag (seconds)"],
  ["herald_relay_lag_events", "relay lag (events)"],
  ["herald_parked_events", "parked events"],
  ["herald_task_runs", "task runs by state"],
  ["herald_role_down", "roles down"],
  ["herald_event_streams_open", "event streams open"],
  ["herald_api_version_calls_total", "calls per API version"],
];

function OpsPage() {
  const [projections, setProjections] = useState(null);
  const [dead, setDead] = useState(null);
  const [metrics, setMetrics] = useState([]);
  const [problem, setProblem] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    Promise.all([
      api.request("GET", "/v1/admin/projections"),
      api.request("GET", "/v1/admin/tasks/dead?limit=50"),
      api.request("GET", "/metrics"),
    ]).then(([views, tasks, scraped]) => {
      if (!live) return;
      if (views.status !== 200) {
        setProblem(views.status === 403 ? "Operations are for the operators (admins of the operator tenant)." : views.body);
        return;
      }
      setProjections(views.body.data);
      setDead(tasks.status === 200 ? tasks.body.data : []);
      setMetrics(scraped.status === 200 ? parseMetrics(scraped.body) : []);
    });
    return () => {
      live = false;
    };
  }, [tick]);
  const building = projections && projections.some((p) => p.state === "building");
  useEffect(() => {
    if (!building) return undefined;
    const timer = setTimeout(() => setTick((n) => n + 1), 1000);
    return () => clearTimeout(timer);
  }, [building, tick]);
  const rebuild = async (name) => {
    const answer = await api.request("POST", `/v1/admin/projections/${encodeURIComponent(name)}/rebuild`);
    if (answer.status !== 202) setProblem(answer.body);
    setTick((n) => n + 1);
  };
  const retry = async (id) => {
    const answer = await api.request("POST", `/v1/admin/tasks/dead/${encodeURIComponent(id)}/retry`);
    if (answer.status !== 202) setProblem(answer.body);
    setTick((n) => n + 1);
  };
  if (problem && !projections) return html`<section><h1>Operations</h1><${Problem} problem=${problem} /></section>`;
  return html`<section>
    <h1>Operations</h1>
    <${Problem} problem=${problem} />
    <h2>Views</h2>
    <table class="projections" id="projections">
      <thead><tr><th>view</th><th>version</th><th>state</th><th>lag</th><th>progress</th><th></th></tr></thead>
      <tbody>${(projections || []).map((p) => html`<tr key=${`${p.name}.${p.version}`} data-state=${p.state}>
        <td>${p.name}</td><td>${p.version}</td><td class="state">${p.state}</td>
        <td>${text(p.lag && p.lag.events)} events, ${text(p.lag && p.lag.seconds)} s</td>
        <td>${p.rebuild ? html`<progress max="100" value=${p.rebuild.percent}></progress> ${p.rebuild.done}/${p.rebuild.total}` : text(p.events_applied)}</td>
        <td>${p.state === "active" && html`<button data-rebuild=${p.name} onClick=${() => rebuild(p.name)} disabled=${building}>Rebuild</button>`}</td>
      </tr>`)}</tbody>
    </table>
    <h2>Dead tasks</h2>
    ${dead && dead.length === 0 && html`<p class="muted">None.</p>`}
    ${dead && dead.length > 0 && html`<table><thead><tr><th>task</th><th>tenant</th><th>attempts</th><th>error</th><th></th></tr></thead>
      <tbody>${dead.map((run) => html`<tr>
        <td>${run.name}</td><td>${run.tenant}</td><td>${run.attempts}/${run.max_attempts}</td><td>${text(run.last_error)}</td>
        <td><button onClick=${() => retry(run.id)}>Retry</button></td>
      </tr>`)}</tbody></table>`}
    <h2>At a glance</h2>
    <table class="metrics"><tbody>
      ${GLANCE.map(([name, label]) => {
        const found = metrics.filter((m) => m.name === name);
        return html`<tr><th>${label}</th><td>${found.length === 0 ? "—" : found.map((m) => html`<div>${m.labels} ${m.value}</div>`)}</td></tr>`;
      })}
    </tbody></table>
    <button onClick=${() => setTick((n) => n + 1)}>Refresh</button>
  </section>`;
}

function App() {
  const [session, setSession] = useState(api.current());
  const [description, setDescription] = useState(null);
  const route = useRoute();
  useEffect(() => {
    if (!session) return;
    api.request("GET", "/v1/openapi.json", { anonymous: true }).then((answer) => setDescription(answer.body));
  }, [session]);
  const collections = useMemo(() => (description ? collectionsOf(description) : new Map()), [description]);
  if (!session) return html`<${SignIn} onSignedIn=${() => setSession(api.current())} />`;
  const [page, app, doc, id] = route;
  const collection = page === "c" ? collections.get(`${app}/${doc}`) : null;
  const [documentId, query] = (id || "").split("?");
  const at = new URLSearchParams(query || "").get("at");
  let content;
  if (!description) content = html`<p class="muted">Loading…</p>`;
  else if (page === "events") content = html`<${EventsPage} collections=${collections} />`;
  else if (page === "ops") content = html`<${OpsPage} />`;
  else if (page === "c" && !collection) content = html`<${Problem} problem="No such collection." />`;
  else if (collection && documentId === "new") content = html`<${CreatePage} collection=${collection} />`;
  else if (collection && documentId) content = html`<${DocumentPage} collection=${collection} id=${documentId} at=${at} />`;
  else if (collection) content = html`<${ListPage} collection=${collection} />`;
  else content = html`<${Home} collections=${collections} />`;
  const claims = session.claims || {};
  return html`<div class="layout">
    <nav class="top">
      <a href="#/">Collections</a>
      <a href="#/events">Live events</a>
      <a href="#/ops">Operations</a>
      <span class="who">${text(claims.sub)}${claims.tid ? ` @ ${claims.tid}` : ""} ${text(claims.roles)}</span>
      <button onClick=${async () => {
        await api.signOut();
        setSession(null);
      }}>Sign out</button>
    </nav>
    <main>${content}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("console"));
