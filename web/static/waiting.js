// What waiting and running say beyond the bar: a waiting row's place in line and start time, a
// running row's usual duration, a group's counts, the running jobs' progress in the tab title, and
// a desktop notification when a job ends while the tab is hidden. It only listens: progress.js
// dispatches "row-update" (detail: the payload) on a row each time it shows a payload, and this
// module reads the start buttons' clicks itself (to ask for the notification permission).
"use strict";

(() => {
  const TERMINAL = new Set(["SUCCESS", "FAILURE"]);
  const baseTitle = document.title;
  // Per row element: the last usual_s it showed (a job's first pushed save does not carry it),
  // and the state it was in, to notice an end seen live (not a finished row redrawn on reload).
  const seen = new WeakMap();
  const running = new Map();

  function ordinal(n) {
    const tens = n % 100;
    const suffix = tens >= 11 && tens <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
    return `${n}${suffix}`;
  }

  // "about 40 s", "about 3 min": rounded as the time left is.
  function about(seconds) {
    if (seconds < 60) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} s`;
    if (seconds < 3600) return `about ${Math.round(seconds / 60)} min`;
    const minutes = Math.round(seconds / 60);
    return `about ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  // "3rd in line · starts in about 40 s" (a part is left out when its field is null).
  function waitingText(payload) {
    const parts = [];
    if (isNumber(payload.position)) parts.push(`${ordinal(payload.position)} in line`);
    if (isNumber(payload.expected_start_s)) {
      parts.push(payload.expected_start_s < 1 ? "starts now" : `starts in ${about(payload.expected_start_s)}`);
    }
    return parts.join(" · ");
  }

  // "1 waiting · 1 running · 1 done" for a group's payload.
  function groupText(payload) {
    const counts = { waiting: 0, running: 0, done: 0 };
    for (const job of payload.jobs || []) {
      if (job.state === "PENDING") counts.waiting += 1;
      else if (job.state === "PROGRESS") counts.running += 1;
      else counts.done += 1;
    }
    return Object.entries(counts).map(([label, count]) => `${count} ${label}`).join(" · ");
  }

  function percentOf(payload) {
    const total = Number(payload.total) || 0;
    const share = total > 0 ? (Number(payload.current) || 0) / total : 0;
    return Math.max(0, Math.min(100, Math.floor(share * 100)));
  }

  function showTitle() {
    if (!running.size) {
      document.title = baseTitle;
      return;
    }
    const percents = [...running.values()];
    const mean = Math.floor(percents.reduce((sum, value) => sum + value, 0) / percents.length);
    document.title = `${mean}% · ${baseTitle.split(" · ")[0]}`;
  }

  function notifyEnd(row, payload) {
    if (!document.hidden || typeof window.Notification !== "function") return;
    if (Notification.permission !== "granted") return;
    const name = row.querySelector(".job-name");
    const what = (name && name.textContent) || "A job";
    const outcome = payload.state === "SUCCESS" ? "is done" : `failed: ${payload.status}`;
    new Notification(`${what} ${outcome}`, { body: baseTitle, tag: payload.id });
  }

  document.addEventListener("row-update", (event) => {
    const row = event.target;
    const payload = event.detail;
    const memory = seen.get(row) || { usual: null, state: null };
    const wait = row.querySelector(".job-wait");
    if (isNumber(payload.usual_s)) memory.usual = payload.usual_s;
    if (row.classList.contains("group")) {
      if (wait) wait.textContent = groupText(payload);
    } else if (wait) {
      if (payload.state === "PENDING") wait.textContent = waitingText(payload);
      else if (payload.state === "PROGRESS" && memory.usual !== null) wait.textContent = `usually ${about(memory.usual)}`;
      else wait.textContent = "";
    }
    if (payload.state === "PROGRESS") running.set(row, percentOf(payload));
    else running.delete(row);
    if (TERMINAL.has(payload.state) && memory.state !== null && !TERMINAL.has(memory.state)) notifyEnd(row, payload);
    memory.state = payload.state;
    seen.set(row, memory);
    showTitle();
  });

  // Asked once, on the first start: a click is the gesture browsers want; a refusal changes nothing.
  function askOnce() {
    if (typeof window.Notification === "function" && Notification.permission === "default") {
      Notification.requestPermission().catch(() => {});
    }
  }
  const form = document.getElementById("start-form");
  const group = document.getElementById("start-group");
  if (form) form.addEventListener("submit", askOnce, { once: true });
  if (group) group.addEventListener("click", askOnce, { once: true });
})();
