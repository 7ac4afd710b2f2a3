// The page's end of this browser's one event stream (see stream_hub.js): through the SharedWorker
// that every tab shares, or a StreamHub of the page's own where SharedWorker is missing. It hands
// each message to `handlers[type]`, and says `handlers.live(false)` when the stream is not open
// within OPEN_TIMEOUT_MS (a browser out of connections keeps a stream waiting without an error),
// so the rows poll instead; `handlers.live(true)` once it is.
"use strict";

class PageStream {
  static OPEN_TIMEOUT_MS = 3000;

  constructor(url, workerUrl, handlers) {
    this.url = url;
    this.workerUrl = workerUrl;
    this.handlers = handlers;
    this.live = false;
    this.timer = null;
  }

  start() {
    this.expectOpen();
    const deliver = (message) => this.receive(message);
    if (typeof SharedWorker === "function") {
      try {
        const worker = new SharedWorker(this.workerUrl, { name: "rq-progress-stream" });
        worker.port.onmessage = ({ data }) => deliver(data);
        worker.port.postMessage({ type: "open", url: this.url });
        window.addEventListener("pagehide", () => worker.port.postMessage({ type: "close" }));
        return;
      } catch (error) {
        // A browser that refuses the worker (privacy settings): the page holds the stream itself.
      }
    }
    new StreamHub(this.url).subscribe(deliver);
  }

  receive({ type, data }) {
    if (type !== "live") {
      this.handlers[type](data);
    } else if (data) {
      clearTimeout(this.timer);
      this.timer = null;
      this.setLive(true);
    } else {
      this.expectOpen();
    }
  }

  // Give the stream OPEN_TIMEOUT_MS to open (again); past it the rows poll.
  expectOpen() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.setLive(false);
    }, PageStream.OPEN_TIMEOUT_MS);
  }

  setLive(live) {
    this.live = live;
    this.handlers.live(live);
  }
}
