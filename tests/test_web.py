"""The browser client in a real headless Chromium (Debian's), driven by Playwright.

Chromium's fake microphone plays a WAV of tone speech ("hello world", looped), so the page's own
microphone path runs: getUserMedia -> AudioWorklet (resampled from the device rate to 16 kHz) ->
WebSocket -> server -> events -> the page. Given that recording, the page shows the final "hello
world", labelled "Speaker 1", and a talk-time share bar all of Speaker 1; the caption view shows it
too; a dropped connection resumes the same session; Stop yields a note to download. Screenshots go
to artifacts/web/. Without Chromium or Playwright the tests skip, except under CI (CI=true), where
they fail: `make test` installs both.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from make_tone_model import SAMPLE_RATE
from server_fixtures import shared_server, utterances  # noqa: F401

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--autoplay-policy=no-user-gesture-required"]
WAIT_MS = 20_000  # for any one thing to appear; the recording loops every ~4.3 s


def _need_browser():
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package (.venv/bin/pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        problems.append("Debian's chromium (apt-get install chromium; `make test` does)")
    if problems:
        message = "the browser tests need " + " and ".join(problems)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI: not skipped)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium with a fresh profile whose microphone plays tone speech for "hello world"."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("chromium")
    wav = tmp / "mic.wav"
    sf.write(wav, utterances("hello world"), SAMPLE_RATE, subtype="PCM_16")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
            viewport={"width": 1280, "height": 720})
        context.set_default_timeout(WAIT_MS)
        yield context
        context.close()


def _page(browser, url: str):
    page = browser.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    page.goto(url)
    return page


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _finals(page) -> list[dict]:
    return page.evaluate("steno.events.filter(e => e.type === 'final')")


def test_microphone_to_captions_in_chromium(browser, shared_server):
    began = time.monotonic()
    live = _page(browser, shared_server.http("/"))
    assert live.text_content("#status") == "idle"
    live.click("#toggle")

    # The first final, through the real microphone path: exact words, a speaker, a time.
    first = live.locator(".segment").first
    first.locator(".text", has_text="hello world").wait_for()
    assert first.locator(".text").text_content() == "hello world"
    assert first.locator(".speaker").text_content() == "Speaker 1"
    assert first.locator(".time").text_content() == "00:00"
    assert live.text_content("#status") == "live"
    assert live.evaluate("steno.mic.label") == "Fake Default Audio Input"   # Chromium's file-backed mic
    session = live.text_content("#session")
    assert len(session) >= 8

    # The talk-time share bar: all of it Speaker 1's.
    assert live.locator("#share").is_visible()
    legend = live.text_content("#share-legend")
    assert "Speaker 1" in legend and "100%" in legend
    part = live.locator('.share-part[data-speaker="Speaker 1"]').bounding_box()
    bar = live.locator("#share-bar").bounding_box()
    assert part["width"] > 0.95 * bar["width"]

    # The caption view of the same session, fed from /v1/watch, shows the next final.
    captions = _page(browser, live.get_attribute("#captions-link", "href"))
    assert f"session={session}" in captions.url
    captions.locator(".caption.final", has_text="hello world").wait_for()
    assert captions.locator(".caption-speaker").first.text_content() == "Speaker 1"
    _screenshot(captions, "captions.png")

    # A dropped connection (just after a final) reconnects and resumes the same session: the
    # audio meanwhile is queued, numbering continues, and the next final arrives as before.
    seen = len(_finals(live))
    live.evaluate("""n => new Promise(done => { const poll = setInterval(() => {
        if (steno.events.filter(e => e.type === 'final').length > n) {
            clearInterval(poll); steno.socket.drop(); done(); } }, 10); })""", seen)
    live.wait_for_function("steno.events.some(e => e.type === 'ready' && e.resumed)")
    resumed = live.evaluate("steno.events.find(e => e.type === 'ready' && e.resumed)")
    assert resumed["session_id"] == session and resumed["next_segment"] == seen + 1
    live.wait_for_function(f"steno.events.filter(e => e.type === 'final').length > {seen + 1}")
    finals = _finals(live)
    assert [f["segment"] for f in finals] == list(range(len(finals)))
    assert {f["text"] for f in finals} == {"hello world"} and {f["session_id"] for f in finals} == {session}
    rows = live.locator(".segment")
    assert rows.count() == len(finals)
    assert live.locator(".segment .text").all_text_contents() == ["hello world"] * len(finals)
    captions.wait_for_function(f"stenoCaptions.lines.some(l => l.segment >= {seen + 1})")

    # Topic cards render title, time range and bullets (the server's topic events are issue-level
    # work of their own; this one is injected in the protocol's shape).
    live.evaluate("""steno.handle({type: 'topic', session_id: steno.sessionId, seq: 0, index: 0,
        start_segment: 0, end_segment: 1, start: 0.32, end: 6.3, title: 'Greetings',
        bullets: ['Hello said to the world', 'Said again after a pause']})""")
    card = live.locator('.topic[data-index="0"]')
    assert card.locator("h3").text_content() == "Greetings"
    assert card.locator("li").all_text_contents() == ["Hello said to the world", "Said again after a pause"]
    assert card.locator(".span").text_content() == "00:00–00:06"
    _screenshot(live, "live.png")

    # Stop: the server sends the note; the downloads hold the transcript with its speaker.
    live.click("#toggle")
    live.wait_for_function("document.querySelector('#status').textContent === 'stopped'")
    assert live.evaluate("steno.events.at(-1).type") == "note"
    markdown = live.request.get(live.get_attribute('#downloads a[data-format="md"]', "href")).text()
    assert "hello world" in markdown and "Speaker 1" in markdown
    srt = live.request.get(live.get_attribute('#downloads a[data-format="srt"]', "href")).text()
    assert "hello world" in srt and "-->" in srt
    assert live.text_content("#toggle") == "Start"
    assert live.problems == [] and captions.problems == []
    print(f"browser end-to-end: {time.monotonic() - began:.1f} s, {len(finals)} finals")
    captions.close()
    live.close()


def test_worklet_resampler_keeps_tones_and_stops_aliases(browser, shared_server):
    """The worklet's resampler, run in the page: device rates to 16 kHz."""
    page = _page(browser, shared_server.http("/captions?session=none"))
    run = """async ([rate, freq, block]) => {
        const { Resampler } = await import('/static/resampler.js');
        const r = new Resampler(rate, 16000), out = [];
        const x = Float32Array.from({length: rate}, (_, i) => 0.5 * Math.sin(2 * Math.PI * freq * i / rate));
        for (let i = 0; i < x.length; i += block) out.push(...r.process(x.subarray(i, i + block)));
        return out; }"""

    def resample(rate: int, freq: float, block: int = 128) -> np.ndarray:
        return np.asarray(page.evaluate(run, [rate, freq, block]), np.float64)

    for rate in (48000, 44100, 16000):
        for freq in (400.0, 1000.0, 3400.0):           # the tone letters' range
            y = resample(rate, freq)
            assert abs(len(y) - 16000) <= 40, (rate, len(y))
            steady = y[200:-200]
            spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
            peak = np.argmax(spectrum) * 16000 / len(steady)
            assert abs(peak - freq) < 2, (rate, freq, peak)
            assert abs(np.sqrt(2) * steady.std() - 0.5) < 0.01, (rate, freq)
    # Above the 8 kHz Nyquist rate of the output: removed, not folded back as an alias.
    for rate in (48000, 44100):
        assert np.sqrt(2) * resample(rate, 12000.0)[200:-200].std() < 0.005
    # The same output whatever the block size (a stream, not per-block resampling).
    small, large = resample(44100, 1000.0, 128), resample(44100, 1000.0, 4410)
    n = min(len(small), len(large))
    assert n > 15900
    np.testing.assert_allclose(small[:n], large[:n], atol=1e-6)
    assert page.problems == []
    page.close()
