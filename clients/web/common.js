// Shared by the live page and the caption view: server addresses (ws:// or wss:// after the
// page's own scheme, the token passed on), a WebSocket of JSON events that reconnects, time and
// speaker formatting.

const params = new URLSearchParams(location.search);

export function param(name) {
  return params.get(name);
}

// An address on this server; the page's ?token= goes along (the server asks for it on data routes).
export function serverUrl(path, query = {}, websocket = false) {
  const url = new URL(path, location.href);
  if (websocket) url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(query)) if (value != null) url.searchParams.set(key, value);
  if (param("token")) url.searchParams.set("token", param("token"));
  return url.toString();
}

export function formatTime(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

const PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d"];

export function speakerColour(label) {
  const number = /(\d+)\s*$/.exec(label || "");
  if (number) return PALETTE[(Number(number[1]) - 1) % PALETTE.length];
  let hash = 0;
  for (const ch of String(label)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("data")) node.setAttribute(key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// A WebSocket carrying JSON events, reopened with back-off (0.5 s doubling to 5 s) until close().
// onOpen(socket) runs on every (re)connection, before any queued message is sent.
export class EventSocket {
  constructor(url, { onEvent, onStatus = () => {}, onOpen = () => {}, maxQueued = 600 }) {
    Object.assign(this, { url, onEvent, onStatus, onOpen, maxQueued });
    this.queue = [];        // messages sent while disconnected (audio: up to maxQueued frames)
    this.closed = false;
    this.delay = 500;
    this.connect();
  }

  connect() {
    this.onStatus(this.ws ? "reconnecting" : "connecting");
    const ws = (this.ws = new WebSocket(this.url));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.delay = 500;
      this.onOpen(this);
      for (const message of this.queue.splice(0)) ws.send(message);
      this.onStatus("open");
    };
    ws.onmessage = (message) => this.onEvent(JSON.parse(message.data));
    ws.onclose = (closing) => {
      if (ws !== this.ws) return;
      if (this.closed) return this.onStatus("closed", closing);
      this.onStatus("reconnecting", closing);
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(5000, this.delay * 2);
    };
  }

  get open() {
    return this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.open) return this.ws.send(message);
    this.queue.push(message);
    if (this.queue.length > this.maxQueued) this.queue.shift();
  }

  sendNow(message) {  // only on the current connection (e.g. the start message in onOpen)
    this.ws.send(message);
  }

  // Drop the connection as a network failure would (it is then reopened): for tests and debugging.
  drop() {
    this.ws.close(4000, "dropped by the client");
  }

  // The last message (e.g. stop): the server answers and closes; no reconnection after it.
  finish(message) {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.open) this.ws.send(message);
    else this.close();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    else this.onStatus("closed");
  }
}
