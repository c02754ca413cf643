"""Place names in a question, for any place in China, not only the documents' own.

The gazetteer is the administrative-division table shipped in the `cpca` package (3,500 provinces, cities,
districts and counties; read as a file, the package is not imported) plus `vocab/places.tsv` (short and English names).
A county or county-level city is also known by its name without 市/县 (义乌市 → 义乌); districts only by their full
name ("和平区", never "和平": district names are often everyday words). Names the question says that are not places
("全国", "本市") are in `vocab/not_places.txt`.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import re
from pathlib import Path

from rag.language.text import _tokenizer
from rag.language.vocab import load_vocabulary

MAX_NAME = 12


def gazetteer(vocab_dir: str = "") -> dict[str, str]:
    """Every way a place may be written → its short name (the form documents' regions are compared in)."""
    return _gazetteer(load_vocabulary(vocab_dir or None).source)


@functools.lru_cache(maxsize=4)
def _gazetteer(source: str) -> dict[str, str]:
    folder = Path(source)
    suffixes = load_vocabulary(folder).place_suffixes
    names: dict[str, str] = {}
    try:
        table = Path(str(importlib.metadata.distribution("cpca").locate_file("cpca/resources/adcodes.csv")))
        rows = list(csv.DictReader(table.open(encoding="utf-8")))
    except (importlib.metadata.PackageNotFoundError, OSError):
        rows = []
    for row in rows:
        full = row["name"].strip()
        short = _short(full, suffixes)
        names[full] = short
        if short != full and not full.endswith("区") and len(short) >= 2:
            names.setdefault(short, short)
    places = folder / "places.tsv"
    if places.exists():
        for line in places.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.split("\t")]
            if len(cells) < 2 or line.startswith("#"):
                continue
            name = cells[1]
            names[name] = name
            for alias in (cells[2].split("|") if len(cells) > 2 else []):
                if alias and re.search(r"[\u4e00-\u9fff]", alias):
                    names.setdefault(alias, name)
    stop = folder / "not_places.txt"
    if stop.exists():
        for word in stop.read_text(encoding="utf-8").split():
            if not word.startswith("#"):
                names.pop(word, None)
    return names


def province_of(place: str, vocab_dir: str = "") -> str:
    """The short name of the province a place is in (淄博 → 山东, 山东 → 山东; cpca's division codes), '' if unknown."""
    return _provinces(load_vocabulary(vocab_dir or None).source).get(place, "")


@functools.lru_cache(maxsize=4)
def _provinces(source: str) -> dict[str, str]:
    suffixes = load_vocabulary(Path(source)).place_suffixes
    try:
        table = Path(str(importlib.metadata.distribution("cpca").locate_file("cpca/resources/adcodes.csv")))
        rows = list(csv.DictReader(table.open(encoding="utf-8")))
    except (importlib.metadata.PackageNotFoundError, OSError):
        return {}
    heads = {row["adcode"][:2]: _short(row["name"].strip(), suffixes) for row in rows if row["adcode"][2:].strip("0") == ""}
    out: dict[str, str] = {}
    for row in rows:
        province = heads.get(row["adcode"][:2], "")
        full = row["name"].strip()
        for name in (full, _short(full, suffixes)):
            out.setdefault(name, province)
    return out


def _short(full: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if full.endswith(suffix) and len(full) - len(suffix) >= 2:
            return full[: -len(suffix)]
    return full


def places_named(text: str, vocab_dir: str = "") -> list[str]:
    """The places `text` names, in order, as short names (浙江省义乌市 → 浙江, 义乌); the longest name wins."""
    source = load_vocabulary(vocab_dir or None).source
    names = _gazetteer(source)
    starts, ends = _word_bounds(text, source)
    found: list[str] = []
    i = 0
    while i < len(text):
        for size in range(min(MAX_NAME, len(text) - i), 1, -1):
            place = names.get(text[i : i + size])
            # a name inside a longer word is not a place (中华人民共和国 holds 共和, 普通许可 holds 通许)
            if place and i in starts and i + size in ends:
                if place not in found:
                    found.append(place)
                i += size
                break
        else:
            i += 1
    return found


def _word_bounds(text: str, source: str) -> tuple[set[int], set[int]]:
    """Where jieba's words start and end in `text` (a place name must start and end on word boundaries)."""
    starts: set[int] = set()
    ends: set[int] = set()
    at = 0
    for word in _tokenizer(source).cut(text):
        starts.add(at)
        # one word may hold a place and its suffix (义乌市), or several places (上海市浦东新区): a division suffix
        # inside a word is a boundary on both sides
        for j, ch in enumerate(word):
            if ch in "省市县区":
                ends.update((at + j, at + j + 1))
                starts.add(at + j + 1)
            elif word[j:].startswith("新区"):
                ends.add(at + j)
        at += len(word)
        ends.add(at)
    return starts, ends


def places_in(text: str) -> list[str]:
    """Place names mentioned in `text`, in order, without 省/市 suffixes (湖南省 → 湖南): any place in China, not only
    the documents' own."""
    return places_named(text)


def short_forms(region: str, vocab_dir: str = "") -> set[str]:
    """How a text may name a document's region: the full name and the short name of its most specific place
    ('内蒙古自治区乌海市' → {'内蒙古自治区乌海市', '乌海'})."""
    named = places_named(region, vocab_dir)
    return {region} | ({named[-1]} if named else set())
