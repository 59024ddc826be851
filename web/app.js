// frugal's web page: chat with a model or a knowledge cache, and manage the
// knowledge caches. Plain JavaScript over the server's HTTP API (docs/web.md);
// conversations and the API key stay in this browser (localStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const store = {
  get(key, fallback) {
    try { return JSON.parse(localStorage.getItem("frugal." + key)) ?? fallback; } catch { return fallback; }
  },
  set(key, value) { localStorage.setItem("frugal." + key, JSON.stringify(value)); },
};

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const key = store.get("key", "");
  return key ? { ...extra, Authorization: "Bearer " + key } : extra;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try { message = (await response.json()).error?.message ?? message; } catch { /* not JSON */ }
  if (response.status === 401) askForKey(store.get("key", "") ? "The API key was not accepted. Enter the right one." : message);
  return new ApiError(response.status, message);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Reads server-sent events from a fetch response: onEvent(parsed JSON) for
// each "data:" line, until [DONE] or the end.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

function askForKey(message) {
  $("key-message").textContent = message;
  $("key-input").value = "";
  if (!$("key-dialog").open) $("key-dialog").showModal();
}

$("key-form").addEventListener("submit", () => {
  store.set("key", $("key-input").value.trim());
  notice("");
  refresh();
});
$("change-key").addEventListener("click", () => askForKey("Enter the server's API key."));

// ---------------------------------------------------------------- models

let models = [];

async function loadModels() {
  const list = await api("/v1/models");
  models = list.data.map((m) => m.id);
  const select = $("model");
  const chosen = select.value || store.get("model", "");
  select.replaceChildren(...models.map((id) => new Option(id.includes("@") ? `${id}  (knowledge)` : id, id)));
  select.value = models.includes(chosen) ? chosen : models.find((id) => id.includes("@")) ?? models[0];
}
$("model").addEventListener("change", () => store.set("model", $("model").value));

const knowledgeName = (model) => (model.includes("@") ? model.slice(model.indexOf("@") + 1) : null);

// ---------------------------------------------------------------- chat

let conversations = store.get("conversations", []);
let currentId = store.get("current", null);
let running = null;  // AbortController of the answer being generated

const current = () => conversations.find((c) => c.id === currentId);
const save = () => { store.set("conversations", conversations); store.set("current", currentId); };

function newConversation() {
  const conversation = { id: Date.now().toString(36), title: "New chat", messages: [] };
  conversations.unshift(conversation);
  currentId = conversation.id;
  save();
  render();
  $("prompt").focus();
}
$("new-chat").addEventListener("click", newConversation);

function renderConversations() {
  const list = $("conversation-list");
  list.replaceChildren(...conversations.map((c) => {
    const item = document.createElement("li");
    if (c.id === currentId) item.setAttribute("aria-current", "true");
    const open = Object.assign(document.createElement("button"), { className: "open", textContent: c.title, type: "button" });
    open.addEventListener("click", () => { currentId = c.id; save(); render(); });
    const remove = Object.assign(document.createElement("button"), { className: "delete", textContent: "×", type: "button" });
    remove.setAttribute("aria-label", `Delete conversation ${c.title}`);
    remove.addEventListener("click", () => {
      conversations = conversations.filter((x) => x !== c);
      if (currentId === c.id) currentId = conversations[0]?.id ?? null;
      save();
      render();
    });
    item.append(open, remove);
    return item;
  }));
}

const markdown = (text) => DOMPurify.sanitize(marked.parse(text));

function statsText(stats) {
  if (!stats) return "";
  const parts = [];
  if (stats.ttft_ms != null) parts.push(`first token ${(stats.ttft_ms / 1000).toFixed(2)} s`);
  if (stats.per_second) parts.push(`${stats.per_second.toFixed(1)} tokens/s`);
  if (stats.tokens != null) parts.push(`${stats.tokens} tokens`);
  if (stats.cached) parts.push(`${stats.cached} tokens of knowledge read from the cache`);
  if (stats.joules != null) parts.push(`${stats.joules.toFixed(1)} J`);
  return parts.join(" · ");
}

function button(label, onClick) {
  const b = Object.assign(document.createElement("button"), { type: "button", textContent: label });
  b.addEventListener("click", onClick);
  return b;
}

// A thinking model's thinking (delta.reasoning_content), folded away once the answer is there.
function thinkingBlock(text, open) {
  const details = Object.assign(document.createElement("details"), { className: "thinking", open });
  details.append(Object.assign(document.createElement("summary"), { textContent: "Thinking" }),
                 Object.assign(document.createElement("div"), { textContent: text }));
  return details;
}

function renderMessage(conversation, message, index) {
  const item = document.createElement("li");
  item.className = message.role + (message.error ? " error" : "");
  if (message.thinking) item.append(thinkingBlock(message.thinking, message.pending));
  const content = document.createElement("div");
  content.className = "content";
  if (message.role === "assistant") {
    content.innerHTML = markdown(message.content || (message.pending ? "…" : ""));
  } else {
    content.textContent = message.content;
  }
  item.append(content);
  if (message.role === "assistant" && !message.pending) {
    if (message.stats) {
      const stats = Object.assign(document.createElement("div"), { className: "stats", textContent: statsText(message.stats) });
      item.append(stats);
    }
    if (message.sources?.length) {
      const sources = document.createElement("div");
      sources.className = "sources";
      sources.append(`Read from ${message.knowledge}: `);
      message.sources.forEach((s, i) => {
        if (i) sources.append(", ");
        const title = s.used ? document.createElement("mark") : document.createElement("span");
        title.textContent = s.title;
        if (s.used) title.title = "this document contains the answer";
        sources.append(title);
      });
      item.append(sources);
    }
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(button("Copy", () => navigator.clipboard?.writeText(message.content)));
    if (index === conversation.messages.length - 1) {
      actions.append(button("Regenerate", () => { conversation.messages.pop(); answer(conversation); }));
    }
    item.append(actions);
  }
  if (message.role === "user") {
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(button("Edit", () => editMessage(conversation, index, item)));
    item.append(actions);
  }
  return item;
}

// Edit and resend: the conversation is cut after the edited message.
function editMessage(conversation, index, item) {
  if (running) return;
  const area = Object.assign(document.createElement("textarea"), { value: conversation.messages[index].content, rows: 3 });
  area.setAttribute("aria-label", "Edit your message");
  const resend = button("Send", () => {
    conversation.messages.splice(index);
    conversation.messages.push({ role: "user", content: area.value });
    save();
    answer(conversation);
  });
  const cancel = button("Cancel", render);
  item.replaceChildren(area, resend, cancel);
  area.focus();
}

function render() {
  renderConversations();
  const conversation = current();
  const list = $("messages");
  list.replaceChildren(...(conversation?.messages ?? []).map((m, i) => renderMessage(conversation, m, i)));
  $("empty-chat").hidden = (conversation?.messages.length ?? 0) > 0;
  list.scrollTop = list.scrollHeight;
  $("send").hidden = !!running;
  $("stop").hidden = !running;
}

// Which of a cache's documents hold the answer (all of them were read).
async function sourcesOf(name, text) {
  try {
    const cache = await api(`/v1/knowledge/${encodeURIComponent(name)}`);
    const answer = text.trim().toLowerCase();
    return Promise.all(cache.documents.map(async (d) => {
      let used = false;
      if (answer && !answer.startsWith("unknown")) {
        const full = await api(`/v1/knowledge/${encodeURIComponent(name)}/documents/${encodeURIComponent(d.id)}`);
        used = full.text.toLowerCase().includes(answer) || full.title.toLowerCase().includes(answer);
      }
      return { id: d.id, title: d.title, used };
    }));
  } catch {
    return [];
  }
}

async function answer(conversation) {
  const model = $("model").value;
  const name = knowledgeName(model);
  const message = { role: "assistant", content: "", pending: true };
  conversation.messages.push(message);
  running = new AbortController();
  render();
  const started = performance.now();
  let firstAt = null;
  try {
    const history = conversation.messages.filter((m) => !m.pending && !m.error).map(({ role, content }) => ({ role, content }));
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      signal: running.signal,
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model, messages: history, stream: true, stream_options: { include_usage: true },
                             temperature: name ? 0 : 0.7, max_tokens: 512 }),
    });
    if (!response.ok) throw await failure(response);
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new ApiError(500, chunk.error.message);
      const thought = chunk.choices?.[0]?.delta?.reasoning_content;
      if (thought) {
        firstAt ??= performance.now();
        message.thinking = (message.thinking || "") + thought;
        const last = $("messages").lastElementChild;
        const block = last?.querySelector(".thinking");
        if (block) block.lastElementChild.textContent = message.thinking;
        else last?.prepend(thinkingBlock(message.thinking, true));
      }
      const piece = chunk.choices?.[0]?.delta?.content;
      if (piece) {
        firstAt ??= performance.now();
        message.content += piece;
        const last = $("messages").lastElementChild?.querySelector(".content");
        if (last) last.innerHTML = markdown(message.content);
      }
      if (chunk.timings) {
        message.stats = { ttft_ms: chunk.timings.ttft_ms, per_second: chunk.timings.predicted_per_second,
                          tokens: chunk.usage?.completion_tokens, cached: chunk.usage?.prompt_tokens_details?.cached_tokens,
                          joules: chunk.timings.energy_joules };
      }
    });
    message.stats ??= { ttft_ms: firstAt ? firstAt - started : null };
    if (name) {
      message.knowledge = name;
      message.sources = await sourcesOf(name, message.content);
    }
  } catch (error) {
    if (error.name === "AbortError") {
      message.content += message.content ? "\n\n*(stopped)*" : "*(stopped)*";
    } else {
      message.error = true;
      message.content = error.message;
    }
  } finally {
    delete message.pending;
    running = null;
    if (conversation.title === "New chat") {
      conversation.title = conversation.messages[0]?.content.slice(0, 40) || "New chat";
    }
    save();
    render();
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || running) return;
  if (!current()) newConversation();
  current().messages.push({ role: "user", content: text });
  $("prompt").value = "";
  save();
  answer(current());
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => running?.abort());
document.addEventListener("keydown", (event) => { if (event.key === "Escape" && running) running.abort(); });

// ---------------------------------------------------------------- knowledge

// Runs a knowledge change (POST/PUT/DELETE with ?stream=true), showing the
// prefill's progress; resolves with the cache's new description.
async function change(method, path, body, progress, status) {
  const response = await fetch(path + "?stream=true", {
    method,
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw await failure(response);
  let result = null;
  progress.hidden = false;
  progress.value = 0;
  await readEvents(response, (event) => {
    if (event.type === "progress") {
      progress.max = event.total;
      progress.value = event.done;
      status.textContent = `Reading the documents: ${event.done} of ${event.total} tokens`;
    } else if (event.type === "error") {
      throw new ApiError(event.status, event.error.message);
    } else if (event.type === "done") {
      result = event.knowledge;
    }
  });
  progress.hidden = true;
  return result;
}

const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
// What the last change to a cache said, shown again once its card is drawn anew.
const cacheMessages = {};

function cacheCard(cache) {
  const card = document.createElement("article");
  card.className = "card cache";
  card.dataset.name = cache.name;
  const heading = document.createElement("h3");
  heading.textContent = cache.name;
  const facts = Object.assign(document.createElement("p"), { className: "hint" });
  facts.textContent = `${cache.model} · ${cache.documents.length} documents · ${cache.tokens} tokens · ` +
                      `${kib(cache.file_bytes)} · built with ${cache.built_with}`;
  const progress = Object.assign(document.createElement("progress"), { hidden: true });
  const status = document.createElement("span");
  status.setAttribute("role", "status");
  const run = async (method, path, body, done) => {
    status.textContent = "";
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      await change(method, path, body, progress, status);
      cacheMessages[cache.name] = done;
      await refresh();
    } catch (error) {
      status.textContent = error.message;
      card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  };
  const base = `/v1/knowledge/${encodeURIComponent(cache.name)}`;
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th>Document</th><th>Tokens</th><th></th></tr></thead>";
  const rows = document.createElement("tbody");
  for (const d of cache.documents) {
    const row = document.createElement("tr");
    row.dataset.id = d.id;
    const title = document.createElement("td");
    title.textContent = d.title;
    const tokens = Object.assign(document.createElement("td"), { className: "num", textContent: d.tokens });
    const actions = document.createElement("td");
    actions.className = "actions";
    const docPath = `${base}/documents/${encodeURIComponent(d.id)}`;
    actions.append(button("View", async () => {
      const full = await api(docPath);
      const old = row.nextElementSibling?.classList.contains("doc-row") ? row.nextElementSibling : null;
      if (old) { old.remove(); return; }
      const extra = document.createElement("tr");
      extra.className = "doc-row";
      const cell = Object.assign(document.createElement("td"), { colSpan: 3, className: "doc-text", textContent: full.text });
      extra.append(cell);
      row.after(extra);
    }));
    if (cache.editable) {
      actions.append(button("Replace", async () => {
        const full = await api(docPath);
        documentForm(card, { id: d.id, title: full.title, text: full.text }, (doc) =>
          run("PUT", docPath, { title: doc.title, text: doc.text }, `Replaced “${doc.title}”.`));
      }));
      actions.append(button("Remove", () => {
        if (confirm(`Remove “${d.title}” from ${cache.name}?`)) run("DELETE", docPath, null, `Removed “${d.title}”.`);
      }));
    }
    row.append(title, tokens, actions);
    rows.append(row);
  }
  table.append(rows);
  card.append(heading, facts, table);
  if (cache.editable) {
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(button("Add a document", () => documentForm(card, { id: "", title: "", text: "" }, (doc) =>
      run("PUT", `${base}/documents/${encodeURIComponent(doc.id)}`, { title: doc.title, text: doc.text },
          `Added “${doc.title}”.`))));
    actions.append(button("Delete cache", async () => {
      if (!confirm(`Delete the knowledge cache ${cache.name}?`)) return;
      try {
        await api(base, { method: "DELETE" });
        await refresh();
      } catch (error) { status.textContent = error.message; }
    }));
    card.append(actions);
  }
  status.textContent = cacheMessages[cache.name] ?? "";
  delete cacheMessages[cache.name];
  card.append(progress, status);
  return card;
}

// A form to write (or replace) one document, shown in the cache's card.
function documentForm(card, doc, submit) {
  card.querySelector("form.document")?.remove();
  const form = document.createElement("form");
  form.className = "document";
  form.innerHTML = `<label>Id <input name="id" required pattern="[^/]+"></label>
    <label>Title <input name="title"></label><label>Text <textarea name="text" rows="5" required></textarea></label>
    <label>Or a file (.txt, .md) <input name="file" type="file" accept=".txt,.md,.markdown"></label>`;
  form.elements.id.value = doc.id;
  form.elements.id.readOnly = !!doc.id;
  form.elements.title.value = doc.title;
  form.elements.text.value = doc.text;
  form.elements.file.addEventListener("change", async () => {
    const file = form.elements.file.files[0];
    if (!file) return;
    let text = (await file.text()).trim();
    const heading = text.match(/^# (.*)\n?/);
    if (heading) { form.elements.title.value = heading[1].trim(); text = text.slice(heading[0].length).trim(); }
    if (!form.elements.id.value) form.elements.id.value = file.name.replace(/\.[^.]*$/, "");
    form.elements.text.value = text;
  });
  const save = Object.assign(document.createElement("button"), { type: "submit", textContent: "Save" });
  form.append(save, button("Cancel", () => form.remove()));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = form.elements.id.value.trim();
    submit({ id, title: form.elements.title.value.trim() || id, text: form.elements.text.value });
    form.remove();
  });
  card.append(form);
  form.elements[doc.id ? "text" : "id"].focus();
}

async function loadKnowledge() {
  const list = await api("/v1/knowledge");
  const target = $("knowledge-list");
  target.replaceChildren(...list.data.map(cacheCard));
  if (!list.data.length) target.append(Object.assign(document.createElement("p"), { className: "hint", textContent: "No knowledge caches yet." }));
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("kb-status");
  const files = await Promise.all([...$("kb-files").files].map(async (f) => ({ name: f.name, content: await f.text() })));
  const documents = $("kb-paste-text").value.trim()
    ? [{ title: $("kb-paste-title").value.trim(), text: $("kb-paste-text").value }] : [];
  $("create").disabled = true;
  status.textContent = "";
  try {
    const cache = await change("POST", "/v1/knowledge", { name: $("kb-name").value.trim(), files, documents },
                               $("kb-progress"), status);
    status.textContent = `Created ${cache.name}: ${cache.documents.length} documents, ${cache.tokens} tokens.`;
    $("create-form").reset();
    await refresh();
    $("model").value = cache.model;
    store.set("model", cache.model);
  } catch (error) {
    status.textContent = error.message;
  } finally {
    $("create").disabled = false;
  }
});

// ---------------------------------------------------------------- pages

function route() {
  const page = location.hash === "#knowledge" ? "knowledge" : "chat";
  $("chat-page").hidden = page !== "chat";
  $("knowledge-page").hidden = page !== "knowledge";
  $("nav-chat").toggleAttribute("aria-current", page === "chat");
  $("nav-knowledge").toggleAttribute("aria-current", page === "knowledge");
  if (page === "chat") $("nav-chat").setAttribute("aria-current", "page");
  else $("nav-knowledge").setAttribute("aria-current", "page");
  if (page === "knowledge") loadKnowledge().catch((e) => notice(e.message));
}
window.addEventListener("hashchange", route);

async function refresh() {
  try {
    await loadModels();
    if (!$("knowledge-page").hidden) await loadKnowledge();
    notice("");
  } catch (error) {
    if (error.status !== 401) notice(error.message);
  }
}

render();
route();
refresh();
