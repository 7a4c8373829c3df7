"use strict";
// What both supervisor pages (wallboard.html, agents.html) share, served by the worker at
// /pages.js: making elements (text only: data never becomes markup), and polling the page's JSON
// every second with the stale banner and the clock. No assets come from the internet.
const STALE_MS = 5000, POLL_MS = 1000;
let lastOk = 0;  // when the JSON last came (0: never)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
// Fetch url every POLL_MS and hand its JSON to render; twice a second, show the stale banner when
// nothing came for STALE_MS, move the clock, and call everyTick (timers between polls), if given.
function startPolling(url, render, everyTick) {
  async function poll() {
    try {
      const resp = await fetch(url, { cache: "no-store" });
      if (resp.ok) { render(await resp.json()); lastOk = Date.now(); }
    } catch (e) { /* the stale banner says it */ }
    setTimeout(poll, POLL_MS);
  }
  setInterval(() => {
    const age = Date.now() - lastOk;
    document.body.classList.toggle("stale", lastOk === 0 ? false : age > STALE_MS);
    document.getElementById("stale-age").textContent = Math.round(age / 1000);
    document.getElementById("clock").textContent = new Date().toLocaleTimeString();
    if (everyTick) everyTick();
  }, 500);
  poll();
}
