// The studio: a small page over the /v1 API. Progress arrives as server-sent events; nothing is polled.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
let current = null;   // the film shown
let stream = null;    // its EventSource

async function api(path, options = {}) {
  const init = {credentials: "same-origin", ...options};
  if (options.body !== undefined) {
    init.headers = {"Content-Type": "application/json"};
    init.body = JSON.stringify(options.body);
  }
  const r = await fetch(path, init);
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) {
    const d = data?.detail;
    throw new Error(typeof d === "string" ? d : Array.isArray(d) ? d.map((e) => e.msg).join("; ") : r.statusText);
  }
  return data;
}

function fileUrl(id, path) { return `/v1/films/${id}/files/${path.split("/").map(encodeURIComponent).join("/")}`; }

// --- past runs and the review queue ----------------------------------------------------------------------------
async function loadRuns() {
  const films = await api("/v1/films");
  const ul = $("#runs");
  ul.replaceChildren();
  if (!films.length) { ul.append(Object.assign(document.createElement("li"), {textContent: t("noRuns")})); }
  for (const f of films) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = `${f.brief.slice(0, 60)} · ${tStatus(f.status)}` + (f.resumable ? ` · ${t("resumable")}` : "") +
      (f.chat ? ` · ${t("chatMark")}` : "");
    b.addEventListener("click", () => openFilm(f.id));
    if (current && current.id === f.id) li.setAttribute("aria-current", "true");
    li.append(b);
    ul.append(li);
  }
}

async function loadReview() {
  const items = await api("/v1/review");
  const ul = $("#review");
  ul.replaceChildren();
  if (!items.length) { ul.append(Object.assign(document.createElement("li"), {textContent: t("nothingToReview")})); }
  for (const item of items) {
    const image = item.kind === "image";  // a catalogue's image: SKU, scene and platform instead of a shot
    const li = document.createElement("li");
    li.dataset.kind = item.kind;
    const img = Object.assign(document.createElement("img"), {
      src: item.url || fileUrl(item.film_id, item.path), alt: image ? `${item.sku} ${item.scene} ${item.platform}` : item.shot_id, width: 120});
    const text = document.createElement("div");
    const what = image ? `SKU ${item.sku} · ${item.scene} · ${item.platform}` : `${item.shot_id} ${t("take")} ${item.take}`;
    text.textContent = `${what} · ${t("grade")} ${item.grade}` + (item.decision ? ` · ${item.decision}` : "");
    const reasons = document.createElement("ul");
    reasons.className = "reasons";
    for (const reason of item.issues) reasons.append(Object.assign(document.createElement("li"), {textContent: reason}));
    const note = Object.assign(document.createElement("input"), {placeholder: t("notePh")});
    const row = document.createElement("div");
    row.className = "row";
    for (const [action, label] of [["approve", "reviewApprove"], ["reject", "reviewReject"], ["redo", "reviewRedo"]]) {
      const b = Object.assign(document.createElement("button"), {type: "button", textContent: t(label)});
      b.addEventListener("click", async () => {
        try {
          if (image) {
            await api(`/v1/review/${item.film_id}/images`, {method: "POST",
              body: {sku: item.sku, scene: item.scene, platform: item.platform, action, note: note.value}});
          } else {
            await api(`/v1/review/${item.film_id}/shots/${item.shot}`, {method: "POST", body: {action, note: note.value}});
          }
          loadReview();
          if (action === "redo" && !image) openFilm(item.film_id);
        } catch (e) { text.textContent = e.message; }
      });
      row.append(b);
    }
    li.append(img, text, reasons, note, row);
    ul.append(li);
  }
}

// --- one film --------------------------------------------------------------------------------------------------
function setProgress(status, progress) {
  const pct = Math.round((progress || 0) * 100);
  $("#progress").setAttribute("aria-valuenow", String(pct));
  $("#progress-bar").style.width = pct + "%";
  $("#progress-text").textContent = pct + "%";
  $("#status").textContent = tStatus(status);
  $("#status").dataset.status = status;
  $("#approve").hidden = status !== "waiting_approval";
  $("#cancel").hidden = !["queued", "planning", "shooting", "cutting"].includes(status);
  $("#resume").hidden = status !== "failed";
}

async function openFilm(id) {
  if (stream) { stream.close(); stream = null; }
  $("#events").replaceChildren();
  $("#chat-log").replaceChildren();
  await refresh(id);
  listen(id);
  loadRuns();
  try {
    for (const m of await api(`/v1/films/${id}/messages`)) addChat(m.role === "user" ? "you" : "director", m.text);
  } catch { /* a film without a chat yet */ }
}

async function refresh(id) {
  const f = await api(`/v1/films/${id}`);
  current = f;
  $("#film").hidden = false;
  $("#film-h").textContent = f.brief.slice(0, 120);
  setProgress(f.status, f.progress);
  $("#film-error").textContent = f.error || "";
  await renderBoard(f);
  renderDelivery(f);
}

function listen(id) {
  stream = new EventSource(`/v1/films/${id}/events`);
  stream.addEventListener("progress", (e) => {
    const ev = JSON.parse(e.data);
    setProgress(ev.status, ev.progress);
    const li = document.createElement("li");
    li.textContent = ev.message;
    $("#events").append(li);
    $("#events").scrollTop = 1e9;
    if (["waiting_approval", "done", "failed"].includes(ev.status) && current?.id === id) refresh(id);
  });
  stream.addEventListener("end", (e) => {
    const ev = JSON.parse(e.data);
    setProgress(ev.status, ev.progress);
    stream.close();
    stream = null;
    refresh(id);
    loadRuns();
    loadReview();
  });
}

async function renderBoard(f) {
  const board = $("#board");
  board.replaceChildren();
  const shots = f.storyboard?.shots || [];
  const editable = f.status === "waiting_approval";
  const done = f.status === "done";
  for (const [i, shot] of shots.entries()) {
    const n = i + 1;
    const panel = $("#panel-tpl").content.firstElementChild.cloneNode(true);
    applyStrings(panel);
    panel.setAttribute("aria-label", `Shot ${n}`);
    $(".num", panel).textContent = `${n}.`;
    $(".kind", panel).textContent = `${shot.kind} · ${shot.duration.toFixed(1)} s`;
    for (const field of ["description", "subtitle", "camera"]) {
      const input = $(`.f-${field}`, panel);
      input.value = shot[field] || "";
      input.disabled = !editable;
      input.setAttribute("aria-label", `${t(field)} ${n}`);
    }
    $(".f-look", panel).disabled = !editable;
    $(".f-look", panel).setAttribute("aria-label", `${t("look")} ${n}`);
    const save = $(".save", panel);
    save.hidden = !editable;
    save.addEventListener("click", () => saveShot(f.id, n, shot, panel));
    const redo = $(".redo", panel);
    redo.hidden = $(".note", panel).hidden = !done;
    redo.addEventListener("click", async () => {
      try {
        await api(`/v1/films/${f.id}/shots/${n}/redo`, {method: "POST", body: {note: $(".note", panel).value}});
        openFilm(f.id);
      } catch (e) { $("#film-error").textContent = e.message; }
    });
    board.append(panel);
    if (done || f.status === "shooting" || f.status === "cutting") loadTakes(f.id, n, panel);
  }
}

async function loadTakes(id, n, panel) {
  let view;
  try { view = await api(`/v1/films/${id}/shots/${n}/takes`); } catch { return; }
  const ul = $(".takes", panel);
  ul.replaceChildren();
  for (const take of view.takes) {
    const li = document.createElement("li");
    li.className = take.kept ? "kept" : "";
    li.textContent = `${t("take")} ${take.n}: ${t("grade")} ${take.grade ?? "?"}` + (take.kept ? ` ✓ ${t("kept")}` : "") +
      (take.issues.length ? ` — ${take.issues[0]}` : "") + (take.repair ? ` (${take.repair})` : "");
    ul.append(li);
    if (take.kept) {
      const img = $(".still", panel);
      img.src = fileUrl(id, take.path);
      img.alt = `shot ${n} take ${take.n}`;
      img.hidden = false;
      const g = $(".grade", panel);
      g.textContent = take.grade;
      g.className = `grade grade-${take.grade}`;
    }
  }
}

async function saveShot(id, n, shot, panel) {
  const patch = {};
  for (const field of ["description", "subtitle", "camera"]) {
    const value = $(`.f-${field}`, panel).value.trim();
    if (value !== (shot[field] || "")) patch[field] = value;
  }
  const look = $(".f-look", panel).value.trim();
  if (look) patch.look = look;
  try {
    const r = await api(`/v1/films/${id}/shots/${n}`, {method: "PATCH", body: patch});
    $("#film-error").textContent = "";
    addChat("director", `${r.change.message} (${t("saved")})`);
    await refresh(id);
  } catch (e) { $("#film-error").textContent = e.message; }
}

function renderDelivery(f) {
  const done = f.status === "done" && f.film;
  $("#delivery").hidden = !done;
  if (!done) return;
  const select = $("#cut");
  select.replaceChildren();
  for (const [platform, path] of Object.entries(f.cuts)) {
    select.append(new Option(platform, path));
  }
  const play = () => { $("#player").src = fileUrl(f.id, select.value); };
  select.onchange = play;
  if (!$("#player").src.includes(`/v1/films/${f.id}/`)) play();
  $("#zip").href = `/v1/films/${f.id}/zip`;
  $("#zip").download = `film-${f.id}.zip`;
  const ul = $("#downloads");
  ul.replaceChildren();
  const wanted = f.files.filter((p) => /^(final.*\.(mp4|srt)|report\.html|contact_sheet\.png|storyboard\.(png|json)|manifest\.json)$/.test(p) ||
    /^shots\/s\d+\/take-\d+\.png$/.test(p));
  for (const path of wanted) {
    const a = Object.assign(document.createElement("a"), {href: fileUrl(f.id, path), textContent: path});
    if (!path.endsWith(".html")) a.download = path.split("/").pop(); else a.target = "_blank";
    const li = document.createElement("li");
    li.append(a);
    ul.append(li);
  }
}

function addChat(who, text) {
  const p = document.createElement("p");
  p.className = who === "you" ? "you" : "director";
  p.textContent = (who === "you" ? "› " : "") + text;
  $("#chat-log").append(p);
  $("#chat-log").scrollTop = 1e9;
}

// --- wiring ----------------------------------------------------------------------------------------------------
$("#new-film").addEventListener("submit", async (e) => {
  e.preventDefault();
  const options = {};
  if ($("#platform").value.trim()) options.platform = $("#platform").value.trim();
  if ($("#shots").value) options.shots = Number($("#shots").value);
  try {
    const r = await api("/v1/films", {method: "POST", body: {brief: $("#brief").value, options, approve: $("#wait").checked}});
    $("#new-error").textContent = "";
    await openFilm(r.id);
  } catch (err) { $("#new-error").textContent = err.message; }
});

$("#approve").addEventListener("click", async () => {
  try {
    await api(`/v1/films/${current.id}/approve`, {method: "POST"});
    $("#approve").hidden = true;
    if (!stream) listen(current.id);
    await refresh(current.id);
  } catch (e) { $("#film-error").textContent = e.message; }
});

for (const [button, route] of [["#cancel", "cancel"], ["#resume", "resume"]]) {
  $(button).addEventListener("click", async () => {
    try {
      const r = await api(`/v1/films/${current.id}/${route}`, {method: "POST"});
      setProgress(r.status, current.progress);
      if (route === "resume" && !stream) listen(current.id);
      await refresh(current.id);
      loadRuns();
    } catch (e) { $("#film-error").textContent = e.message; }
  });
}

$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("#chat-text").value.trim();
  if (!text || !current) return;
  addChat("you", text);
  $("#chat-text").value = "";
  try {
    const r = await api(`/v1/films/${current.id}/messages`, {method: "POST", body: {text}});
    addChat("director", r.reply);
    await refresh(current.id);
    if (!stream && !["done", "failed"].includes(r.status)) listen(current.id);
  } catch (err) { addChat("director", err.message); }
});

document.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => {
  LANG = b.dataset.lang;
  localStorage.setItem("cd-lang", LANG);
  setLang();
}));

function setLang() {
  applyStrings();
  document.querySelectorAll("[data-lang]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.lang === LANG)));
  if (current) { setProgress(current.status, current.progress); renderBoard(current); }
  loadRuns();
  loadReview();
}

setLang();
