// The live page: Start/Stop the microphone, stream it to /v1/listen, and show the events —
// the partial in grey until its final replaces it, speakers in colour, times, the talk-time share,
// topic cards, and the note's downloads. A dropped connection is reopened and the session resumed
// (`start` with its session_id); finals missed meanwhile come from the notes API.
import { Microphone, SAMPLE_RATE } from "./mic.js";
import { EventSocket, el, formatTime, param, serverUrl, speakerColour } from "./common.js";

const $ = (id) => document.getElementById(id);

const app = {
  sessionId: param("session"),   // ?session=ID continues a stored session
  mic: null,
  socket: null,
  running: false,
  secondsSent: 0,
  timeOffset: 0,
  events: [],                     // every event received (newest last), for debugging and tests
  segments: new Map(),            // segment index -> row element
};
window.steno = app;   // for debugging and the browser test (app.handle(event) renders an event)

// ------------------------------------------------------------------ start / stop

async function start() {
  $("toggle").disabled = true;
  showNotice(null);
  clearView();
  try {
    app.mic = new Microphone(onFrame);
    await app.mic.start();
  } catch (error) {
    app.mic = null;
    showNotice(microphoneProblem(error));
    setStatus("idle");
    $("toggle").disabled = false;
    return;
  }
  app.running = true;
  app.secondsSent = 0;
  app.socket = new EventSocket(serverUrl("/v1/listen", {}, true), {
    onEvent,
    onStatus,
    onOpen: (socket) => socket.sendNow(JSON.stringify(startMessage())),
  });
  $("toggle").textContent = "Stop";
  $("toggle").classList.add("recording");
  $("toggle").disabled = false;
}

function startMessage() {
  const message = { type: "start", sample_rate: SAMPLE_RATE, encoding: "pcm_s16le", title: "Browser session" };
  if (app.sessionId) message.session_id = app.sessionId;
  return message;
}

async function stop() {
  app.running = false;
  $("toggle").disabled = true;
  setStatus("finishing");
  await app.mic?.stop();
  app.mic = null;
  setLevel(0);
  app.socket?.finish(JSON.stringify({ type: "stop" }));
  // The server flushes, sends the last final and the note, then closes: see onStatus("closed").
}

function finished() {
  $("toggle").textContent = "Start";
  $("toggle").classList.remove("recording");
  $("toggle").disabled = false;
  setStatus("stopped");
  $("partial").textContent = "";
  app.sessionId = param("session");  // the next Start opens a new session (or the given one again)
}

function microphoneProblem(error) {
  if (error && error.name === "NotAllowedError") return "Microphone access was refused. Allow it in the browser's site settings and press Start again.";
  if (error && error.name === "NotFoundError") return "No microphone was found.";
  return String(error && error.message ? error.message : error);
}

// ------------------------------------------------------------------ audio and connection

function onFrame(pcm, level) {
  setLevel(level.rms);
  if (!app.running || !app.socket) return;
  app.socket.send(pcm);
  app.secondsSent += pcm.byteLength / 2 / SAMPLE_RATE;
  $("clock").textContent = formatTime(app.timeOffset + app.secondsSent);
}

function onStatus(status) {
  if (status === "open") setStatus("live");
  else if (status === "closed") finished();
  else setStatus(status);
}

app.handle = onEvent;

function onEvent(event) {
  app.events.push(event);
  const handler = handlers[event.type];
  if (handler) handler(event);
}

const handlers = {
  ready(event) {
    const reconnected = app.sessionId === event.session_id;
    app.sessionId = event.session_id;
    app.timeOffset = event.time_offset - (reconnected ? app.secondsSent : 0);
    $("session").textContent = event.session_id;
    setLinks(event.session_id);
    if (event.resumed) fillFromNote(event.session_id);
  },
  partial(event) {
    $("partial").textContent = event.text;
    scrollDown();
  },
  final(event) {
    $("partial").textContent = "";
    addSegment(event);
  },
  speaker_share(event) {
    showShare(event.speakers);
  },
  speaker_merge(event) {
    for (const row of $("transcript").querySelectorAll(".segment")) {
      if (row.dataset.speaker === event.from) setSpeaker(row, event.into);
    }
    markContinued();
  },
  topic(event) {
    addTopic(event);
  },
  error(event) {
    showNotice(`${event.code}: ${event.message}`);
  },
  note(event) {
    setLinks(event.session_id);
  },
};

// Segments (and topics, share) stored while we were away: the notes API has them.
async function fillFromNote(sessionId) {
  try {
    const response = await fetch(serverUrl(`/v1/notes/${encodeURIComponent(sessionId)}`));
    if (!response.ok) return;
    const note = await response.json();
    for (const segment of note.segments) if (!app.segments.has(segment.index)) addSegment({ ...segment, segment: segment.index });
    for (const topic of note.topics) addTopic(topic);
    if (note.speaker_share.length) showShare(note.speaker_share);
  } catch (error) {
    console.warn("could not read the stored note", error);
  }
}

// ------------------------------------------------------------------ view

function clearView() {
  app.segments.clear();
  app.events = [];
  for (const row of $("transcript").querySelectorAll(".segment")) row.remove();
  $("partial").textContent = "";
  $("topics").replaceChildren(el("p", { class: "placeholder" }, "Topic cards appear here as the conversation moves on."));
  $("share-bar").replaceChildren();
  $("share-legend").replaceChildren();
  $("share").hidden = true;
  $("clock").textContent = formatTime(0);
}

function addSegment(segment) {
  const words = (segment.words || []).length
    ? segment.words.flatMap((w, i) => [i ? " " : "", el("span", {
        class: w.confidence != null && w.confidence < 0.5 ? "word low" : "word",
        title: w.confidence != null ? `${w.start.toFixed(2)}–${w.end.toFixed(2)} s · confidence ${Math.round(100 * w.confidence)}%` : "",
      }, w.word)])
    : [segment.text];
  const row = el("div", { class: "segment", dataSegment: segment.segment },
    el("time", { class: "time", title: `${segment.start.toFixed(2)}–${segment.end.toFixed(2)} s` }, formatTime(segment.start)),
    el("span", { class: "speaker" }),
    el("span", { class: "text" }, ...words));
  setSpeaker(row, segment.speaker);
  const old = app.segments.get(segment.segment);
  if (old) old.replaceWith(row);
  else {
    // In segment order (a resumed session's stored segments may arrive after newer ones).
    const later = [...app.segments.entries()].filter(([i]) => i > segment.segment).sort((a, b) => a[0] - b[0])[0];
    $("transcript").insertBefore(row, later ? later[1] : $("partial"));
  }
  app.segments.set(segment.segment, row);
  $("transcript").querySelector(".placeholder")?.remove();
  markContinued();
  scrollDown();
}

function setSpeaker(row, speaker) {
  const chip = row.querySelector(".speaker");
  row.dataset.speaker = speaker || "";
  chip.textContent = speaker || "";
  chip.style.setProperty("--speaker", speaker ? speakerColour(speaker) : "transparent");
}

// A row by the same speaker as the row before shows no label again.
function markContinued() {
  let previous = null;
  for (const row of $("transcript").querySelectorAll(".segment")) {
    row.classList.toggle("continued", previous !== null && row.dataset.speaker === previous);
    previous = row.dataset.speaker;
  }
}

function showShare(speakers) {
  $("share").hidden = false;
  $("share-bar").replaceChildren(...speakers.map((s) => el("div", {
    class: "share-part", title: `${s.speaker}: ${s.percent}% (${formatTime(s.seconds)})`,
    dataSpeaker: s.speaker, style: { flexGrow: String(Math.max(s.percent, 0.5)), background: speakerColour(s.speaker) },
  })));
  $("share-legend").replaceChildren(...speakers.map((s) => el("span", { class: "legend", dataSpeaker: s.speaker },
    el("i", { style: { background: speakerColour(s.speaker) } }),
    `${s.speaker} `, el("b", {}, `${Math.round(s.percent)}%`), ` · ${formatTime(s.seconds)}`)));
}

function addTopic(topic) {
  const span = topic.start != null && topic.end != null ? `${formatTime(topic.start)}–${formatTime(topic.end)}` : "";
  const card = el("article", { class: "topic", dataIndex: topic.index },
    el("header", {}, el("h3", {}, topic.title || `Topic ${topic.index + 1}`), el("span", { class: "span" }, span)),
    (topic.bullets || []).length ? el("ul", {}, ...topic.bullets.map((b) => el("li", {}, b)))
      : el("p", { class: "pending" }, "summary on its way…"));
  const old = $("topics").querySelector(`.topic[data-index="${topic.index}"]`);
  if (old) old.replaceWith(card);
  else {
    $("topics").querySelector(".placeholder")?.remove();
    $("topics").append(card);
  }
}

function setLinks(sessionId) {
  const id = encodeURIComponent(sessionId);
  for (const link of $("downloads").querySelectorAll("a[data-format]")) {
    link.href = serverUrl(`/v1/notes/${id}.${link.dataset.format}`);
    link.setAttribute("download", `steno-${sessionId}.${link.dataset.format}`);
    link.classList.remove("disabled");
  }
  $("captions-link").href = serverUrl("/captions", { session: sessionId });
  $("captions-link").classList.remove("disabled");
}

function setStatus(status) {
  const label = { idle: "idle", connecting: "connecting…", live: "live", reconnecting: "reconnecting…",
    finishing: "finishing…", stopped: "stopped" }[status] || status;
  $("status").textContent = label;
  $("status").className = `status ${status}`;
}

function setLevel(rms) {
  const db = 20 * Math.log10(Math.max(rms, 1e-5));
  $("level").style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
}

function showNotice(text) {
  $("notice").hidden = !text;
  $("notice").textContent = text || "";
}

function scrollDown() {
  const pane = $("transcript");
  pane.scrollTop = pane.scrollHeight;
}

$("toggle").addEventListener("click", () => (app.running ? stop() : start()));
if (!window.isSecureContext) {
  showNotice(`The microphone needs a secure page: open this page as https:// (start the server with --certfile and --keyfile) or on http://localhost. This page is ${location.origin}.`);
}
setStatus("idle");
