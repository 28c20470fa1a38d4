// Puts stories that form or change at the top of the list, without a reload: it listens to
// /stories/stream (server-sent events) and asks the server for each story's row, rendered
// with the list's filters (no row: the story does not pass them).
"use strict";
(function () {
  const list = document.getElementById("stories");
  if (!list || list.dataset.live === undefined || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const filters = list.dataset.live;
  const lang = new URLSearchParams(filters).get("lang");
  const stream = new EventSource("/stories/stream" + (lang ? "?lang=" + encodeURIComponent(lang) : ""));

  async function show(storyId) {
    const url = "/ui/stories/" + encodeURIComponent(storyId) + "/row" + (filters ? "?" + filters : "");
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status !== 200) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const row = template.content.firstElementChild;
    if (!row) return;
    const old = document.getElementById(row.id);
    const isNew = !old;
    if (old) old.remove();
    row.classList.add("fresh");
    list.prepend(row);
    const empty = document.querySelector(".empty");
    if (empty) empty.remove();
    const title = row.querySelector(".story-title");
    status.textContent = (isNew ? "New story: " : "Story updated: ") + (title ? title.textContent.trim() : storyId);
  }

  stream.addEventListener("story", function (event) {
    show(JSON.parse(event.data).story_id).catch(function () {});
  });
  stream.addEventListener("error", function () {
    status.textContent = "Live updates paused; reconnecting…";
  });
  stream.addEventListener("open", function () {
    status.textContent = "Live: new stories appear at the top.";
  });
})();
