"""Replies in the Vosk server's JSON, so existing Vosk clients work unchanged.

Vosk answers every audio message with `{"partial": …}` or, when an utterance ended, with
`{"text": …, "result": [{"conf", "start", "end", "word"}, …]}`; `{"eof": 1}` gets the last result.
"""
from __future__ import annotations


def vosk_reply(events: list[dict], current_partial: str, final: bool = False) -> dict:
    finals = [e for e in events if e["type"] == "final"]
    if finals or final:
        return {"result": [{"conf": w["confidence"], "end": w["end"], "start": w["start"], "word": w["word"]}
                           for f in finals for w in f["words"]],
                "text": " ".join(f["text"] for f in finals)}
    partials = [e["text"] for e in events if e["type"] == "partial"]
    return {"partial": partials[-1] if partials else current_partial}
