"""Pinyin left unconverted in a question ("深圳zhuanli优先审查", "反不正当竞争法 qinfan shangye mimi 罚款多少"): an
input method's Latin letters sent as typed. A run of lower-case Latin words that reads whole as toneless pinyin is
written as the words it spells — the most frequent words of jieba's dictionary (the tokenizer's own) whose readings
(pypinyin's table, each character's two main readings) are those syllables. English words are left alone: a run is converted only when every word parses
into syllables and every syllable group is a dictionary word of two or more characters ("layout", "design", "IP"
do not; upper case is never pinyin)."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable

from rag.language.text import word_frequencies

_RUN = re.compile(r"(?<![A-Za-z])[a-z]+(?:[ '][a-z]+)*(?![A-Za-z])")
CHARS_PER_SYLLABLE = 60  # the commonest characters read as a syllable that a two-syllable word is looked for among
CHARS_IN_LONGER = 25  # … that a three-syllable word is looked for among
MAX_WORD = 3  # syllables in one dictionary word looked up
MIN_FREQUENCY = 50  # a dictionary word rarer than this is no reading of a typed syllable group
SECOND_READING = 0.01  # a character read by its second reading makes a word this much less likely
MIN_LONE_LETTERS = 5  # a pinyin word standing alone is this long: "zhuanli", not "demo" (地貌) or "dili"


def hanzi_for_pinyin(text: str, held: Callable[[str], int] | None = None) -> str:
    """`text` with each run of lower-case pinyin written in characters; text without such a run is returned as is.
    `held`: how many of the library's passages hold a word — of the words a syllable group reads as, the library's
    own come first (dengji is 登记 in a library of registrations, not the commoner 等级)."""
    if not re.search(r"[a-z]", text):
        return text
    return _RUN.sub(lambda m: _convert(m.group(), held or (lambda word: 0)) or m.group(), text)


def _convert(run: str, held: Callable[[str], int]) -> str:
    words = []
    parts = re.split(r"[ ']", run)
    if len(parts) == 1 and len(run) < MIN_LONE_LETTERS:
        return ""
    for word in parts:
        syllables = _syllables(word)
        if syllables is None:
            return ""
        spelled = _spell(tuple(syllables), held)
        if not spelled:
            return ""
        words.append(spelled)
    return "".join(words)


def _syllables(word: str) -> list[str] | None:
    """The syllables a word reads as (fewest syllables, longest first: xian → xian, not xi'an); None if it is no
    pinyin."""
    table = _table()  # the syllables are its keys
    best: list[list[str] | None] = [None] * (len(word) + 1)
    best[0] = []
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 6), end):
            before = best[start]
            if before is not None and word[start:end] in table:
                candidate = before + [word[start:end]]
                if best[end] is None or len(candidate) < len(best[end]):  # type: ignore[arg-type]
                    best[end] = candidate
    return best[len(word)]


def _spell(syllables: tuple[str, ...], held: Callable[[str], int]) -> str:
    """The best split of the syllables into dictionary words of two or more characters — the words the library holds
    most, then the likeliest — or '' if there is none."""
    n = len(syllables)
    score: list[tuple[float, float, str] | None] = [None] * (n + 1)
    score[0] = (0.0, 0.0, "")
    for end in range(2, n + 1):
        for length in range(2, min(MAX_WORD, end) + 1):
            before = score[end - length]
            readings = _words(syllables[end - length:end])
            if before is None or not readings:
                continue
            weight, word = max(readings, key=lambda r: (held(r[1]), r[0]))
            candidate = (before[0] + math.log1p(held(word)), before[1] + math.log(weight), before[2] + word)
            if score[end] is None or candidate[:2] > score[end][:2]:  # type: ignore[index]
                score[end] = candidate
    best = score[n]
    return best[2] if best else ""


@functools.lru_cache(maxsize=4096)
def _words(syllables: tuple[str, ...]) -> list[tuple[float, str]]:
    """The dictionary words read as these syllables, each with its weight: its frequency, divided for each character
    read by its second reading (地理, not 地位, for di-li)."""
    table, freq = _table(), _frequencies()
    width = CHARS_PER_SYLLABLE if len(syllables) <= 2 else CHARS_IN_LONGER
    words = [("", 1.0)]
    for syllable in syllables:
        words = [(w + c, weight * (1.0 if main else SECOND_READING)) for w, weight in words
                 for c, main in table.get(syllable, [])[:width]]
    return [(freq[w] * weight, w) for w, weight in words if freq.get(w, 0) >= MIN_FREQUENCY]


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, list[tuple[str, bool]]]:
    """Toneless syllable → its commonest characters, each with whether it is the character's main reading (pypinyin's
    reading table, the tokenizer's character frequencies)."""
    from pypinyin.pinyin_dict import pinyin_dict

    freq = _frequencies()
    table: dict[str, dict[str, bool]] = {}
    for code, readings in pinyin_dict.items():
        for rank, reading in enumerate(readings.split(",")[:2]):  # 重 zhong, chong; 示 shi, qi (never zhi)
            plain = "".join(c for c in unicodedata.normalize("NFD", reading) if not unicodedata.combining(c))
            chars = table.setdefault(plain.replace("ü", "v"), {})
            chars[chr(code)] = chars.get(chr(code), False) or rank == 0
    return {s: sorted(chars.items(), key=lambda item: -freq.get(item[0], 0))[:CHARS_PER_SYLLABLE]
            for s, chars in table.items()}


def _frequencies() -> dict[str, int]:
    return word_frequencies()
