"""`steno corpus build -o DIR`: the training text of the embedded default model.

Sources (all openly licensed, all from Debian packages or this repository, see `make corpus-deps`):
  fortunes      /usr/share/games/fortunes (fortunes, fortunes-min; public domain / BSD)
  bible         the King James Bible through the `bible` program (bible-kjv; public domain)
  wordnet       WordNet 3.0 usage examples and glosses (wordnet-base; WordNet licence, BSD-like)
  wordlist      random runs of words from /usr/share/dict/american-english (wamerican; public domain)
                for spelling coverage; audio only, kept out of the LM text (they are not sentences)
  meeting       models/data/meeting_sentences.txt (written for Steno) plus generated sentences with
                numbers, dates, times and amounts (lecture and meeting vocabulary)

Every sentence is put in its spoken form (`models.spoken`: numbers, dates, money, abbreviations
spelled out); sentences with anything still unspeakable are dropped. A sentence's split is decided by
a hash of its normalised text, so the held-out text is stable across runs and machines, and a
sentence repeated in two sources cannot land on both sides. The evaluation recordings' transcripts
(shared/eval) are never read.

Output in DIR:
  train.txt      spoken-form sentences for synthesis (case and punctuation kept, for prosody)
  heldout.txt    the same for held-out text: never trained on, never in the LM
  lm_train.txt   normalised training sentences without the word lists: the LM's corpus
  stats.json     sentences and words per source and split
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.spoken import MONTHS, is_speakable, spoken_form
from models.tokenizer import normalize_text

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_SKIP = {"art", "ascii-art", "translate-me"}
WORDNET_DIR = Path("/usr/share/wordnet")
WORDLIST = Path("/usr/share/dict/american-english")
MEETING_FILE = Path(__file__).parent / "data" / "meeting_sentences.txt"
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]*\s+(?=[\"'(]*[A-Z])")


@dataclass(frozen=True)
class CorpusOptions:
    heldout_permille: int = 20            # share of sentences held out, by hash of the text
    min_words: int = 3
    max_words: int = 25
    caps: dict[str, int] = field(default_factory=lambda: {
        "fortunes": 60_000, "bible": 40_000, "wordnet_examples": 40_000, "wordnet_glosses": 30_000,
        "wordlist": 6_000, "meeting": 12_000})
    templates: int = 10_000               # generated number/date/time sentences
    seed: int = 0


# -- sources: each yields raw sentences --------------------------------------------------------

def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(re.sub(r"\s+", " ", text)) if s.strip()]


def fortunes(root: Path = FORTUNE_DIR) -> Iterator[str]:
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.suffix or path.name in FORTUNE_SKIP or not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not re.match(r"\s*(--|\(\d+\)|[-=_*#|/\\]{3})", ln)]
            if sum(c.isalpha() for c in entry) < 0.6 * max(1, len(entry.replace(" ", ""))):
                continue  # tables, code, ASCII art
            yield from split_sentences(" ".join(lines))


def bible() -> Iterator[str]:
    program = shutil.which("bible")
    if program is None:
        return
    out = subprocess.run([program, "-l100000", "gen1:1-rev22:21"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s+\d+\s+(.*)", line)
        if m:  # long verses are cut at clause boundaries too
            for sentence in split_sentences(m[1]):
                yield from (p.strip() for p in re.split(r"(?<=[;:])\s+", sentence)) \
                    if len(sentence.split()) > 25 else [sentence]


def wordnet(kind: str, root: Path = WORDNET_DIR) -> Iterator[str]:
    """kind 'examples': the quoted usage examples; 'glosses': the definitions."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1]
            if kind == "examples":
                yield from (q[0].upper() + q[1:] for q in re.findall(r'"([^"]{10,})"', gloss))
            else:
                definition = gloss.split(";")[0].strip()
                if definition and '"' not in definition:
                    yield definition[0].upper() + definition[1:] + "."


def wordlist(n: int, seed: int, path: Path = WORDLIST) -> Iterator[str]:
    if not path.is_file():
        return
    words = [w for w in path.read_text(encoding="utf-8", errors="replace").split()
             if w.isascii() and w.isalpha() and w.islower()]
    rng = random.Random(seed)
    for _ in range(n):
        yield " ".join(rng.sample(words, rng.randint(4, 9)))


def meeting_file(path: Path = MEETING_FILE) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            yield line.strip()


TEMPLATES = (
    "The meeting is on {month} {day_ord}, {year} at {time}.",
    "Please send the report by {weekday}, {month} {day_ord}.",
    "We have {n} participants and {m} of them joined remotely.",
    "The budget for {year} is ${amount} thousand.",
    "Revenue grew by {pct}% in the {ord} quarter.",
    "The deadline moved from the {day_ord} to the {day2_ord} of {month}.",
    "Train number {n} leaves from platform {small} at {time}.",
    "Room {room} is booked from {time} to {time2} on {weekday}.",
    "Version {small}.{small2} was released in {month} {year}.",
    "The model has {n} layers and {m} million parameters.",
    "It costs ${amount}.{cents} including tax.",
    "Between {year} and {year2} the population grew to {big} people.",
    "Question {small} is worth {m} points out of {hundred}.",
    "Turn to page {n} and read the {ord} paragraph.",
    "The temperature today is {small} degrees, {m} degrees warmer than yesterday.",
    "Our next call is scheduled for {date} at {time}.",
    "The {ord} speaker talked for {m} minutes about {topic}.",
    "About {pct}% of the errors come from {topic}.",
)
TOPICS = ("the database", "the network", "speech recognition", "the user interface", "the budget",
          "machine learning", "climate change", "the new office", "the hiring plan", "security")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def templates(n: int, seed: int) -> Iterator[str]:
    """Number/date/time sentences; ordinals are written "<n>th" (the normaliser reads any suffix)."""
    rng = random.Random(seed)
    for _ in range(n):
        hour, hour2 = rng.randint(1, 12), rng.randint(1, 12)
        values = {
            "month": rng.choice(MONTHS), "day_ord": f"{rng.randint(1, 31)}th",
            "day2_ord": f"{rng.randint(1, 28)}th", "year": rng.randint(1950, 2040),
            "year2": rng.randint(1950, 2040), "time": f"{hour}:{rng.choice([0, 15, 30, 45, rng.randint(1, 59)]):02d}",
            "time2": f"{hour2}:{rng.choice([0, 30]):02d}", "weekday": rng.choice(WEEKDAYS),
            "n": rng.randint(2, 999), "m": rng.randint(1, 99), "small": rng.randint(1, 20),
            "small2": rng.randint(0, 9), "amount": rng.randint(1, 9999), "cents": f"{rng.randint(0, 99):02d}",
            "pct": rng.choice([rng.randint(1, 99), f"{rng.randint(0, 99)}.{rng.randint(1, 9)}"]),
            "ord": f"{rng.randint(1, 4)}th", "room": rng.randint(100, 950),
            "big": f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}", "hundred": rng.choice([50, 100, 200]),
            "date": f"{rng.randint(2000, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "topic": rng.choice(TOPICS)}
        yield rng.choice(TEMPLATES).format(**values)


# -- cleaning, splitting, writing -------------------------------------------------------------

def clean(raw: str, options: CorpusOptions) -> str | None:
    """Spoken form of a raw sentence, or None when it is unspeakable, too short or too long."""
    text = spoken_form(raw)
    # shouted words would be spelled letter by letter by some synthesisers, read as words by others
    text = re.sub(r"\b[A-Z]{2,}\b", lambda m: m[0].lower(), text)
    text = text.replace("_", " ")
    if not is_speakable(text):
        return None
    n = len(normalize_text(text).split())
    return text if options.min_words <= n <= options.max_words else None


def is_heldout(normalised: str, permille: int) -> bool:
    digest = hashlib.sha1(normalised.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < permille


def gather(options: CorpusOptions) -> dict[str, list[str]]:
    """Raw sentences per source, each capped (a seeded sample) at options.caps[source]."""
    rng = random.Random(options.seed)
    sources = {
        "fortunes": lambda: fortunes(),
        "bible": lambda: bible(),
        "wordnet_examples": lambda: wordnet("examples"),
        "wordnet_glosses": lambda: wordnet("glosses"),
        "wordlist": lambda: wordlist(options.caps.get("wordlist", 0), options.seed),
        "meeting": lambda: [*meeting_file(), *templates(options.templates, options.seed)],
    }
    out = {}
    for name, make in sources.items():
        sentences = list(make())
        cap = options.caps.get(name, len(sentences))
        out[name] = rng.sample(sentences, cap) if len(sentences) > cap else sentences
    return out


def build_corpus(out_dir: str | Path, options: CorpusOptions = CorpusOptions(),
                 raw: dict[str, list[str]] | None = None) -> dict:
    """Write train.txt, heldout.txt, lm_train.txt and stats.json; returns the stats."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = gather(options) if raw is None else raw
    seen: set[str] = set()
    splits: dict[str, list[tuple[str, str, str]]] = {"train": [], "heldout": []}
    for source, sentences in raw.items():
        for sentence in sentences:
            text = clean(sentence, options)
            if text is None:
                continue
            normalised = normalize_text(text)
            if normalised in seen:
                continue
            seen.add(normalised)
            split = "heldout" if is_heldout(normalised, options.heldout_permille) else "train"
            splits[split].append((source, text, normalised))
    stats: dict = {"options": asdict(options)}
    for split, rows in splits.items():
        rows.sort(key=lambda r: hashlib.sha1(r[2].encode()).digest())  # stable, source-mixed order
        (out / f"{split}.txt").write_text("".join(f"{t}\n" for _, t, _ in rows), encoding="utf-8")
        per_source = Counter(s for s, _, _ in rows)
        words = Counter()
        for s, _, n in rows:
            words[s] += len(n.split())
        stats[split] = {"sentences": len(rows), "words": sum(words.values()),
                        "sources": {s: {"sentences": per_source[s], "words": words[s]} for s in sorted(per_source)}}
    lm_rows = [n for s, _, n in splits["train"] if s != "wordlist"]
    (out / "lm_train.txt").write_text("".join(f"{n}\n" for n in lm_rows), encoding="utf-8")
    stats["lm_train"] = {"sentences": len(lm_rows), "words": sum(len(n.split()) for n in lm_rows)}
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    return stats


def read_sentences(path: str | Path) -> list[str]:
    """One sentence a line; a .gz file is read compressed (what travels to a device machine)."""
    path = Path(path)
    if path.suffix == ".gz":
        import gzip

        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
