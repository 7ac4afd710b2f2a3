// The one EventSource on this browser's own stream (`GET /events`, every row of every tab), shared
// by all tabs of the page: this file runs as a SharedWorker (one connection per browser), or in the
// page where SharedWorker is missing (one per tab). The hub keeps each row's latest frame and its
// jobs' log lines, so a tab that joins late starts from what the others have, and hands every
// event to each subscriber: {type: "row" | "job" | "group" | "log", data} and {type: "live", data: bool}.
"use strict";

// After a stream the server refused or closed for good, how long before a fresh one is tried.
const HUB_RECONNECT_MS = 5000;
// Lines kept per job for late tabs (the page keeps as many).
const HUB_MAX_LINES = 1000;
const HUB_EVENTS = ["row", "job", "group", "log"];

class StreamHub {
  constructor(url) {
    this.url = url;
    this.subscribers = new Set();
    this.rows = new Map();
    this.lines = new Map();
    this.live = false;
    this.lastEventId = "";
    this.source = null;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    // A stream made anew (not EventSource's own reconnect) resumes after the last line it saw too.
    const [path, session] = this.url.split("#");
    const resume = this.lastEventId ? `?lastEventId=${encodeURIComponent(this.lastEventId)}` : "";
    const source = new EventSource(`${path}${resume}#${session || ""}`, { withCredentials: true });
    this.source = source;
    source.onopen = () => this.setLive(true);
    source.onerror = () => {
      this.setLive(false);
      if (source.readyState === EventSource.CLOSED) setTimeout(() => this.connect(), HUB_RECONNECT_MS);
    };
    for (const type of HUB_EVENTS) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) this.lastEventId = event.lastEventId;
        const data = JSON.parse(event.data);
        this.keep(type, data);
        this.send({ type, data });
      });
    }
  }

  keep(type, data) {
    if (type === "row") {
      this.rows.set(data.id, data);
    } else if (type === "log") {
      const lines = this.lines.get(data.job) || [];
      lines.push(data);
      if (lines.length > HUB_MAX_LINES) lines.shift();
      this.lines.set(data.job, lines);
    } else if (this.rows.has(data.id)) {
      this.rows.set(data.id, { ...this.rows.get(data.id), payload: data });
    }
  }

  setLive(live) {
    if (live === this.live) return;
    this.live = live;
    this.send({ type: "live", data: live });
  }

  // Add a subscriber and bring it up to date: the stream's state, every row, every kept line.
  subscribe(deliver) {
    this.subscribers.add(deliver);
    deliver({ type: "live", data: this.live });
    for (const row of this.rows.values()) deliver({ type: "row", data: row });
    for (const lines of this.lines.values()) for (const line of lines) deliver({ type: "log", data: line });
  }

  unsubscribe(deliver) {
    this.subscribers.delete(deliver);
  }

  // Stop for good, handing the subscribers over (the session changed: see the worker below).
  close() {
    this.closed = true;
    if (this.source) this.source.close();
    return this.subscribers;
  }

  send(message) {
    for (const deliver of this.subscribers) deliver(message);
  }
}

// As a SharedWorker: each tab's port asks for the stream ("open" with its URL) and leaves ("close").
if (typeof SharedWorkerGlobalScope === "function" && self instanceof SharedWorkerGlobalScope) {
  let hub = null;
  self.onconnect = (event) => {
    const port = event.ports[0];
    const deliver = (message) => port.postMessage(message);
    port.onmessage = ({ data }) => {
      if (data.type === "open") {
        // A page of another session (its URL's fragment names it: the cookie changed since the
        // stream opened) gets a stream opened anew, with the cookie as it is now, for every tab.
        if (hub && hub.url !== data.url) {
          const subscribers = hub.close();
          hub = new StreamHub(data.url);
          for (const subscriber of subscribers) hub.subscribe(subscriber);
        }
        hub = hub || new StreamHub(data.url);
        hub.subscribe(deliver);
      } else if (data.type === "close" && hub) {
        hub.unsubscribe(deliver);
      }
    };
  };
}
