"""Document facts: title, issuer, 文号, signing / publication / effective dates, period, attachments — from the text.

Each fact records where the text states it (character offsets into the document), so an answer about it cites
the passage that holds those offsets. The manifest (or `rag add` flags) only fills what the text does not say;
such a fact has no offsets and is presented as registry information, not as something the document states.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from rag.language.facts import DOC_NUMBER, _cn_to_int, normalise_numbers

_ORG_END = r"(?:人民政府|政府|知识产权局|监督管理局|管理局|委员会|办公厅|办公室|厅|局|委|院|部|中心)"
_ORG = rf"[\u4e00-\u9fff]{{2,24}}?{_ORG_END}"
_SIGNATURE = re.compile(rf"(?:^|(?<=[\s。]))({_ORG}(?:[ \t\u3000]+{_ORG})?)\s+(20\d\d\s*年\s*\d{{1,2}}\s*月\s*\d{{1,2}}\s*日)", re.MULTILINE)
_CN_DATE = re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_ISO_DATE = re.compile(r"((?:19|20)\d\d)-(\d{1,2})-(\d{1,2})")
_PUBLISHED = re.compile(r"(?:发布时间|发文时间|发布日期|成文日期)\s*[:：]\s*(20\d\d[-年]\d{1,2}[-月]\d{1,2}日?)")
_ISSUER_FIELD = re.compile(r"(?:发文机构|发文机关|发文单位)\s*[:：]\s*([\u4e00-\u9fff]{2,30})")
_NOTICE_TITLE = re.compile(r"^([\u4e00-\u9fff]{2,30}?)?关于印发[《]?(.{4,80}?)[》]?的通知")
# "自2002年7月1日起施行", and as laws write it: "本法自1985年4月1日起施行", "自１９８５年４月１日", "自二〇〇二年四月一日"
_DIGIT = r"[0-9０-９〇○Ο零一二三四五六七八九十]"
_EFFECTIVE = re.compile(rf"自\s*((?:19|20|１９|２０|一九|二〇|二○|二Ο|二零){_DIGIT}{{2}}\s*年\s*{_DIGIT}{{1,3}}\s*月\s*{_DIGIT}{{1,3}}\s*日)"
                        r"\s*起(?:施行|实施|执行)")
# an order's number in its header ("国家知识产权局令\n第三十二号", "2001年11月28日 国家知识产权局令第17号公布", "国务院令第306号"):
# the number an order is known by, its 文号 when it has no 〔year〕 number
_ORDER = re.compile(r"([\u4e00-\u9fff]{2,16}?令)\s*(第\s*[0-9０-９一二三四五六七八九十百零〇○]+\s*号)")
ORDER_HEAD_CHARS = 300
_ATTACHMENT = re.compile(r"^\s*附件\s*\d*\s*[:：]\s*(.{2,60})$", re.MULTILINE)
_YEAR_RANGE = re.compile(r"(20\d\d)\s*[-—–－~至]{1,2}\s*(20\d\d)\s*年")
_SINGLE_YEAR = re.compile(r"[（(](20\d\d)[）)]")
_ISSUED_PLAN = re.compile(r"现将《([^》]{2,80})》")  # a notice names the plan it issues, often with its years
_VALID_UNTIL = re.compile(r"有效期(?:至|到)\s*(20\d\d)\s*年")
_VALID_FOR = re.compile(r"有效期(?:为)?\s*([一二三四五六七八九十\d]{1,2})\s*年")
# Five-year-plan periods named by number: 十四五 = 2021–2025.
_FIVE_YEAR = {"十三五": (2016, 2020), "十四五": (2021, 2025), "十五五": (2026, 2030)}
# A region at the start of an issuer or title: 湖南省, 浙江省杭州市, 内蒙古自治区乌海市, 滨海市, 某某县.
_REGION = re.compile(r"^(?:中共)?((?:[\u4e00-\u9fff]{2,7}?(?:省|自治区))?(?:[\u4e00-\u9fff]{1,6}?(?:市|自治州|地区|盟|县|区))?)")
_NOT_REGION = ("关于", "国家", "中华人民共和国", "国务院", "各")
HEAD_CHARS = 1500
# Bump when extraction changes: it is part of each document's fingerprint, so `rag index` reads documents again.
FACTS_VERSION = 4  # 4: an order's number (局令第三十二号) as its 文号; 3: title lines, regions from the division table


@dataclass
class Fact:
    """One fact: its value and where the text states it (start < 0: registry information, not in the text)."""

    value: str
    start: int = -1
    end: int = -1
    source: str = "text"  # text | manifest

    @property
    def in_text(self) -> bool:
        return self.start >= 0


def _fact(match: re.Match, group: int = 0, value: str | None = None) -> Fact:
    return Fact(value if value is not None else match.group(group).strip(), match.start(group), match.end(group))


def _line_spans(text: str, limit: int) -> list[tuple[int, int, str]]:
    """(start, end, stripped line) of each non-empty line, also splitting single-line pages at wide gaps."""
    spans = []
    for match in re.finditer(r"[^\n]+", text[:limit]):
        for piece in re.finditer(r"\S(?:.*?\S)?(?=\s{2,}|\s*$)|\S", match.group()):
            start = match.start() + piece.start()
            spans.append((start, start + len(piece.group()), piece.group()))
    return spans


def iso_date(text: str) -> str:
    """'2022年8月8日' / '2020-09-30' / '二〇〇二年四月一日' → 'YYYY-MM-DD'; '' when not a date."""
    text = normalise_numbers(unicodedata.normalize("NFKC", text))
    match = _CN_DATE.search(text) or _ISO_DATE.search(text)
    if not match:
        return ""
    year, month, day = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return ""


def extract_facts(text: str, title: str = "") -> dict[str, Any]:
    """Facts the document's own text states. Keys: title, issuer, doc_number, signed, published, effective,
    period (value 'YYYY-YYYY'), attachments (list). Missing facts are absent."""
    facts: dict[str, Any] = {}  # a Fact each, a list of Facts for attachments
    head = text[:HEAD_CHARS]

    notice = None
    for start, _end, line in _line_spans(text, HEAD_CHARS):
        match = _NOTICE_TITLE.match(line)
        if match:
            notice = (start, match)
            break
    if notice:
        start, match = notice
        facts["title"] = Fact(match.group(2), start + match.start(2), start + match.end(2))

    field = _ISSUER_FIELD.search(head)
    if field:
        facts["issuer"] = _fact(field, 1)

    number = None
    for start, end, line in _line_spans(text, HEAD_CHARS):
        match = DOC_NUMBER.fullmatch(line.strip())
        if match:  # a 文号 standing alone on a line is this document's; cited ones stand in brackets in sentences
            number = Fact(line.strip(), start, end)
            break
    if number is None:
        order = _ORDER.search(text[:ORDER_HEAD_CHARS])
        if order:
            number = Fact(re.sub(r"\s+", "", order.group(1) + order.group(2)), order.start(1), order.end(2))
    if number:
        facts["doc_number"] = number

    published = _PUBLISHED.search(head)
    if published:
        facts["published"] = _fact(published, 1)

    # The signature block: one or two organisations, then the date, separated only by whitespace.
    signature = _SIGNATURE.search(head)
    if signature:
        facts["signed"] = _fact(signature, 2)
        if "issuer" not in facts:
            facts["issuer"] = _fact(signature, 1, re.sub(r"\s+", " ", signature.group(1)))
    if "issuer" not in facts and notice and notice[1].group(1):
        start, match = notice
        facts["issuer"] = Fact(match.group(1), start + match.start(1), start + match.end(1))

    effective = _EFFECTIVE.search(text)
    if effective:
        facts["effective"] = _fact(effective, 1)

    attachments = [_fact(m, 1) for m in _ATTACHMENT.finditer(text)]
    if attachments:
        facts["attachments"] = attachments

    region = _region(text, facts.get("issuer"), facts.get("title"), title)  # type: ignore[arg-type]
    if region:
        facts["region"] = region

    period = _period(text, title or (facts["title"].value if "title" in facts else ""))
    if period is None:
        plan = _ISSUED_PLAN.search(head)
        period = _period(text, plan.group(1)) if plan else None
    if period is None:
        period = _validity_clause(text, facts)
    if period:
        facts["period"] = period
    return facts


def _region(text: str, issuer: Fact | None, title_fact: Fact | None, title: str) -> Fact | None:
    """The place a document is about: the region its issuer or title begins with (湖南省知识产权局 → 湖南省)."""
    candidates = [f for f in (issuer, title_fact) if f is not None]
    first_line = next((line.strip() for line in text[:HEAD_CHARS].split("\n") if line.strip()), "")
    for value, start in [(f.value, f.start) for f in candidates] + [(title, -1), (first_line, text.find(first_line))]:
        if not value or value.startswith(_NOT_REGION):
            continue
        end = _leading_places(value)
        if not end:  # a place the division table does not hold (a new county, a fictional 滨海市 in tests)
            match = _REGION.match(value)
            end = match.end(1) if match and len(match.group(1)) >= 3 else 0
        if end:
            offset = len(value) - len(value.removeprefix("中共"))
            return Fact(value[offset:end], start + offset, start + end) if start >= 0 else Fact(value[offset:end])
    return None


def _leading_places(value: str) -> int:
    """Where the run of place names a title or issuer begins with ends (浙江省技术市场条例 → 3, 内蒙古自治区乌海市
    市场监督管理局 → 9, 上海市浦东新区… → 7); 0 when it does not begin with a place. Places from rag/language/places.py."""
    from rag.language.places import gazetteer

    names = gazetteer()
    at = len(value) - len(value.removeprefix("中共"))
    start = at
    while at < len(value):
        for size in range(min(12, len(value) - at), 1, -1):
            piece = value[at : at + size]
            if piece in names and (piece != names[piece] or piece.endswith(("省", "市", "县", "区", "州", "盟"))
                                   or value[at + size : at + size + 1] in ("省", "市", "县", "区")):
                at += size
                break
        else:
            break
        if value[at : at + 1] in ("省", "市", "县") and value[at - 1 : at] not in ("省", "市", "县"):
            at += 1  # a short name followed by its suffix (重庆 + 市)
    if at > start:  # a zone inside the last place (苏州 + 工业园区, 某市 + 高新区): not a division, still where it applies
        zone = re.match(r"[\u4e00-\u9fff]{1,6}?(?:园区|新区|开发区|高新区|试验区|示范区)", value[at:])
        return at + (zone.end() if zone else 0)
    return 0


def _period(text: str, title: str) -> Fact | None:
    """The years a plan covers: a range in its title ('2020-2023年'), a 十四五-style name in its title (the text's
    '“十四五”时期(2021—2025年)' is cited when present), or an annual plan's '(2020)'. Ranges elsewhere in the text
    belong to documents it cites, not to this one."""
    match = _YEAR_RANGE.search(title)
    if match:
        return _located(text, match.group(), f"{match.group(1)}-{match.group(2)}")
    for name, (first, last) in _FIVE_YEAR.items():
        if name in title:
            stated = re.search(rf"{name}\W{{0,2}}时期\s*[（(](20\d\d)\s*[-—–]{{1,2}}\s*(20\d\d)年?[）)]", text)
            if stated:
                return Fact(f"{stated.group(1)}-{stated.group(2)}", stated.start(), stated.end())
            return _located(text, name, f"{first}-{last}")
    match = _SINGLE_YEAR.search(title)
    if match:
        return _located(text, match.group(), f"{match.group(1)}-{match.group(1)}")
    return None


def _validity_clause(text: str, facts: dict) -> Fact | None:
    """Regulations state how long they hold: 有效期至2027年12月31日, or 自…起施行，有效期五年."""
    start_fact = facts.get("effective") or facts.get("signed")
    start_year = int(iso_date(start_fact.value)[:4]) if start_fact and iso_date(start_fact.value) else None
    until = _VALID_UNTIL.search(text)
    if until and start_year:
        return Fact(f"{start_year}-{until.group(1)}", until.start(), until.end())
    span = _VALID_FOR.search(text)
    if span and start_year:
        token = span.group(1)
        years = int(token) if token.isdigit() else _cn_to_int(token)
        if years:
            return Fact(f"{start_year}-{start_year + years}", span.start(), span.end())
    return None


def _located(text: str, needle: str, value: str) -> Fact:
    start = text.find(needle)
    return Fact(value, start, start + len(needle) if start >= 0 else -1)


def merge_with_manifest(facts: dict, entry: dict) -> dict:
    """The text's facts, with the manifest filling gaps (marked as registry information)."""
    merged = dict(facts)
    mapping = {"issuer": "issuer", "doc_number": "doc_number", "signed": "date", "title": "title", "region": "region"}
    for key, manifest_key in mapping.items():
        value = entry.get(manifest_key)
        if key not in merged and value:
            merged[key] = Fact(str(value), source="manifest")
    if "period" not in merged and entry.get("period"):
        merged["period"] = Fact(str(entry["period"]), source="manifest")
    return merged


def facts_to_json(facts: dict) -> dict:
    out = {}
    for key, value in facts.items():
        out[key] = [asdict(v) for v in value] if isinstance(value, list) else asdict(value)
    return out


def facts_from_json(data: dict) -> dict:
    out: dict[str, object] = {}
    for key, value in (data or {}).items():
        out[key] = [Fact(**v) for v in value] if isinstance(value, list) else Fact(**value)
    return out


def period_end(period: str) -> int | None:
    """The last year of a 'YYYY-YYYY' period (None: no period stated)."""
    match = re.fullmatch(r"(20\d\d)-(20\d\d)", period or "")
    return int(match.group(2)) if match else None


def validity(period: str, today: dt.date | None = None) -> str:
    """在效 / 已到期 / 期限未说明, from a 'YYYY-YYYY' period and today's date."""
    end = period_end(period)
    if end is None:
        return "期限未说明"
    today = today or dt.date.today()
    return "已到期" if today.year > end else "在效"


def period_text(period: str) -> str:
    """'2020-2023' → '2020—2023年'; '2020-2020' → '2020年'."""
    match = re.fullmatch(r"(20\d\d)-(20\d\d)", period or "")
    if not match:
        return period
    first, last = match.groups()
    return f"{first}年" if first == last else f"{first}—{last}年"
