"""Facts in Chinese policy text: figures, dates, document numbers, and the kind of fact a question asks for."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from rag.language.text import compact, normalise
from rag.language.vocab import load_vocabulary

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = "零〇一二两三四五六七八九十百千"
# Units after which a Chinese numeral is a quantity (not part of a name like 十四五 or 一站式).
# (平方米 and 小时 as words: a character class of 平方米 made 一方 "1方"; 天 and 周 were missing, so 十五天 was unread.)
_UNITS = "亿万千家件个项单届年月日天周倍名人次元%批所处条座类"
_CN_QUANTITY = re.compile(rf"([{_CN_NUM}]+)(?=[{_UNITS}]|小时|平方米)")
_CN_YEAR = re.compile(r"([〇○零一二三四五六七八九οΟoO]{4})(?=年)")
# a white circle, a Greek or a Latin O typed for 〇 ("二○○三年七月十四日" in a 局令's signature)
_ZERO_LOOKALIKES = str.maketrans({"○": "〇", "ο": "〇", "Ο": "〇", "o": "〇", "O": "〇"})
_CN_DECIMAL = re.compile(rf"[{_CN_NUM}]+点[〇零一二三四五六七八九]+")
_PERCENT_CN = re.compile(rf"百分之([{_CN_NUM}]+|\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_QUANTITY = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(%|亿|万|千|家|件|个|项|单|届|倍|名|人|次|元|平方米|批|所|条|座|类)")
_DURATION = re.compile(r"(?<![\d.])\d{1,2}\s*年(?![\d底])")
# time limits ("二十日内", "六个月", "十五个工作日"): a day after 月 is a date, not a duration
_TIME_LIMIT = re.compile(r"(?<![\d.月])\d{1,3}\s*(?:个月|个工作日|工作日|日|天|小时|周)")
# a clock time ("下午4时30分", "9点"): what a 几点 question asks
_CLOCK = re.compile(r"(?<![\d.])\d{1,2}\s*[时点](?:\s*\d{1,2}\s*分)?(?![\d间期])")
_FULL_DATE = re.compile(r"\d{4}年\d{1,2}月(\d{1,2}日)?|\d{4}-\d{1,2}-\d{1,2}")
# a time an event happens, as news and notices write it (the year may be left out: 1月14日, 下午4时30分)
_WHEN = re.compile(r"\d{4}年\d{1,2}月|\d{1,2}月\d{1,2}日|\d{4}-\d{1,2}-\d{1,2}|[上下]午\d{1,2}时|\d{1,2}时\d{1,2}分|\d{4}年")
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")
DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{1,10}〔\d{4}〕\d+号")  # 乌市监知字〔2022〕169号


def is_cross_document(question: str) -> bool:
    """Questions that ask across documents: "哪些规划设定了…，分别是多少？" (question_words.tsv cross_document);
    their retrieval takes the best passage of each document first."""
    return load_vocabulary().has("cross_document", question)


def _cn_to_int(text: str) -> int | None:
    """'十五' → 15, '三十' → 30, '一百零五' → 105, '二十二' → 22; None for non-numerals."""
    if not text or any(ch not in _CN_DIGIT and ch not in _CN_UNIT for ch in text):
        return None
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGIT:
            current = _CN_DIGIT[ch]
        else:
            unit = _CN_UNIT[ch]
            total += (current or 1) * unit
            current = 0
    return total + current


def normalise_numbers(text: str) -> str:
    """NFKC, Chinese quantities as digits, 百分之X as X%, thousands separators removed."""
    text = normalise(text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = _PERCENT_CN.sub(lambda m: f"{_cn_to_int(m.group(1)) if not m.group(1)[0].isdigit() else m.group(1)}%", text)

    text = _CN_YEAR.sub(lambda m: _cn2an(m.group(1).translate(_ZERO_LOOKALIKES)), text)  # 二〇二二年 → 2022年 (digit by digit)
    text = _CN_DECIMAL.sub(lambda m: _cn2an(m.group(0)), text)  # 零点六 → 0.6
    return _CN_QUANTITY.sub(lambda m: _cn2an(m.group(1)), text)


def _cn2an(numeral: str) -> str:
    """A Chinese numeral as digits (cn2an); the numeral itself when it is not one (十四五)."""
    import cn2an

    try:
        value = cn2an.cn2an(numeral, "smart")
    except (ValueError, KeyError, TypeError):
        return numeral
    return str(int(value)) if float(value).is_integer() else str(value)


def numbers_in(text: str) -> set[str]:
    """Numeric values stated in `text`, normalised ('15', '0.6', '93')."""
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in _NUMBER.findall(normalise_numbers(text))}


_DAY = re.compile(r"(?:19|20)\d\d\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")


def days_in(text: str) -> list[str]:
    """The calendar days `text` states, numerals as digits and without spaces ("二○○三年七月十四日" → 2003年7月14日)."""
    return [re.sub(r"\s+", "", d) for d in _DAY.findall(normalise_numbers(text))]


def quantities_in(text: str) -> list[str]:
    """Numbers with a unit: the figures a 多少 question asks for. Calendar years are excluded; durations
    ("3年", "1—2年", "五年") are quantities."""
    text = normalise_numbers(text)
    # 第三人 (a third party) and 第九条 (an article) are names, not counts; 第二十二届 is the figure a 第几届 asks for
    return ([m.group(0) for m in _QUANTITY.finditer(text)
             if not (m.group(2) in "人条" and text[max(m.start() - 1, 0)] == "第")]
            + [m.group(0) for m in _DURATION.finditer(text)]
            + [m.group(0) for m in _TIME_LIMIT.finditer(text)] + [m.group(0) for m in _CLOCK.finditer(text)])


_STATED_FIGURE = re.compile(
    rf"(?:\d{{4}}年\d{{1,2}}月\d{{1,2}}日|\d{{4}}年\d{{1,2}}月|(?:\d+(?:\.\d+)?|[{_CN_NUM}万]+)\s*"
    r"(?:个工作日|工作日|个月|万元|亿元|元|年|月|日|天|倍|%|小时|周|家|件|个|项|名|次))")


def mask_figures(text: str, placeholder: str = "多少") -> str:
    """`text` with each figure it states (五十万元, 七天, 2003年1月1日) replaced by `placeholder`: what an assertion
    claims, taken out, leaves what it is about ("会展主办单位违规最高罚五十万元" → "…最高罚多少")."""
    return _STATED_FIGURE.sub(lambda m: "何时" if "年" in m.group() and "月" in m.group() else placeholder, text)


def with_passage_bounds(sentence: str, passage: str, before: tuple[str, ...], after: tuple[str, ...],
                        written: tuple[str, ...]) -> str:
    """`sentence` with each figure it shares with `passage` bounded as the passage bounds it: "单位得拿20%的比例" from
    "不低于20％的比例" → "单位得拿不低于20%的比例"; "4个月作出决定" from "四个月内" → "4个月内作出决定". A figure
    the sentence already bounds (a bound word, or one of `written`, within a few characters: 最多, 至少, 以下…) or
    that the passage bounds differently in two places is left as written. `before`/`after`: the passage's bound words
    (不低于, 不超过 / 以内, 内)."""
    text = normalise_numbers(passage)
    bounds: dict[str, set[tuple[str, str]]] = {}
    for m in _STATED_FIGURE.finditer(text):
        ahead = next((w for w in before if text[:m.start()].endswith(w)), "")
        behind = next((w for w in after if text[m.end():].startswith(w)), "")
        bounds.setdefault(m.group(), set()).add((ahead, behind))
    out, at = [], 0
    for m in _STATED_FIGURE.finditer(sentence):
        found = bounds.get(normalise_numbers(m.group()), set())
        if len(found) != 1:
            continue
        ahead, behind = next(iter(found))
        near = sentence[max(0, m.start() - 4):m.start()] + "|" + sentence[m.end():m.end() + 3]
        if (not ahead and not behind) or any(w in near for w in (*before, *after, *written)):
            continue
        out += [sentence[at:m.start()], ahead, m.group(), behind]
        at = m.end()
    return "".join(out) + sentence[at:]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of sentences (ending at 。！？； or a line end; a line that a page's width wrapped in the
    middle of a sentence runs on over the next line — see `wrapped_breaks`)."""
    spans = [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]
    breaks = wrapped_breaks(text)
    if not breaks:
        return spans
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and out[-1][1] in breaks and start == out[-1][1] + 1:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


# An enumerated item at the start of a line: （一） (1) 一、 1. ① — structure, not vocabulary.
ITEM = re.compile(r"^\s*(?:[（(][一二三四五六七八九十\d]{1,3}[）)]|[一二三四五六七八九十]{1,3}、|\d{1,2}[.、．](?!\d)|[①-⑳])")
HEADING_START = re.compile(r"^\s*第[一二三四五六七八九十百千零〇\d]+[章节条款]")
ARTICLE_HEADING = re.compile(r"^\s*第[一二三四五六七八九十百千零〇\d]+条")  # an article of a law: 第二十五条
ARTICLE_NUMBER = re.compile(r"第([一二三四五六七八九十百千零〇两\d]{1,8})条")  # 第一千五百条, 第44条


# a cross-reference to provisions of the same text: 违反本条例第二十条、第二十一条规定 / 违反本法第七条第一款规定 /
# 违反本条例第二十条第一款第二项的
_NUM = r"[一二三四五六七八九十百千零〇两\d]"
PROVISION = re.compile(rf"第({_NUM}{{1,8}})条(?:第({_NUM}{{1,3}})款)?(?:第({_NUM}{{1,3}})项|（({_NUM}{{1,3}})）项?)?")
CITED_ARTICLES = re.compile(rf"违反本[^，。；\s第]{{0,4}}((?:{PROVISION.pattern}[、，,和及与或者]*)+)")


def provisions_cited(text: str) -> list[tuple[int, int, int]]:
    """The provisions of its own text that `text` says are violated (违反本法第七条、第九条第二款规定…: the provisions
    it punishes), as (article, paragraph, item) numbers, 0 where the citation names the whole article or paragraph."""
    return list(_provisions_cited(text))


@functools.lru_cache(maxsize=16384)
def _provisions_cited(text: str) -> tuple[tuple[int, int, int], ...]:
    """Kept per text: a consequence question reads every passage of its document."""
    out = []
    for hit in CITED_ARTICLES.finditer(text):
        for m in PROVISION.finditer(hit.group(1)):
            article, paragraph, item = (_cn_to_int(g) if g and not g.isdigit() else int(g or 0)
                                        for g in (m.group(1), m.group(2), m.group(3) or m.group(4)))
            out.append((article or 0, paragraph or 0, item or 0))
    return tuple(out)


def articles_cited(text: str) -> set[int]:
    """The numbers of the articles `text` says are violated (see `provisions_cited`)."""
    return {article for article, _, _ in provisions_cited(text)}


def provision_text(article: str, paragraph: int, item: int) -> str:
    """The part of an article's text a citation names: its `paragraph`-th paragraph (款: a line that is no enumerated
    item; the items under it belong to it), and of it the `item`-th enumerated item (项); the whole text for 0."""
    lines = [line for line in article.split("\n") if line.strip()]
    paragraphs: list[list[str]] = []
    for line in lines:
        if ITEM.match(line) and paragraphs:
            paragraphs[-1].append(line)
        else:
            paragraphs.append([line])
    if paragraph:
        if paragraph > len(paragraphs):
            return article
        lines = paragraphs[paragraph - 1]
    if item:
        items = [line for line in lines if ITEM.match(line)]
        return items[item - 1] if item <= len(items) else "\n".join(lines)
    return "\n".join(lines)


def article_of(section_path: Sequence[str], text: str) -> int:
    """The number of the article a passage is (under a 第X条 heading, or opening with one); 0 for none."""
    if section_path and ARTICLE_HEADING.match(section_path[-1]):
        return article_number(section_path[-1])
    return article_number(text[:12]) if ARTICLE_HEADING.match(text) else 0


def ordinals(text: str, counters: Sequence[str]) -> set[tuple[str, int]]:
    """The instances of a series a text names: '第三批', '第二十三届', '第5届' → {('批', 3), ('届', 23), ('届', 5)}, for
    the counters given (vocab class `series_counters`)."""
    found = set()
    for raw, counter in _ordinal_pattern(tuple(counters)).findall(normalise(text)) if counters else ():
        number = int(raw) if raw.isdigit() else _cn_to_int(raw)
        if number:
            found.add((counter, number))
    return found


def ordinal_phrases(text: str, counters: Sequence[str]) -> list[str]:
    """The words naming those instances, as written ('第四批')."""
    return [m.group() for m in _ordinal_pattern(tuple(counters)).finditer(text)] if counters else []


@functools.lru_cache(maxsize=16)
def _ordinal_pattern(counters: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"第([一二三四五六七八九十百千零〇两\d]{1,6})(" + "|".join(map(re.escape, counters)) + ")")


def article_number(marker: str) -> int:
    """'第四十四条' → 44, '第1500条' → 1500; 0 when `marker` holds no article number."""
    match = ARTICLE_NUMBER.search(marker)
    if not match:
        return 0
    raw = match.group(1)
    return int(raw) if raw.isdigit() else (_cn_to_int(raw) or 0)
_WRAP_END = re.compile(r"[\u4e00-\u9fff0-9A-Za-z“”《》〈〉、，,（(]$")  # a line stopped inside a sentence
MIN_WRAP_WIDTH = 20  # lines shorter than this are headings and title lines, never a page's full width


@functools.lru_cache(maxsize=4096)
def wrapped_breaks(text: str) -> frozenset[int]:
    """Offsets of line breaks a fixed page width put inside a sentence (text extracted from a PDF: "认定驰名商标应当\n
    考虑下列因素："): the line runs to nearly the widest line of the text, does not end a sentence, and the next line
    starts with a character, not with a new article or item."""
    lines = text.split("\n")
    if len(lines) < 3:
        return frozenset()
    width = max(len(line.rstrip()) for line in lines)
    if width < MIN_WRAP_WIDTH:
        return frozenset()
    out, at = set(), 0
    for line, following in zip(lines, lines[1:], strict=False):
        at += len(line)
        body = line.rstrip()
        if (len(body) >= max(MIN_WRAP_WIDTH, 0.85 * width) and _WRAP_END.search(body) and following[:1].strip()
                and re.match(r"[\u4e00-\u9fff“《]", following) and not HEADING_START.match(following)
                and not ITEM.match(following)):
            out.add(at)
        at += 1
    return frozenset(out)


BARE_LINE_CHARS = 6  # what a date or 文号 line may hold besides it ("印发日期：", "落款") and still stand alone


def stands_alone(sentence: str) -> bool:
    """A date or 文号 on a line of its own ("2021年10月20日", "乌市监知字〔2022〕169号"): it says nothing itself, so it
    is read with its passage; a line that says what happened on the date ("…第二十次会议修订") is read on its own."""
    return len(DOC_NUMBER.sub("", _FULL_DATE.sub("", compact(normalise(sentence))))) <= BARE_LINE_CHARS


def asks_quantity(question: str) -> bool:
    """A question whose answer is a figure ("多少家", "几个"), not a list ("哪几条", "哪些")."""
    if load_vocabulary().has("not_quantity", question) or is_cross_document(question):
        return False
    return any(cue in question for cue in load_vocabulary().quantity_cues)


def asks_date(question: str) -> bool:
    return load_vocabulary().has("date_asked", question)


def asks_doc_number(question: str) -> bool:
    return load_vocabulary().has("docno_asked", question)


def states(kind: str, text: str) -> bool:
    if kind == "list":
        return list_in(text)
    text = compact(normalise(text))
    if kind == "date":
        return bool(_FULL_DATE.search(text))
    if kind == "docno":
        return bool(DOC_NUMBER.search(text))
    if kind == "year":
        return bool(re.search(r"\d{4}年", text))
    if kind == "when":
        return bool(_WHEN.search(text))
    return bool(quantities_in(text))


def list_in(text: str) -> bool:
    """The text holds an enumeration: at least two lines that open with an item marker (（一）, 1., ①)."""
    return sum(1 for line in text.split("\n") if ITEM.match(line)) >= 2


def requested_kind(question: str) -> str:
    """'docno' | 'date' | 'quantity' | '' — the kind of fact the question asks for."""
    if asks_doc_number(question):
        return "docno"
    if asks_date(question):
        return "date"
    if load_vocabulary().has("year_asked", question):
        return "year"
    if asks_quantity(question):
        return "quantity"
    return ""


