// The page's progress bars: one JobRow per job, fed by its event stream, or by polling its
// status URL when the stream fails or EventSource is missing. Each row has a collapsible log:
// `event: log` lines from the same stream, or its log URL when the row is not streaming. Every
// URL comes from the page (url_for) or from the 202 answer that started the job; none is built here.
"use strict";

(() => {
  const POLL_MS = 1000;
  const MAX_POLL_MS = 10000;
  // EventSource reconnects by itself; this many errors without a message in between means it is not coming back.
  const STREAM_ERRORS_BEFORE_POLLING = 3;
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

  class JobRow {
    constructor(job, element) {
      this.id = job.id;
      this.urls = { status: job.status_url, events: job.events_url, logs: job.logs_url, cancel: job.cancel_url };
      this.el = element;
      this.shown = null;
      this.source = null;
      this.timer = null;
      this.streamErrors = 0;
      this.pollDelay = POLL_MS;
      this.lastLine = null;
      this.lineCount = 0;
      element.dataset.jobId = job.id;
      this.part("name").textContent = `Job ${job.id.slice(0, 8)}`;
      this.part("bar").setAttribute("aria-label", `Progress of job ${job.id}`);
      this.part("cancel").addEventListener("click", () => this.cancel());
      this.part("log").addEventListener("toggle", () => {
        if (this.part("log").open && !this.source) this.fetchLog();
      });
      this.receive(job.payload || { state: "PENDING", current: 0, total: 1, status: "Pending..." });
    }

    part(name) {
      return this.el.querySelector(`.job-${name}`);
    }

    get finished() {
      return Boolean(this.shown) && TERMINAL.has(this.shown.state);
    }

    follow() {
      if (this.finished) return;
      if (typeof window.EventSource === "function") this.stream();
      else this.poll();
    }

    stream() {
      const source = new EventSource(this.urls.events);
      this.source = source;
      source.onmessage = (event) => {
        this.streamErrors = 0;
        this.clearError();
        this.receive(JSON.parse(event.data));
      };
      source.addEventListener("log", (event) => this.addLine(JSON.parse(event.data)));
      source.onerror = () => {
        if (this.finished || this.source !== source) return;
        this.streamErrors += 1;
        if (source.readyState === EventSource.CLOSED || this.streamErrors >= STREAM_ERRORS_BEFORE_POLLING) {
          source.close();
          this.source = null;
          this.onNetworkError("Live updates were interrupted; checking every second instead.");
          this.poll();
        }
      };
    }

    poll() {
      clearTimeout(this.timer);
      this.timer = null;
      requestJson(this.urls.status)
        .then(({ body }) => {
          this.pollDelay = POLL_MS;
          this.clearError();
          this.receive(body);
          if (this.part("log").open) this.fetchLog();
          if (!this.finished) this.timer = setTimeout(() => this.poll(), POLL_MS);
        })
        .catch((error) => {
          if (error.status === 404) {
            this.onNetworkError("The server no longer knows this job (its result has expired).");
            this.part("cancel").hidden = true;
            return;
          }
          const seconds = Math.round(this.pollDelay / 1000);
          this.onNetworkError(`Cannot get this job's status (${error.message}); retrying in ${seconds} s.`);
          this.timer = setTimeout(() => this.poll(), this.pollDelay);
          this.pollDelay = Math.min(this.pollDelay * 2, MAX_POLL_MS);
        });
    }

    receive(payload) {
      if (this.finished || isStale(payload, this.shown)) return;
      this.shown = payload;
      this.el.dataset.state = payload.state;
      this.el.dataset.stalled = String(Boolean(payload.stalled));
      this.part("state").textContent = payload.stalled ? "stalled" : LABELS[payload.state] || payload.state;
      this.part("left").textContent = payload.state === "PROGRESS" ? timeLeft(payload.remaining_s) : "";
      if (payload.state === "SUCCESS") this.onSuccess(payload);
      else if (payload.state === "FAILURE") this.onFailure(payload);
      else this.onProgress(payload);
      if (this.finished) this.stop();
    }

    paint(percent, status) {
      this.part("bar").value = percent;
      this.part("percent").textContent = `${percent}%`;
      this.part("status").textContent = status || "";
    }

    onProgress(payload) {
      this.paint(percentOf(payload), payload.status);
    }

    onSuccess(payload) {
      this.paint(100, payload.status);
      this.showResult(`Result: ${describe(payload.result)}`, "success");
    }

    onFailure(payload) {
      this.paint(percentOf(payload), "");
      this.showResult(`Failed: ${payload.status}`, "failure");
    }

    onNetworkError(message) {
      const error = this.part("error");
      error.textContent = message;
      error.hidden = false;
    }

    clearError() {
      this.part("error").hidden = true;
    }

    // The lines after the last one shown, page by page, from the log URL (rows not streaming).
    fetchLog() {
      if (this.fetchingLog) return;
      this.fetchingLog = true;
      const after = this.lastLine ? `?after=${encodeURIComponent(this.lastLine.join("-"))}` : "";
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
      if (!isAfter(position, this.lastLine)) return;
      this.lastLine = position;
      const list = this.part("log-lines");
      const following = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
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
      this.lineCount += 1;
      this.part("log-count").textContent = `(${this.lineCount} ${this.lineCount === 1 ? "line" : "lines"})`;
      if (following) list.scrollTop = list.scrollHeight;
    }

    showResult(text, kind) {
      const result = this.part("result");
      result.textContent = text;
      result.className = `job-result ${kind}`;
      result.hidden = false;
    }

    stop() {
      if (this.source) this.source.close();
      this.source = null;
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
            if (!this.source && !this.timer) this.poll();
            return;
          }
          button.disabled = false;
          this.onNetworkError(`Could not cancel (${error.message}).`);
        });
    }
  }

  const list = document.getElementById("jobs");
  const rowTemplate = document.getElementById("job-row");
  const pageError = document.getElementById("page-error");

  function addRow(job) {
    const element = rowTemplate.content.firstElementChild.cloneNode(true);
    list.prepend(element);
    new JobRow(job, element).follow();
  }

  function startJob(form) {
    const body = {};
    if (form.elements.steps.value !== "") body.steps = Number(form.elements.steps.value);
    if (form.elements.step_seconds.value !== "") body.step_seconds = Number(form.elements.step_seconds.value);
    const options = { method: "POST" };
    if (Object.keys(body).length) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    return requestJson(form.dataset.startUrl, options).then(({ body: job }) => {
      pageError.hidden = true;
      addRow(job);
    });
  }

  document.getElementById("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startJob(event.target).catch((error) => {
      pageError.textContent = `Could not start the calculation: ${error.message}`;
      pageError.hidden = false;
    });
  });

  for (const job of JSON.parse(document.getElementById("initial-jobs").textContent)) addRow(job);
})();
