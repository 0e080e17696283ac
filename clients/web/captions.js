// The caption view (/captions?session=ID), for projecting: the last lines of a live session in
// large type, fed by a copy of the session's events from /v1/watch. Without ?session= it follows
// the newest session that is still open. The connection is reopened if it drops.
import { EventSocket, el, param, serverUrl, speakerColour } from "./common.js";

const LINES = 3;   // finals kept on screen above the partial
const $ = (id) => document.getElementById(id);
const view = { sessionId: param("session"), lines: [], socket: null };
window.stenoCaptions = view;

function status(text) {
  $("watch-status").textContent = text;
}

async function newestOpenSession() {
  const response = await fetch(serverUrl("/v1/notes"));
  if (!response.ok) throw new Error(`notes: HTTP ${response.status}`);
  const open = (await response.json()).filter((s) => !s.closed);
  return open.length ? open[0].session_id : null;
}

async function main() {
  while (!view.sessionId) {
    status("waiting for a live session…");
    try {
      view.sessionId = await newestOpenSession();
    } catch (error) {
      status(String(error));
    }
    if (!view.sessionId) await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  view.socket = new EventSocket(serverUrl("/v1/watch", { session: view.sessionId }, true), {
    onEvent,
    onStatus: (s) => status(s === "open" ? `session ${view.sessionId}` : s === "reconnecting" ? "reconnecting…" : s),
  });
}

function onEvent(event) {
  if (event.type === "watching") status(`session ${event.session_id}${event.live ? "" : " · waiting for audio"}`);
  else if (event.type === "ready") status(`session ${event.session_id} · live`);
  else if (event.type === "partial") $("caption-partial").textContent = event.text;
  else if (event.type === "final") {
    $("caption-partial").textContent = "";
    view.lines = view.lines.filter((l) => l.segment !== event.segment);
    view.lines.push({ segment: event.segment, speaker: event.speaker, text: event.text });
    view.lines = view.lines.slice(-LINES);
    render();
  } else if (event.type === "speaker_merge") {
    for (const line of view.lines) if (line.speaker === event.from) line.speaker = event.into;
    render();
  } else if (event.type === "note") status(`session ${event.session_id} · ended`);
  else if (event.type === "error") status(`${event.code}: ${event.message}`);
}

function render() {
  for (const old of $("captions").querySelectorAll(".caption.final")) old.remove();
  let previous = null;
  for (const [i, line] of view.lines.entries()) {
    const who = line.speaker && line.speaker !== previous
      ? el("span", { class: "caption-speaker", style: { color: speakerColour(line.speaker) } }, line.speaker) : null;
    $("captions").insertBefore(el("p", {
      class: i < view.lines.length - 1 ? "caption final older" : "caption final", dataSegment: line.segment,
    }, who, line.text),
      $("caption-partial"));
    previous = line.speaker;
  }
}

main();
