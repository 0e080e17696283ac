"""Compare topic summarisers on a fixed set of topic texts: quality by a simple rubric, CPU latency.

Candidates: the packaged local LLMs in models.llm.LOCAL_MODELS that are installed (instruction-
tuned ones through their chat template, base ones through a few-shot completion prompt), and the
extractive summariser as the baseline every LLM must beat.

Rubric, per topic, each part in [0, 1], the score is their mean:
  form      the answer parses: a title of 1-8 words and 2-5 bullets (else 0 for every part)
  faithful  share of bullets whose content words are at least 60 % found in the topic text
  title     the title names the topic: it holds one of the topic's key terms (listed below)
  coverage  share of the topic's key facts (keyword sets below) that some bullet states
  grounded  1 if no name or number appears in the output that is not in the text, else 0
The answer is parsed leniently (no dropping of unsupported bullets), so the model is judged, not
the server's faithfulness filter.

    python -m bench.summary_eval [--threads 2] [--models smollm2-135m-instruct,gemma3-270m]
"""
from __future__ import annotations

import argparse
import re
import statistics
import time

from models.llm import (COMPLETION_STOPS, LOCAL_MODELS, ExtractiveSummarizer, LocalLLM, Summary, SummaryError, _chatml,
                        chat_messages, completion_prompt, content_words, parse_summary, _stem)

TOPICS = [
    dict(text="So the first thing today is the budget for the new library building. The city council approved "
              "two million dollars last month. But the construction bids came in higher than we expected, the "
              "lowest bid was two point six million. We talked about dropping the reading room on the second "
              "floor, or asking the county for a grant to cover the gap. Maria will call the county office on "
              "Monday and report back at the next meeting.",
         terms={"library", "budget", "bids", "construction"},
         facts=[{"council", "million"}, {"bid"}, {"reading", "grant", "county"}, {"maria"}]),
    dict(text="Okay, let's continue with photosynthesis. Plants take in carbon dioxide through small pores in the "
              "leaves called stomata. Inside the chloroplasts, chlorophyll absorbs light, mostly red and blue light, "
              "which is why leaves look green. The light energy splits water, and oxygen is released as a by-product. "
              "The energy is stored in sugar, glucose, which the plant uses to grow.",
         terms={"photosynthesis", "plants", "light", "chlorophyll"},
         facts=[{"carbon", "stomata"}, {"chlorophyll", "light"}, {"water", "oxygen"}, {"sugar", "glucose"}]),
    dict(text="Next, the login bug. Since version four point two of the Android app, about five percent of users "
              "cannot log in. The crash happens when the password contains an emoji. Priya found that the new "
              "keyboard library encodes the text differently. We will roll back that library today and ship a fix "
              "on Thursday. Support should tell affected users to update the app.",
         terms={"login", "bug", "android", "app", "crash"},
         facts=[{"percent", "users"}, {"emoji", "password"}, {"keyboard", "library"}, {"thursday", "fix", "roll"}]),
    dict(text="About the trip to the conference in Lisbon. The conference runs from the twelfth to the fifteenth of "
              "May. Flights from Berlin are cheapest on the eleventh, so we should book those this week. The hotel "
              "near the venue is full, so John booked rooms in a guest house about ten minutes away by tram. Each "
              "person gets a daily allowance of sixty euros for meals.",
         terms={"lisbon", "conference", "trip", "travel", "flights"},
         facts=[{"may", "twelfth"}, {"flights", "berlin"}, {"hotel", "guest", "john"}, {"allowance", "euros"}]),
    dict(text="Now for the bread. Mix five hundred grams of flour with ten grams of salt and seven grams of yeast. "
              "Add about three hundred and fifty millilitres of warm water and knead for ten minutes until the dough "
              "is smooth. Let it rise for an hour, until it doubles. Then shape the loaf and bake it at two hundred "
              "and twenty degrees for thirty minutes.",
         terms={"bread", "dough", "baking", "loaf", "recipe"},
         facts=[{"flour", "salt", "yeast"}, {"water", "knead"}, {"rise", "hour"}, {"bake", "degrees", "minutes"}]),
]


def score(summary: Summary | None, topic: dict) -> dict[str, float]:
    if summary is None:
        return dict(form=0.0, faithful=0.0, title=0.0, coverage=0.0, grounded=0.0, total=0.0)
    source = {_stem(w) for w in content_words(topic["text"])}
    faithful = statistics.mean(
        (len({_stem(w) for w in content_words(b)} & source) >= 0.6 * max(1, len({_stem(w) for w in content_words(b)})))
        for b in summary.bullets)
    title_words = {_stem(w) for w in content_words(summary.title)}
    title = float(bool(title_words & {_stem(t) for t in topic["terms"]}))
    bullet_words = [{_stem(w) for w in content_words(b)} for b in summary.bullets]
    coverage = statistics.mean(any({_stem(k) for k in fact} & words for words in bullet_words)
                               for fact in topic["facts"])
    output = summary.title + " " + " ".join(summary.bullets)
    text_lower = topic["text"].lower()
    names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+\b|\b\d+\b", output)
    grounded = float(all(n.lower() in text_lower for n in names))
    parts = dict(form=1.0, faithful=float(faithful), title=title, coverage=float(coverage), grounded=grounded)
    return {**parts, "total": statistics.mean(parts.values())}


def run_llm(llm: LocalLLM, text: str) -> tuple[str, Summary | None]:
    if llm.spec.chat:
        raw = llm.complete(_chatml(chat_messages(text, None, examples=True)), stop=["<|im_end|>"])
    else:
        raw = "Title:" + llm.complete(completion_prompt(text, None), stop=COMPLETION_STOPS)
    try:
        return raw, parse_summary(raw, text, llm.name, min_support=0.0)
    except SummaryError:
        return raw, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(LOCAL_MODELS))
    parser.add_argument("--show", action="store_true", help="print every answer")
    args = parser.parse_args()

    rows = []
    extractive = ExtractiveSummarizer()
    began = time.perf_counter()
    scores = [score(extractive.summarize(t["text"]), t) for t in TOPICS]
    rows.append(("extractive", "-", scores, (time.perf_counter() - began) / len(TOPICS), 0.0))
    for name in args.models.split(","):
        try:
            began = time.perf_counter()
            llm = LocalLLM(name, threads=args.threads, timeout=120)
            load = time.perf_counter() - began
        except Exception as exc:
            print(f"{name}: not available ({exc})")
            continue
        scores, times = [], []
        for topic in TOPICS:
            began = time.perf_counter()
            raw, summary = run_llm(llm, topic["text"])
            times.append(time.perf_counter() - began)
            scores.append(score(summary, topic))
            if args.show:
                print(f"--- {name} ({times[-1]:.1f} s) -> {summary}\n{raw.strip()}\n")
        size = llm.spec.path().stat().st_size / 1e6
        rows.append((name, f"{size:.0f} MB", scores, statistics.mean(times), load))

    print(f"{'candidate':24s} {'size':>7s} {'form':>5s} {'faith':>5s} {'title':>5s} {'cover':>5s} {'grnd':>5s} "
          f"{'SCORE':>5s} {'s/topic':>8s} {'load s':>6s}")
    for name, size, scores, latency, load in rows:
        m = {k: statistics.mean(s[k] for s in scores) for k in scores[0]}
        print(f"{name:24s} {size:>7s} {m['form']:5.2f} {m['faithful']:5.2f} {m['title']:5.2f} {m['coverage']:5.2f} "
              f"{m['grounded']:5.2f} {m['total']:5.2f} {latency:8.2f} {load:6.1f}")
    print(" ".join(f"{name.split('/')[-1]}_score={statistics.mean(s['total'] for s in scores):.2f}"
                   for name, _, scores, _, _ in rows))


if __name__ == "__main__":
    main()
