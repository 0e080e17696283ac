"""Topic summaries: parsing chatty answers, the extractive fallback, the OpenAI-compatible backend
against a real local HTTP server (canned answers, a slow one, a 500), rolling summaries, summaries
through the Steno server, and the packaged local LLM on a real spoken example (slow)."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from models.llm import (MAX_TITLE_WORDS, ExtractiveSummarizer, LocalLLM, OpenAICompatibleLLM, RollingSummarizer,
                        Summary, SummaryError, content_words, parse_summary)
from server_fixtures import converse, server_factory, utterances  # noqa: F401
from streaming.summaries import SummaryOptions

EVAL = Path("/work/shared/eval/real")
LONGFORM = "longform_ljspeech_LJ001-0001_to_0032.wav"


def spoken_example() -> str:
    """The reference text of a real recording (LJSpeech LJ001, on the history of printing): evaluation
    input only."""
    manifest = EVAL / "manifest.jsonl"
    if not manifest.exists():
        pytest.skip("the shared eval set is not on this machine")
    for line in manifest.read_text().splitlines():
        item = json.loads(line)
        if item["audio"] == LONGFORM:
            return item["text"]
    pytest.skip(f"{LONGFORM} is not in the manifest")


def check_form(summary: Summary, text: str) -> None:
    assert 1 <= len(summary.title.split()) <= MAX_TITLE_WORDS
    assert 2 <= len(summary.bullets) <= 5 and all(b.strip() for b in summary.bullets)
    source = set(content_words(text))
    assert set(content_words(summary.title)) & source                 # title words come from the topic
    for bullet in summary.bullets:
        words = set(content_words(bullet))
        assert len(words & source) >= 0.5 * len(words)


# ---------------------------------------------------------------------------------- parsing

TEXT = ("We moved the launch to March because the payment tests fail on the new servers. "
        "Ana fixes the test setup this week. Tom tells the sales team about the new date.")


def test_parse_chatty_answers():
    answer = ("Sure! Here is a summary of the transcript:\n\n**Title:** Launch moved to March\n\n"
              "1. The launch moves to March.\n2) Payment tests fail on the new servers.\n"
              "* Ana fixes the test setup.\n- The launch moves to March.\n\nLet me know if you need more!")
    s = parse_summary(answer, TEXT, "m")
    assert s.title == "Launch moved to March" and s.source == "m"
    assert s.bullets == ("The launch moves to March.", "Payment tests fail on the new servers.",
                         "Ana fixes the test setup.")


def test_parse_drops_invented_bullets_and_rejects_empty_answers():
    answer = "Title: Launch moved to March\n- The launch moves to March.\n- Ana fixes tests.\n" \
             "- Brazilian football clubs signed seven goalkeepers yesterday."
    assert parse_summary(answer, TEXT, "m").bullets == ("The launch moves to March.", "Ana fixes tests.")
    for bad in ("", "Title: Launch\n", "I cannot help with that.", "Title: Quantum cooking\n- a\n- b"):
        with pytest.raises(SummaryError):
            parse_summary(bad, TEXT, "m")
    long_title = parse_summary("Title: " + "launch " * 20 + "\n- launch in March\n- payment tests fail", TEXT, "m")
    assert len(long_title.title.split()) == MAX_TITLE_WORDS


def test_extractive_summary_of_a_real_spoken_example():
    text = spoken_example()
    summary = ExtractiveSummarizer().summarize(text)
    check_form(summary, text)
    assert "print" in summary.title.lower()


# ---------------------------------------------------------------------------------- OpenAI-compatible

class FakeLLMServer:
    """A real HTTP server speaking /v1/chat/completions: canned answer, slow, or HTTP 500."""

    def __init__(self, answer: str, delay: float = 0.0, status: int = 200):
        self.answer, self.delay, self.status, self.requests = answer, delay, status, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                time.sleep(outer.delay)
                if outer.status != 200:
                    self.send_error(outer.status, "boom")
                    return
                reply = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": outer.answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                try:
                    self.wfile.write(reply)
                except BrokenPipeError:       # the client gave up (the timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_llm():
    servers = []

    def make(*args, **kwargs) -> FakeLLMServer:
        servers.append(FakeLLMServer(*args, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


CANNED = "<think>hmm</think>Title: Launch moved to March\n- The launch moves to March.\n- Ana fixes the test setup."


def test_openai_backend_sends_model_key_and_messages(fake_llm):
    server = fake_llm(CANNED)
    summary = OpenAICompatibleLLM(server.url, "qwen-test", key="secret", timeout=5).summarize(TEXT)
    assert summary == Summary("Launch moved to March", ("The launch moves to March.", "Ana fixes the test setup."),
                              "openai:qwen-test")
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer secret"
    assert body["model"] == "qwen-test" and body["messages"][0]["role"] == "system"
    assert TEXT in body["messages"][-1]["content"]


def test_openai_backend_times_out(fake_llm):
    server = fake_llm(CANNED, delay=3.0)
    began = time.perf_counter()
    with pytest.raises(SummaryError, match="timed out"):
        OpenAICompatibleLLM(server.url, "m", timeout=0.5).summarize(TEXT)
    assert time.perf_counter() - began < 2.0


def test_failing_backend_falls_back_to_extractive_with_a_log_line(fake_llm, caplog):
    server = fake_llm(CANNED, status=500)
    rolling = RollingSummarizer(OpenAICompatibleLLM(server.url, "m", timeout=5))
    with caplog.at_level(logging.WARNING, logger="models.llm"):
        summary = rolling.summarize(TEXT)
    assert summary.source == "extractive" and len(summary.bullets) >= 2
    assert "HTTP 500" in caplog.text and "extractive" in caplog.text
    unreachable = RollingSummarizer(OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", timeout=2))
    assert unreachable.summarize(TEXT).source == "extractive"


def test_long_topics_are_summarised_rolling_with_bounded_prompts(fake_llm):
    server = fake_llm(CANNED)
    text = " ".join([TEXT] * 40)                               # ~7000 characters
    summary = RollingSummarizer(OpenAICompatibleLLM(server.url, "m", timeout=5), max_chars=1000).summarize(text)
    assert summary.source == "openai:m" and len(server.requests) >= 7
    prompts = [body["messages"][-1]["content"] for _, _, body in server.requests]
    assert all(len(p) < 1600 for p in prompts)
    assert "Summary so far" not in prompts[0] and all("Summary so far:\nTitle: Launch moved to March" in p
                                                      for p in prompts[1:])


def test_llm_summary_updates_the_topic_through_the_server(server_factory, fake_llm):
    """The topic goes out first with the extractive summary, then again (same index) with the LLM's."""
    from test_topics import ANIMALS, MONEY
    llm = fake_llm("Title: Dogs and cats at home\n- The dog chased the cat.\n- The puppy barks at birds.")
    server = server_factory(engine={"summaries": SummaryOptions(backend="openai", url=llm.url, model="m", timeout=5)})
    events = asyncio.run(converse(server.url(), utterances(*ANIMALS, *MONEY), start={"type": "start",
                                                                                  "session_id": "llm-topics"}))
    topics = [e for e in events if e["type"] == "topic"]
    first = [t for t in topics if t["index"] == 0]
    assert [t["summary"] for t in first] == ["extractive", "openai:m"]
    assert first[1]["title"] == "Dogs and cats at home" and first[1]["start_segment"] == 0
    second = [t for t in topics if t["index"] == 1]               # the LLM's bullets do not fit: kept extractive
    assert [t["summary"] for t in second] == ["extractive"]
    import urllib.request
    with urllib.request.urlopen(server.http("/v1/notes/llm-topics.md"), timeout=10) as r:
        md = r.read().decode()
    assert "Dogs and cats at home" in md and "The puppy barks at birds." in md


# ---------------------------------------------------------------------------------- local LLM

@pytest.mark.slow
def test_local_llm_summary_of_a_real_spoken_example():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (the `summaries` extra)")
    text = spoken_example()
    llm = LocalLLM(threads=2, timeout=120)
    began = time.perf_counter()
    summary = RollingSummarizer(llm).summarize(text)
    print(f"\n{summary.source} in {time.perf_counter() - began:.1f} s: {summary.title!r}")
    for b in summary.bullets:
        print(f"  - {b}")
    check_form(summary, text)


def test_last_final_is_not_held_back_by_the_last_summary(server_factory, fake_llm):
    """At stop the last final goes out at once; the note then waits for the slow LLM's summary. Each
    final says which endpoint rule ended it, and when."""
    import json

    from websockets.asyncio.client import connect

    from server_fixtures import s16le
    from test_topics import ANIMALS
    llm = fake_llm("Title: Dogs and cats\n- The dog chased the cat.\n- The puppy barks at birds.", delay=2.0)
    server = server_factory(engine={"summaries": SummaryOptions(backend="openai", url=llm.url, model="m", timeout=5)})

    async def session() -> list[tuple[float, dict]]:
        received = []
        async with connect(server.url(), max_size=None) as ws:
            audio = utterances(*ANIMALS)[:-16000]  # ends in speech: the stop forces the last final
            for i in range(0, len(audio), 1600):
                await ws.send(s16le(audio[i:i + 1600]))
            await ws.send(json.dumps({"type": "stop"}))
            async for message in ws:
                received.append((time.monotonic(), json.loads(message)))
        return received

    received = asyncio.run(session())
    last_final = max(t for t, e in received if e["type"] == "final")
    note = next(t for t, e in received if e["type"] == "note")
    assert any(e["type"] == "topic" and e["summary"] == "openai:m" for _, e in received)
    assert note - last_final >= 1.5, "the last final waited for the summary"
    rules = [e["endpoint"]["rule"] for _, e in received if e["type"] == "final"]
    assert rules == ["silence"] * (len(rules) - 1) + ["end_of_audio"], rules
    ats = [e["endpoint"]["at"] for _, e in received if e["type"] == "final"]
    assert all(e["end"] < e["endpoint"]["at"] for _, e in received if e["type"] == "final") and ats == sorted(ats)
