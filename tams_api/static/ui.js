// What a TAMS store holds, for people: its sources and flows, a flow's segments on its timeline, a player of the
// flow's HLS playlist (/x-tams/flows/{id}/playlist.m3u8), and the webhooks and delete requests, read only. It asks
// the API with the visitor's credentials (a login form when the API answers 401) and loads nothing from elsewhere.
"use strict";

const base = new URL(".", location.href); // the API's root: the page is its /ui, wherever a proxy serves it
const view = document.getElementById("view");
const SEGMENTS_SHOWN = 1000;
let credentials = sessionStorage.getItem("tams-authorization");
let player = null;

class Unauthorized extends Error {}

async function api(path) {
  const headers = credentials ? { Authorization: credentials } : {};
  const response = await fetch(new URL(path, base), { headers, credentials: "omit" });
  if (response.status === 401) {
    askForCredentials(response.headers.get("WWW-Authenticate") || "");
    throw new Unauthorized("this store needs credentials");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status} ${body.type}: ${body.summary}`);
  return { body, next: response.headers.get("X-Paging-NextKey") };
}

function askForCredentials(challenge) {
  const form = document.getElementById("login");
  const schemes = challenge.toLowerCase();
  for (const label of form.querySelectorAll("label")) {
    label.hidden = !schemes.includes(label.dataset.scheme);
  }
  document.getElementById("login-why").textContent = credentials
    ? "These credentials were refused: try others." : "This store asks who you are.";
  form.hidden = false;
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const token = form.elements.token.value;
  credentials = token && !form.querySelector("[data-scheme=bearer]").hidden
    ? `Bearer ${token}` : `Basic ${btoa(`${form.elements.user.value}:${form.elements.password.value}`)}`;
  sessionStorage.setItem("tams-authorization", credentials);
  form.hidden = true;
  route();
});

// -- small helpers --------------------------------------------------------------------------------------------------

function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick") made.addEventListener("click", value);
    else made.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) made.append(child instanceof Node ? child : String(child));
  }
  return made;
}

function table(headings, rows) {
  return element("table", {}, element("thead", {}, element("tr", {}, headings.map((h) => element("th", {}, h)))),
    element("tbody", {}, rows));
}

function tags(values) {
  return Object.entries(values || {}).map(([name, value]) =>
    element("span", { class: "tag" }, `${name}: ${Array.isArray(value) ? value.join(", ") : value}`));
}

function short(format) {
  return (format || "").replace("urn:x-nmos:format:", "");
}

// A TAMS timestamp ("seconds:nanoseconds") in seconds; timeranges as [start, end) in seconds (null: unbounded).
function seconds(timestamp) {
  const negative = timestamp.startsWith("-");
  const [whole, nanos] = timestamp.replace("-", "").split(":");
  return (negative ? -1 : 1) * (Number(whole) + Number(nanos) / 1e9);
}

function bounds(timerange) {
  const match = /^[[(]?([^_\])]*)(?:_([^\])]*))?[\])]?$/.exec(timerange || "");
  if (!match || timerange === "()") return null;
  const start = match[1] ? seconds(match[1]) : null;
  const end = match[2] === undefined ? start : (match[2] ? seconds(match[2]) : null);
  return { start, end };
}

function clock(value) {
  if (value === null || value === undefined) return "…";
  const date = new Date(value * 1000);
  return value > 86400 * 365 ? date.toISOString().replace(".000Z", "Z") : `${value.toFixed(3)} s`;
}

function showProblem(error) {
  const problem = document.getElementById("problem");
  if (error instanceof Unauthorized) return;
  problem.textContent = error.message;
  problem.hidden = false;
}

// -- the views ------------------------------------------------------------------------------------------------------

async function flowsView(page) {
  const { body, next } = await api(`flows?limit=100${page ? `&page=${encodeURIComponent(page)}` : ""}`);
  const rows = body.map((flow) => element("tr", { class: "link", "data-flow": flow.id, onclick: () => {
    location.hash = `#/flows/${flow.id}`;
  } }, element("td", {}, flow.label || element("span", { class: "muted" }, "(no label)"), element("div", { class: "id" },
    flow.id)), element("td", {}, short(flow.format)), element("td", {}, flow.codec || ""),
  element("td", {}, flow.container || ""), element("td", {}, tags(flow.tags))));
  view.replaceChildren(element("h2", {}, "Flows"), body.length ? table(["Flow", "Format", "Codec", "Container", "Tags"],
    rows) : element("p", { class: "muted" }, "No flows yet."),
  next ? element("p", {}, element("a", { href: `#/flows?page=${encodeURIComponent(next)}` }, "More flows")) : null);
}

async function sourcesView() {
  const { body } = await api("sources?limit=100");
  const rows = body.map((source) => element("tr", {}, element("td", {}, source.label || "",
    element("div", { class: "id" }, source.id)), element("td", {}, short(source.format)),
  element("td", {}, tags(source.tags))));
  view.replaceChildren(element("h2", {}, "Sources"), table(["Source", "Format", "Tags"], rows));
}

async function flowView(flowId) {
  const [{ body: flow }, { body: segments }] = await Promise.all([
    api(`flows/${flowId}?include_timerange=true`), api(`flows/${flowId}/segments?limit=${SEGMENTS_SHOWN}`)]);
  const essence = flow.essence_parameters || {};
  const details = element("dl");
  for (const [name, value] of [["Label", flow.label || "(none)"], ["Id", element("code", {}, flow.id)],
    ["Source", element("code", {}, flow.source_id)], ["Format", short(flow.format)], ["Codec", flow.codec || ""],
    ["Container", flow.container || ""], ["Timerange", element("code", {}, flow.timerange || "")],
    ["Essence", element("code", {}, JSON.stringify(essence))], ["Tags", element("span", {}, tags(flow.tags))]]) {
    details.append(element("dt", {}, name), element("dd", {}, value));
  }
  view.replaceChildren(element("h2", {}, flow.label || flow.id), element("div", { class: "panel" }, details),
    timeline(flow, segments), playerPanel(flow));
}

function timeline(flow, segments) {
  const span = bounds(flow.timerange);
  const panel = element("div", { class: "panel", id: "timeline" }, element("h2", {}, `Segments (${segments.length}` +
    `${segments.length === SEGMENTS_SHOWN ? ", the first shown" : ""})`));
  if (!span || span.start === null || !segments.length) {
    panel.append(element("p", { class: "muted" }, "No segments."));
    return panel;
  }
  const length = Math.max(span.end - span.start, 1e-9);
  const bar = element("div", { class: "timeline", title: flow.timerange });
  let gaps = 0;
  let previousEnd = null;
  for (const segment of segments) {
    const { start, end } = bounds(segment.timerange);
    if (previousEnd !== null && start > previousEnd + 1e-9) gaps += 1;
    previousEnd = end;
    bar.append(element("div", { class: "segment", title: segment.timerange,
      style: `left: ${((start - span.start) / length) * 100}%; width: ${((end - start) / length) * 100}%` }));
  }
  panel.append(bar, element("div", { class: "timeline-scale" }, element("span", {}, clock(span.start)),
    element("span", {}, clock(span.end))), element("p", { class: "legend" },
    element("span", { class: "swatch", style: "background: var(--accent)" }), "media",
    element("span", { class: "swatch", style: "background: #fbe9ea" }), `no media (${gaps} gap${gaps === 1 ? "" : "s"})`));
  return panel;
}

function playerPanel(flow) {
  const kind = short(flow.format);
  const collection = (flow.flow_collection || []).length > 0;
  if (!["video", "audio", "multi"].includes(kind) && !collection) return null;
  const playlist = new URL(`x-tams/flows/${flow.id}/${collection ? "master" : "playlist"}.m3u8`, base).href;
  const media = element(kind === "audio" ? "audio" : "video", { controls: "", id: "player", preload: "auto" });
  const panel = element("div", { class: "panel" }, element("h2", {}, "Play"), media,
    element("p", { class: "muted" }, "Playlist: ", element("code", {}, playlist)),
    element("p", { class: "muted" }, "Also in VLC or Safari, or ", element("code", {},
      `ffplay -extension_picky 0 "${playlist}"`), " (with the API's credentials, if it asks for any)."));
  if (window.Hls && Hls.isSupported()) {
    player = new Hls({
      // The playlists are API routes and take the visitor's credentials; media URLs are presigned and take none.
      xhrSetup: (xhr, url) => {
        if (credentials && url.startsWith(new URL("x-tams/", base).href)) xhr.setRequestHeader("Authorization", credentials);
      },
    });
    player.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) showProblem(new Error(`the player stopped: ${data.details}`));
    });
    player.loadSource(playlist);
    player.attachMedia(media);
  } else {
    media.src = playlist; // Safari plays HLS itself
  }
  return panel;
}

async function webhooksView() {
  const { body } = await api("service/webhooks?limit=100");
  const rows = body.map((hook) => element("tr", {}, element("td", {}, element("code", {}, hook.url)),
    element("td", {}, (hook.events || []).join(", ")), element("td", {}, hook.status || ""),
    element("td", {}, hook.error ? hook.error.summary : "")));
  view.replaceChildren(element("h2", {}, "Webhooks"), rows.length ? table(["URL", "Events", "Status", "Error"], rows)
    : element("p", { class: "muted" }, "No webhooks."));
}

async function deletionsView() {
  const { body } = await api("flow-delete-requests");
  const rows = body.map((request) => element("tr", {}, element("td", {}, element("code", {}, request.id)),
    element("td", {}, element("code", {}, request.flow_id)), element("td", {}, request.timerange_to_delete || ""),
    element("td", {}, request.status), element("td", {}, request.error ? request.error.summary : "")));
  view.replaceChildren(element("h2", {}, "Delete requests"), rows.length
    ? table(["Request", "Flow", "Timerange", "Status", "Error"], rows)
    : element("p", { class: "muted" }, "No delete requests."));
}

async function route() {
  document.getElementById("problem").hidden = true;
  if (player) { player.destroy(); player = null; }
  const [path, query] = (location.hash.slice(1) || "/flows").split("?");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", path.startsWith(link.getAttribute("href").slice(1)));
  }
  try {
    const flow = /^\/flows\/([0-9a-f-]{36})$/.exec(path);
    if (flow) await flowView(flow[1]);
    else if (path === "/sources") await sourcesView();
    else if (path === "/webhooks") await webhooksView();
    else if (path === "/deletions") await deletionsView();
    else await flowsView(new URLSearchParams(query).get("page"));
    const { body: service } = await api("service");
    document.getElementById("service").textContent = `${service.name || "TAMS"} · API ${service.api_version}`;
  } catch (error) {
    showProblem(error);
  }
}

window.addEventListener("hashchange", route);
route();
