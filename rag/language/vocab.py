"""The one vocabulary loader: every word list of Chinese policy language is a file in `rag/resources/vocab/`
(shipped inside the package, see its README), read here and nowhere else.

Which folder is read: the one passed, else the one the running engine was built with (`use_vocabulary`, called
with `settings.vocab_dir`), else `RAG_VOCAB_DIR`, else the package's own. So `RAG_VOCAB_DIR` reaches every
step — question understanding, follow-ups, plans, grounding, titles at ingest and the BM25 tokenizer.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from dataclasses import dataclass, field
from pathlib import Path


def package_dir(name: str) -> Path:
    """A folder shipped inside the package (`vocab`, `prompts`): found through importlib.resources, so an installed
    wheel finds its own copy wherever it is installed."""
    return Path(str(importlib.resources.files("rag") / "resources" / name))


_configured: Path | None = None


def use_vocabulary(vocab_dir: Path | str | None) -> None:
    """Make `vocab_dir` the folder read by every `load_vocabulary()` without an argument (the engine's settings)."""
    global _configured
    _configured = _folder(vocab_dir)


def _folder(value: Path | str | None) -> Path | None:
    """A folder setting, or None when unset ("" reads back from a Path as ".")."""
    return Path(value) if value and str(value) not in ("", ".") else None


def vocab_dir() -> Path:
    """The folder in use: configured, else RAG_VOCAB_DIR, else the package's."""
    if _configured is not None:
        return _configured
    env = os.environ.get("RAG_VOCAB_DIR", "")
    return Path(env).expanduser() if env else package_dir("vocab")


def _lines(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append([cell.strip() for cell in line.split("\t")])
    return rows


def _optional_lines(path: Path) -> list[list[str]]:
    return _lines(path) if path.exists() else []


def _classes(path: Path) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for row in _lines(path):
        out.setdefault(row[0], []).append(row[1])
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in out.items()}


@dataclass(frozen=True)
class Vocabulary:
    synonyms: tuple[tuple[str, tuple[str, ...]], ...]
    provinces: tuple[str, ...]
    cities: tuple[str, ...]
    place_aliases: dict  # english / short name (lower case) → Chinese
    facets: tuple[tuple[str, str], ...]
    chatter: frozenset
    injection: tuple[str, ...]
    out_of_scope: tuple[tuple[str, str], ...]
    domain: tuple[str, ...]
    units: tuple[tuple[str, tuple[str, ...]], ...] = ()
    words: dict = field(default_factory=dict)  # question_words.tsv: class → words (longest first)
    document_kinds: tuple[str, ...] = ()  # document_kinds.txt: words a document's title ends with
    document_instructions: tuple[str, ...] = ()  # document_instructions.txt: text in a document aimed at an assistant
    suggestions: tuple[str, ...] = ()  # suggestions.txt: templates of suggested follow-up questions
    segmentation: tuple[str, ...] = ()  # segmentation.txt: words jieba must keep whole (知识产权, 质押融资, places)
    stop_words: frozenset = frozenset()  # stop_words.txt: tokens BM25 and coverage ignore
    model_refusals: tuple[str, ...] = ()  # model_refusals.txt: how a model says the passages do not answer
    page_chrome: tuple[str, ...] = ()  # page_chrome.txt: patterns of whole lines that are page furniture
    example_asks: tuple[str, ...] = ()  # example_asks.txt: questions built from a held document's title
    place_suffixes: tuple[str, ...] = ()  # place_suffixes.txt: 特别行政区, 自治区, 省, 市 … (in the order tried)
    source: str = ""  # the folder read

    def has(self, word_class: str, text: str) -> bool:
        """Does `text` hold a word of this class of question_words.tsv?"""
        return any(word in text for word in self.words.get(word_class, ()))

    def of(self, word_class: str) -> tuple[str, ...]:
        """The words of one class of question_words.tsv (longest first)."""
        return self.words.get(word_class, ())

    def without(self, word_class: str, text: str) -> str:
        """`text` with each word of this class (longest first) replaced by a space."""
        for word in self.of(word_class):
            text = text.replace(word, " ")
        return text

    def alternation(self, word_class: str) -> str:
        """The words of a class as a regular-expression alternation (longest first), for patterns built on them."""
        return "|".join(re.escape(w) for w in self.of(word_class)) or "(?!)"

    @functools.cached_property
    def place_re(self) -> re.Pattern:
        return re.compile("|".join(sorted(self.provinces + self.cities, key=len, reverse=True)))

    @functools.cached_property
    def model_refusal_re(self) -> re.Pattern:
        return re.compile("|".join(re.escape(p) for p in self.model_refusals) or "(?!)", re.IGNORECASE)

    @functools.cached_property
    def page_chrome_re(self) -> re.Pattern:
        return re.compile(r"^\s*(?:" + "|".join(self.page_chrome) + r")\s*$" if self.page_chrome else "(?!)")

    @functools.cached_property
    def answer_kind_cues(self) -> tuple[str, ...]:
        """Words that only say what kind of answer is wanted: the interrogative figure and yes/no cues of facets.tsv
        (目标, 增幅, 结案率 are figure cues too, but they carry content), answer-shape words and fillers."""
        ask = self.of("interrogative")
        cues = {cue for facet, cue in self.facets if facet in ("figure", "yesno") and any(a in cue for a in ask)}
        cues |= set(self.of("answer_shape")) | set(self.of("filler"))
        return tuple(sorted(cues, key=len, reverse=True))

    @functools.cached_property
    def quantity_cues(self) -> tuple[str, ...]:
        """Figure cues of facets.tsv that ask for a number by themselves ("多少", "多久", "占比"); words such as 目标
        or 达到 are figure cues too but also head questions whose answer is not a number (figure_not_alone)."""
        alone = self.of("figure_not_alone")
        return tuple(cue for cue in self.facet_cues("figure") if cue not in alone) + self.of("figure_extra")

    def facet_cues(self, *facets: str) -> tuple[str, ...]:
        return tuple(cue for facet, cue in self.facets if facet in facets)


def load_vocabulary(folder: Path | str | None = None) -> Vocabulary:
    """The vocabulary of `folder` (default: `vocab_dir()`), read once per folder."""
    return _read(_folder(folder) or vocab_dir())


# Files every vocabulary folder holds; the others (segmentation.txt, page_chrome.txt …) may be left out.
REQUIRED = ("synonyms.tsv", "places.tsv", "facets.tsv", "chatter.tsv", "injection.tsv", "document_instructions.txt",
            "suggestions.txt", "out_of_scope.tsv", "domain.txt", "units.tsv", "question_words.tsv", "document_kinds.txt")


@functools.lru_cache(maxsize=8)
def _read(folder: Path) -> Vocabulary:
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        from rag.errors import SettingsError

        raise SettingsError(f"RAG_VOCAB_DIR {folder}: missing {', '.join(missing)}",
                            f"词表目录 {folder} 不存在或不完整（缺少 {'、'.join(missing[:3])}{' 等' if len(missing) > 3 else ''}），"
                            "请检查 RAG_VOCAB_DIR 设置。")
    synonyms = tuple((row[0].lower(), tuple(row[1].split("|"))) for row in _lines(folder / "synonyms.tsv"))
    provinces: list[str] = []
    cities: list[str] = []
    aliases = {}
    for row in _lines(folder / "places.tsv"):
        (provinces if row[0] == "province" else cities).append(row[1])
        for alias in (row[2].split("|") if len(row) > 2 else []):
            aliases[alias.lower()] = row[1]
    return Vocabulary(
        synonyms=tuple(sorted(synonyms, key=lambda s: -len(s[0]))),
        provinces=tuple(provinces),
        cities=tuple(cities),
        place_aliases=aliases,
        facets=tuple((row[0], row[1].lower()) for row in _lines(folder / "facets.tsv")),
        chatter=frozenset(row[0].lower() for row in _lines(folder / "chatter.tsv")),
        injection=tuple(row[0].lower() for row in _lines(folder / "injection.tsv")),
        document_instructions=tuple(row[0].lower() for row in _lines(folder / "document_instructions.txt")),
        suggestions=tuple(row[0] for row in _lines(folder / "suggestions.txt")),
        out_of_scope=tuple((row[0], row[1].lower()) for row in _lines(folder / "out_of_scope.tsv")),
        domain=tuple(row[0].lower() for row in _lines(folder / "domain.txt")),
        units=tuple((row[0], tuple(row[1].split("|"))) for row in _lines(folder / "units.tsv")),
        words=_classes(folder / "question_words.tsv"),
        document_kinds=tuple(w for row in _lines(folder / "document_kinds.txt") for w in row[0].split()),
        segmentation=tuple(w for row in _optional_lines(folder / "segmentation.txt") for w in row[0].split()),
        stop_words=frozenset(w for row in _optional_lines(folder / "stop_words.txt") for w in row[0].split()),
        model_refusals=tuple(row[0] for row in _optional_lines(folder / "model_refusals.txt")),
        page_chrome=tuple(row[0] for row in _optional_lines(folder / "page_chrome.txt")),
        example_asks=tuple(row[0] for row in _optional_lines(folder / "example_asks.txt")),
        place_suffixes=tuple(row[0] for row in _optional_lines(folder / "place_suffixes.txt")),
        source=str(folder),
    )
