"""Written text -> its spoken form, so the tokenizer's alphabet (letters and apostrophe) can hold it.

The training corpus (`models/corpus.py`) is read aloud by speech synthesisers and also becomes the
transcripts the model learns; both must agree on how "3.5 %" or "March 3rd, 2026" is said. So
numbers, dates, times, money, symbols and common abbreviations are spelled out here, once, before
either sees the text:

    >>> spoken_form("On March 3rd, 2026 at 10:30 we spent $4.50 (15%).")
    'On March third, twenty twenty six at ten thirty we spent four dollars fifty cents (fifteen percent).'

What cannot be said unambiguously (stray digits, symbols, URLs) is left in place; `is_speakable`
then rejects the sentence, so nothing unspeakable reaches the corpus.
"""
from __future__ import annotations

import re

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
ABBREVIATIONS = {"dr.": "doctor", "mr.": "mister", "mrs.": "missus", "ms.": "miz", "prof.": "professor",
                 "st.": "saint", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example",
                 "i.e.": "that is", "approx.": "approximately", "no.": "number", "fig.": "figure",
                 "sec.": "section", "jr.": "junior", "sr.": "senior", "a.m.": "a m", "p.m.": "p m"}
SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at ", "°": " degrees"}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents")}


def cardinal(n: int) -> str:
    """0 <= n < 10**15 in words: 1234 -> 'one thousand two hundred thirty four'."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + cardinal(rest))
    for value, name in SCALES:
        if n >= value:
            if n // value >= 1000:
                break
            rest = n % value
            return cardinal(n // value) + " " + name + ("" if rest == 0 else " " + cardinal(rest))
    return digits(str(n))


def ordinal(n: int) -> str:
    words = cardinal(n).split()
    last = words[-1]
    if last in ORDINAL_WORDS:
        words[-1] = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits(text: str) -> str:
    """Digit by digit: '0815' -> 'zero eight one five'."""
    return " ".join(ONES[int(c)] for c in text if c.isdigit())


def year(n: int) -> str:
    """1999 -> 'nineteen ninety nine', 2005 -> 'two thousand five', 2026 -> 'twenty twenty six'."""
    if 2000 <= n < 2010 or n % 1000 == 0 or n < 1000:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return cardinal(high) + " hundred"
    return cardinal(high) + " " + (("oh " + ONES[low]) if low < 10 else cardinal(low))


def clock(hours: int, minutes: int) -> str:
    if minutes == 0:
        return cardinal(hours) + " o'clock"
    return cardinal(hours) + " " + (("oh " + ONES[minutes]) if minutes < 10 else cardinal(minutes))


def decimal(whole: str, frac: str) -> str:
    return cardinal(int(whole)) + " point " + digits(frac)


def money(symbol: str, whole: str, frac: str | None, scale: str | None) -> str:
    one, many, sub_one, sub_many = CURRENCIES[symbol]
    amount = int(whole.replace(",", ""))
    if scale:  # "$3.5 million" -> "three point five million dollars"
        number = decimal(str(amount), frac) if frac else cardinal(amount)
        return f"{number} {scale} {many}"
    text = f"{cardinal(amount)} {one if amount == 1 else many}"
    if frac:
        cents = int(frac.ljust(2, "0")[:2])
        if cents:
            text += f" {cardinal(cents)} {sub_one if cents == 1 else sub_many}"
    return text


def _iso_date(m: re.Match) -> str:
    y, mo, d = int(m["y"]), int(m["mo"]), int(m["d"])
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m[0]
    return f"{MONTHS[mo - 1]} {ordinal(d)} {year(y)}"


def _number(m: re.Match) -> str:
    text = m[0]
    if "," in text:
        return cardinal(int(text.replace(",", "")))
    if len(text) > 1 and text.startswith("0"):
        return digits(text)
    n = int(text)
    if len(text) == 4 and 1100 <= n <= 2099:
        return year(n)
    if n >= 10 ** 15:
        return digits(text)
    return cardinal(n)


_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"\b(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})\b"), _iso_date),
    (re.compile(r"([$£€])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s+(million|billion|thousand|trillion)\b)?"),
     lambda m: money(m[1], m[2], m[3], m[4])),
    (re.compile(r"\b(\d{1,2}):(\d{2})\b"), lambda m: clock(int(m[1]), int(m[2]))
     if int(m[1]) < 24 and int(m[2]) < 60 else m[0]),
    (re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE), lambda m: ordinal(int(m[1]))),
    (re.compile(r"\b(\d+)s\b"), lambda m: _plural(_number(re.match(r"\d+", m[1])))),
    (re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.])"), lambda m: decimal(m[1], m[2])),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b"), _number),
]


def _plural(words: str) -> str:
    """'nineteen sixty' -> 'nineteen sixties' (decades: 1960s, 80s)."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def spoken_form(text: str) -> str:
    """Spell out numbers, dates, times, money, symbols and abbreviations; keep case and punctuation."""
    text = text.replace("’", "'").replace("‘", "'")
    for abbreviation, words in ABBREVIATIONS.items():
        text = re.sub(rf"(?<![\w.]){re.escape(abbreviation)}", words, text, flags=re.IGNORECASE)
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"(\w)-(\w)", r"\1 \2", text)
    return re.sub(r"\s+", " ", text).strip()


SPEAKABLE = re.compile(r"[A-Za-z' ,.;:?!\"()-]+")


def is_speakable(text: str) -> bool:
    """True when only letters, apostrophes, spaces and plain punctuation remain (no digits, symbols)."""
    return bool(SPEAKABLE.fullmatch(text)) and any(c.isalpha() for c in text)
