// The page's progress bars: one JobRow per job, fed by this browser's one event stream (page_stream.js,
// shared by its tabs, which also brings the rows started in other tabs), or by polling its status
// URL while that stream is not open or EventSource is missing. Each row has a collapsible log:
// `event: log` lines from the same stream, or its log URL when the row is not streaming. Every
// URL comes from the page (url_for), the stream or the 202 answer that started the job; none is built here.
"use strict";

(() => {
  const POLL_MS = 1000;
  const MAX_POLL_MS = 10000;
  const TERMINAL = new Set(["SUCCESS", "FAILURE"]);
  // Lines a row's log pane keeps; older ones are dropped from the page (the server keeps its own cap).
  const MAX_LOG_LINES = 1000;
  const LABELS = { PENDING: "waiting", PROGRESS: "running", SUCCESS: "done", FAILURE: "failed" };

  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function requestJson(url, options) {
    const headers = { Accept: "application/json", ...(options && options.headers) };
    const response = await fetch(url, { cache: "no-store", ...options, headers });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new HttpError(response.status, body);
    return { status: response.status, body };
  }

  function percentOf(payload) {
    const total = Number(payload.total) || 0;
    const share = total > 0 ? (Number(payload.current) || 0) / total : 0;
    return Math.max(0, Math.min(100, Math.floor(share * 100)));
  }

  // "about 2 min left" from a payload's remaining_s (null: not enough evidence yet, or stalled).
  function timeLeft(seconds) {
    if (typeof seconds !== "number" || seconds <= 0) return "";
    if (seconds < 60) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} s left`;
    if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
    const minutes = Math.round(seconds / 60);
    return `about ${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
  }

  function describe(result) {
    return typeof result === "object" && result !== null ? JSON.stringify(result) : String(result);
  }

  // A log line id, "<ms>-<seq>", as numbers to order lines by.
  function positionOf(id) {
    return String(id).split("-").map(Number);
  }

  function isAfter(position, last) {
    return !last || position[0] > last[0] || (position[0] === last[0] && position[1] > last[1]);
  }

  function clock(at) {
    const moment = new Date(at);
    return Number.isNaN(moment.getTime()) ? "" : moment.toLocaleTimeString([], { hour12: false });
  }

  // A progress update older than the one shown (a stream and a poll can cross).
  function isStale(payload, shown) {
    return Boolean(shown) && payload.state === "PROGRESS" && shown.state === "PROGRESS" &&
      String(payload.updated_at || "") < String(shown.updated_at || "");
  }

  // Whether the page's stream is open: null until known, then true or false (the rows poll).
  let streamLive = null;

  // What job and group rows share: fed by the page's stream, polling while it is down; the bar, cancel.
  class LiveRow {
    constructor(urls, element, payload, what) {
      this.urls = urls;
      this.el = element;
      this.what = what;
      this.shown = null;
      this.timer = null;
      this.pollDelay = POLL_MS;
      this.part("cancel").addEventListener("click", () => this.cancel());
      this.receive(payload);
    }

    part(name) {
      return this.el.querySelector(`.job-${name}`);
    }

    get finished() {
      return Boolean(this.shown) && TERMINAL.has(this.shown.state);
    }

    get streaming() {
      return streamLive === true && !this.finished;
    }

    // The page's stream opened (it sends every row's payload then) or is down: stop or start polling.
    follow() {
      if (this.finished) return;
      if (streamLive === false && !this.timer) this.poll();
      if (streamLive === true) {
        clearTimeout(this.timer);
        this.timer = null;
        this.clearError();
      }
    }

    // What a row reads beside its status while it polls (a job's open log).
    polled() {}

    poll() {
      clearTimeout(this.timer);
      this.timer = null;
      requestJson(this.urls.status)
        .then(({ body }) => {
          this.pollDelay = POLL_MS;
          this.clearError();
          this.receive(body);
          this.polled();
          if (!this.finished && !this.streaming) this.timer = setTimeout(() => this.poll(), POLL_MS);
        })
        .catch((error) => {
          if (error.status === 404) {
            this.onNetworkError(`The server no longer knows this ${this.what} (its result has expired).`);
            this.part("cancel").hidden = true;
            return;
          }
          const seconds = Math.round(this.pollDelay / 1000);
          this.onNetworkError(`Cannot get this ${this.what}'s status (${error.message}); retrying in ${seconds} s.`);
          this.timer = setTimeout(() => this.poll(), this.pollDelay);
          this.pollDelay = Math.min(this.pollDelay * 2, MAX_POLL_MS);
        });
    }

    receive(payload) {
      if (this.finished || isStale(payload, this.shown)) return;
      this.shown = payload;
      this.el.dataset.state = payload.state;
      this.render(payload);
      this.el.dispatchEvent(new CustomEvent("row-update", { bubbles: true, detail: payload }));
      if (this.finished) this.stop();
    }

    paint(percent, status) {
      this.part("bar").value = percent;
      this.part("percent").textContent = `${percent}%`;
      this.part("status").textContent = status || "";
    }

    onNetworkError(message) {
      const error = this.part("error");
      error.textContent = message;
      error.hidden = false;
    }

    clearError() {
      this.part("error").hidden = true;
    }

    showResult(text, kind) {
      const result = this.part("result");
      result.textContent = text;
      result.className = `job-result ${kind}`;
      result.hidden = false;
    }

    stop() {
      clearTimeout(this.timer);
      this.timer = null;
      this.part("cancel").hidden = true;
    }

    cancel() {
      const button = this.part("cancel");
      button.disabled = true;
      requestJson(this.urls.cancel, { method: "POST" })
        .then(({ body }) => this.receive(body))
        .catch((error) => {
          if (error.status === 409) {
            button.hidden = true;
            if (!this.streaming && !this.timer) this.poll();
            return;
          }
          button.disabled = false;
          this.onNetworkError(`Could not cancel (${error.message}).`);
        });
    }
  }

  class JobRow extends LiveRow {
    constructor(job, element) {
      element.dataset.jobId = job.id;
      const urls = { status: job.status_url, logs: job.logs_url, cancel: job.cancel_url };
      const lines = { last: null, count: 0 };
      super(urls, element, job.payload || { state: "PENDING", current: 0, total: 1, status: PENDING_STATUS }, "job");
      this.lines = lines;
      this.part("name").textContent = `Job ${job.id.slice(0, 8)}`;
      this.part("bar").setAttribute("aria-label", `Progress of job ${job.id}`);
      this.part("log").addEventListener("toggle", () => {
        if (this.part("log").open && !this.streaming) this.fetchLog();
      });
    }

    polled() {
      if (this.part("log").open) this.fetchLog();
    }

    render(payload) {
      this.el.dataset.stalled = String(Boolean(payload.stalled));
      this.part("state").textContent = payload.stalled ? "stalled" : LABELS[payload.state] || payload.state;
      this.part("left").textContent = payload.state === "PROGRESS" ? timeLeft(payload.remaining_s) : "";
      if (payload.state === "SUCCESS") {
        this.paint(100, payload.status);
        this.showResult(`Result: ${describe(payload.result)}`, "success");
      } else if (payload.state === "FAILURE") {
        this.paint(percentOf(payload), "");
        this.showResult(`Failed: ${payload.status}`, "failure");
      } else {
        this.paint(percentOf(payload), payload.status);
      }
    }

    // The lines after the last one shown, page by page, from the log URL (rows not streaming).
    fetchLog() {
      if (this.fetchingLog) return;
      this.fetchingLog = true;
      const after = this.lines.last ? `?after=${encodeURIComponent(this.lines.last.join("-"))}` : "";
      requestJson(this.urls.logs + after)
        .then(({ body }) => {
          this.fetchingLog = false;
          body.lines.forEach((line) => this.addLine(line));
          if (body.lines.length && this.part("log").open) this.fetchLog();
        })
        .catch(() => {
          this.fetchingLog = false;
        });
    }

    addLine(line) {
      const position = positionOf(line.id);
      if (!isAfter(position, this.lines.last)) return;
      this.lines.last = position;
      const list = this.part("log-lines");
      // Measured only while the pane is open: a measure forces a layout, at every line of every row.
      const following = this.part("log").open && list.scrollHeight - list.scrollTop - list.clientHeight < 8;
      const item = document.createElement("li");
      item.dataset.level = line.level;
      const time = document.createElement("time");
      time.dateTime = line.at;
      time.textContent = clock(line.at);
      const text = document.createElement("span");
      text.textContent = line.level === "info" ? line.message : `${line.level}: ${line.message}`;
      item.append(time, " ", text);
      list.append(item);
      while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
      this.lines.count += 1;
      const count = this.lines.count;
      this.part("log-count").textContent = `(${count} ${count === 1 ? "line" : "lines"})`;
      if (following) list.scrollTop = list.scrollHeight;
    }
  }

  // A group: one bar for all its jobs (current = the sum of their fractions done), its jobs beneath.
  class GroupRow extends LiveRow {
    constructor(group, element) {
      element.dataset.groupId = group.id;
      const urls = { status: group.status_url, cancel: group.cancel_url };
      const jobs = group.jobs.map((job) => ({ id: job.id, state: "PENDING", current: 0, total: 1, status: PENDING_STATUS }));
      const first = { state: "PENDING", current: 0, total: jobs.length, status: PENDING_STATUS, jobs };
      super(urls, element, group.payload || first, "group");
      this.part("name").textContent = `Group ${group.id.slice(0, 8)} · ${this.shown.total} jobs`;
      this.part("bar").setAttribute("aria-label", `Progress of group ${group.id}`);
    }

    render(payload) {
      this.part("state").textContent = LABELS[payload.state] || payload.state;
      this.paint(percentOf(payload), payload.status);
      if (payload.state === "SUCCESS") this.showResult(`All ${payload.total} jobs done`, "success");
      else if (payload.state === "FAILURE") this.showResult(`Failed: ${payload.failed} of ${payload.total} jobs`, "failure");
      const members = this.part("members");
      for (const job of payload.jobs) {
        let item = members.querySelector(`li[data-job-id="${CSS.escape(job.id)}"]`);
        if (!item) {
          item = memberTemplate.content.firstElementChild.cloneNode(true);
          item.dataset.jobId = job.id;
          item.querySelector(".member-name").textContent = `Job ${job.id.slice(0, 8)}`;
          item.querySelector("progress").setAttribute("aria-label", `Progress of job ${job.id}`);
          members.append(item);
        }
        item.dataset.state = job.state;
        item.querySelector("progress").value = job.state === "SUCCESS" ? 100 : percentOf(job);
        item.querySelector(".member-state").textContent = LABELS[job.state] || job.state;
        item.querySelector(".member-status").textContent = job.status || "";
      }
    }
  }

  const list = document.getElementById("jobs");
  const rowTemplate = document.getElementById("job-row");
  const groupTemplate = document.getElementById("group-row");
  const memberTemplate = document.getElementById("group-member");
  const form = document.getElementById("start-form");
  // The status text of a job whose payload has not been read yet: the server's words (jobs/contract.py).
  const PENDING_STATUS = form.dataset.pendingStatus;
  const pageError = document.getElementById("page-error");

  // Every row on the page by job or group id: the stream, the 202 answers and the page's own data add them.
  const rows = new Map();

  function addRow(job) {
    if (rows.has(job.id)) return;
    const element = rowTemplate.content.firstElementChild.cloneNode(true);
    list.prepend(element);
    rows.set(job.id, new JobRow(job, element));
    rows.get(job.id).follow();
  }

  function addGroup(group) {
    if (rows.has(group.id)) return;
    const element = groupTemplate.content.firstElementChild.cloneNode(true);
    list.prepend(element);
    rows.set(group.id, new GroupRow(group, element));
    rows.get(group.id).follow();
  }

  // What this browser's stream brings: rows (those of other tabs too), their payloads, log lines.
  const streamHandlers = {
    row: (row) => {
      if (rows.has(row.id)) rows.get(row.id).receive(row.payload);
      else if (row.kind === "group") addGroup(row);
      else addRow(row);
    },
    job: (payload) => rows.get(payload.id)?.receive(payload),
    group: (payload) => rows.get(payload.id)?.receive(payload),
    log: (line) => rows.get(line.job)?.addLine(line),
    live: (live) => {
      streamLive = live;
      list.dataset.live = String(live);
      for (const row of rows.values()) row.follow();
    },
  };

  // The demo's size from the "Size" fold: an empty field leaves the server's default.
  function size() {
    const args = {};
    if (form.elements.steps.value !== "") args.steps = Number(form.elements.steps.value);
    if (form.elements.step_seconds.value !== "") args.step_seconds = Number(form.elements.step_seconds.value);
    return args;
  }

  function post(url, body) {
    const options = { method: "POST" };
    if (body !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    return requestJson(url, options).then(({ body: answer }) => {
      pageError.hidden = true;
      return answer;
    });
  }

  function fail(error) {
    pageError.textContent = `Could not start the calculation: ${error.message}`;
    pageError.hidden = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const args = size();
    post(form.dataset.startUrl, Object.keys(args).length ? args : undefined).then(addRow).catch(fail);
  });

  document.getElementById("start-group").addEventListener("click", () => {
    const job = { name: form.dataset.groupJob, args: size() };
    post(form.dataset.groupUrl, { jobs: [job, job, job] }).then(addGroup).catch(fail);
  });

  for (const job of JSON.parse(document.getElementById("initial-jobs").textContent)) addRow(job);
  for (const group of JSON.parse(document.getElementById("initial-groups").textContent)) addGroup(group);
  if (typeof window.EventSource === "function" && typeof PageStream === "function") {
    new PageStream(list.dataset.eventsUrl, list.dataset.workerUrl, streamHandlers).start();
  } else {
    streamHandlers.live(false);
  }
})();
