"""A synthetic provincial policy library for the scale benchmark.

The seed documents are re-issued by fictional provinces and cities: every place name (full and short forms) is
replaced, numbers that are not years are varied, and some sections are left out, so the library has many documents,
many regions, a vocabulary that grows with it, and passages that are not copies of each other. The seed documents
themselves come first, so the evaluation questions still have their answers in it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.documents import Document, load_corpus, load_document

# Fictional place names are made of these (no real province or prefecture is meant).
_PROVINCE_HEADS = "东西南北中华青安宁临永长兴新云泰嘉德"
_PROVINCE_TAILS = "江河山海湖川原岭州平"
_CITY_HEADS = "丰乐安庆福昌定远明光宝瑞兴隆和顺荣盛祥泰富康嘉禾"
_CITY_TAILS = "阳城州宁安平江山口原桥沙林川"
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.]*年)")


@dataclass
class Place:
    province: str  # 东江省
    city: str  # 丰阳市 ('' for a provincial document)

    @property
    def region(self) -> str:
        return self.province + self.city


def places(seed: int = 0) -> Iterator[Place]:
    """An endless stream of fictional (province, city) pairs in a shuffled order."""
    rng = random.Random(seed)
    provinces = [h + t + "省" for h in _PROVINCE_HEADS for t in _PROVINCE_TAILS]
    cities = [h + t + "市" for h in _CITY_HEADS for t in _CITY_TAILS]
    rng.shuffle(provinces)
    rng.shuffle(cities)
    i = 0
    while True:
        province = provinces[i % len(provinces)]
        yield Place(province, cities[(i // len(provinces) * 7 + i) % len(cities)])
        i += 1


def _names(doc: Document) -> list[tuple[str, str]]:
    """(name in the seed, what kind of name) — longest first, so 湖南省 is replaced before 湖南."""
    out = []
    for name in {doc.province, doc.city, doc.region, *doc.aliases}:
        if name and len(name) >= 2:
            kind = "city" if doc.city and (name == doc.city or doc.city.startswith(name)) else "province"
            out.append((name, kind))
    return sorted(out, key=lambda x: -len(x[0]))


def _relabel(text: str, names: list[tuple[str, str]], place: Place, rng: random.Random) -> str:
    for name, kind in names:
        new = place.city if kind == "city" and place.city else place.province
        if not name.endswith(("省", "市", "区")):  # a short form: 湖南 → 东江, 杭州 → 丰阳
            new = new[:-1] if new[-1] in "省市" else new
        text = text.replace(name, new)

    def vary(match: re.Match) -> str:
        value = match.group(1)
        if "." in value:
            return f"{float(value) * rng.uniform(0.7, 1.4):.1f}"
        number = int(value)
        if 1900 <= number <= 2099:  # a year
            return value
        return str(max(1, round(number * rng.uniform(0.7, 1.4)))) if number > 3 else value

    return _NUMBER.sub(vary, text)


def _drop_sections(text: str, rng: random.Random) -> str:
    """Leave out a few numbered sections (一、…) at random, as real plans differ in what they cover."""
    parts = re.split(r"(?m)^(?=[一二三四五六七八九十]+、)", text)
    if len(parts) <= 3:
        return text
    keep = [parts[0]] + [p for p in parts[1:] if rng.random() > 0.15]
    return "".join(keep)


def synthetic_documents(seed_dir: Path, seed: int = 0) -> Iterator[Document]:
    """The seed documents, then re-labelled copies without end."""
    seeds = load_corpus(seed_dir).documents
    yield from seeds
    rng = random.Random(seed)
    for n, place in enumerate(places(seed)):
        base = seeds[n % len(seeds)]
        names = _names(base)
        if not base.city:  # a provincial seed is re-issued by a province
            place = Place(place.province, "")
        text = _drop_sections(_relabel(base.text, names, place, rng), rng)
        entry = {"title": _relabel(base.title, names, place, rng), "region": place.region, "province": place.province,
                 "city": place.city, "issuer": (place.city or place.province) + "人民政府"}
        doc_id = f"syn-{n:07d}"
        yield load_document(Path(f"{doc_id}.txt"), entry, raw=text.encode("utf-8"), doc_id=doc_id)
