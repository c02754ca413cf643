"""Follow-up questions: rewrite "那杭州呢？" into a standalone question using the chat history."""

from __future__ import annotations

import functools
import re

from rag.language.places import places_in
from rag.language.text import words
from rag.language.vocab import load_vocabulary
from rag.understand.query import detect_facet, item_reference, normalise_text, strip_wrappers, without_source

MAX_TURNS = 20  # earlier turns a follow-up may lean on
_TAIL = re.compile(r"[呢吗啊？?。！!\s]+$")
_WHAT_ABOUT = re.compile(r"呢[？?]?$")  # "那X呢": what about X
_CHINESE = re.compile(r"[\u4e00-\u9fff]+")


def _lead() -> re.Pattern:
    """A follow-up's opening word (那么, 还有, 另外: question_words.tsv followup_lead)."""
    return _patterns(load_vocabulary().source)[0]


def _qualifier() -> re.Pattern:
    """A 的-phrase or an if-clause: a condition (的话, 的情形, 如果: condition_tail, condition_lead)."""
    return _patterns(load_vocabulary().source)[1]


def _pronoun() -> re.Pattern:
    """A pronoun for the previous turn's document (它的, 该, 这份 + 规划/方案: followup_pronoun, followup_topic)."""
    return _patterns(load_vocabulary().source)[2]


@functools.lru_cache(maxsize=4)
def _patterns(source: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    vocab = load_vocabulary(source)
    return (re.compile(rf"^({vocab.alternation('followup_lead')})[，,\s]*"),
            re.compile(rf"的$|(?:{vocab.alternation('condition_tail')})|^(?:{vocab.alternation('condition_lead')})"),
            re.compile(rf"^({vocab.alternation('followup_pronoun')})({vocab.alternation('followup_topic')})?"))


def previous_user_question(history: list[dict] | None) -> str:
    """The last user turn of the history (roles 'user'; plain strings count as user turns)."""
    for turn in reversed(history or []):
        if isinstance(turn, str):
            return turn
        if isinstance(turn, dict) and turn.get("role", "user") == "user" and turn.get("content"):
            return str(turn["content"])
    return ""


MAX_ANCHOR_CHARS = 160  # of the previous answer, added to a follow-up's search


def previous_answer(history: list[dict] | None) -> str:
    """The last assistant turn of the history, without citation markers."""
    for turn in reversed(history or []):
        if isinstance(turn, dict) and turn.get("role") == "assistant" and turn.get("content"):
            return re.sub(r"\[\d{1,2}\]", "", str(turn["content"]))
    return ""


def search_anchor(question: str, history: list[dict] | None) -> str:
    """For a follow-up that names no new place ("那情节严重的呢", "没违法所得的呢"): the start of the previous answer,
    searched with it, so that retrieval stays in the article the conversation is about (the answer quotes it) — the
    next clause of that article is usually what is asked."""
    q = question.strip()
    if not history or places_in(q) or not is_followup(q):
        return ""
    return previous_answer(history)[:MAX_ANCHOR_CHARS]


def is_followup(question: str) -> bool:
    """Elliptical questions that lean on the previous turn: 那…呢, pronouns, very short fragments."""
    q = question.strip()
    return bool(_lead().match(q) or _pronoun().match(q) or _WHAT_ABOUT.search(q) or len(_TAIL.sub("", q)) <= 6)


def standalone_question(question: str, history: list[dict] | None) -> str:
    """A question that can be searched on its own. Rule-based and deterministic.

    "那沈阳呢？" after "杭州的知识产权质押融资目标是多少？" → "沈阳的知识产权质押融资目标是多少？";
    a follow-up without a place keeps the previous question as context: "<previous>，<follow-up>".
    """
    question = question.strip()
    history = list(history or [])[-MAX_TURNS:]  # resolving reaches back one user turn at a time: bound the depth
    previous = previous_user_question(history)
    short_without_place = len(_TAIL.sub("", question)) <= 12 and not places_in(question) and bool(places_in(previous))
    if not previous or not (is_followup(question) or short_without_place) or _only_chit_chat(question):
        return question
    previous = standalone_question(previous, _history_before_last_user(history))
    core = _TAIL.sub("", _lead().sub("", question))
    new_places, old_places = places_in(core), places_in(previous)
    if item_reference(core):
        # "第三条呢": the item of the list the previous question asked for
        return f"{_TAIL.sub('', previous)}，{core}？"
    if not new_places and _qualifier().search(core) and not load_vocabulary().has("asks", core):
        # a condition or a kind of the case just asked about ("那情节严重的呢", "没违法所得的呢", "要是学校自己实施的
        # 话"): the same question under that condition, not a new topic
        return f"{_TAIL.sub('', previous)}，{core}？"
    if not new_places:
        # A topic switch ("那专利导航呢"), a pronoun ("这个规划到哪年") or a new facet ("文号呢"): keep the place
        # the conversation is about, take the new topic, and keep the previous kind of question if none is asked.
        topic = _pronoun().sub("", core).strip()
        vocab = load_vocabulary()
        asks = detect_facet(normalise_text(topic), vocab)[0] != "general"
        swapped = _swapped(_TAIL.sub("", previous), topic) if _WHAT_ABOUT.search(question) and not asks else ""
        if swapped:
            return f"{swapped}？"
        # the previous kind of question only when the turn asks nothing itself ("那专利导航呢", not "…会被怎么罚"), and
        # never the 根据 of a clause that only named where to read
        cue = "" if asks or vocab.has("asks", topic) else _facet_cue(without_source(normalise_text(previous), vocab), vocab)
        return f"{''.join(old_places)}{topic}{cue}？" if old_places else f"{_TAIL.sub('', previous)}，{core}？"
    if new_places and old_places:
        # the new place takes the first old one's; the others, with the word joining them, go ("河南和杭州的…分别是多少"
        # then "那湖南呢" is "湖南的…", not "湖南和湖南的…": seen in the browser)
        rewritten = re.sub(old_places[0] + r"[省市]?", new_places[0], previous, count=1)
        joined = load_vocabulary().alternation("conjunction")
        for old in old_places[1:]:
            rewritten = re.sub(rf"(?:{joined})?{old}[省市]?", "", rewritten)
        rest = core
        for place in new_places:
            rest = re.sub(place + r"[省市]?(的)?", "", rest)
        return rewritten if not rest.strip() else f"{_TAIL.sub('', rewritten)}，{rest.strip()}？"
    if new_places:
        return f"{new_places[0]}：{_TAIL.sub('', previous)}？"
    return f"{_TAIL.sub('', previous)}，{core}？"


MAX_SWAPPED_CHARS = 16  # "那集体商标、证明商标呢": a thing named, not a new question


def _swapped(previous: str, topic: str) -> str:
    """The previous question asked of a sibling of its subject (a "那X呢" turn): "那集体商标、证明商标呢" after "在深圳窗口申请普通商标
    注册怎么收费" → "在深圳窗口申请集体商标、证明商标注册怎么收费"; "那单位作品呢" after "自然人作品的保护期多长" →
    "单位作品的保护期多长". The topic's last word (商标, 作品) names the kind of thing; the previous question's word
    for that kind, with the word before it (普通, 自然人), is replaced. "" when the previous question has no such word."""
    if len(topic) > MAX_SWAPPED_CHARS:
        return ""
    head = words(topic)[-1]
    if len(head) < 2 or not _CHINESE.fullmatch(head) or head == topic:
        return ""
    cut = words(previous)
    for i, word in enumerate(cut):
        at = word.find(head)
        if at > 0:  # the modifier in the same word: 发明专利权 → 实用新型专利权
            return "".join(cut[:i]) + topic + word[at + len(head):] + "".join(cut[i + 1:])
        if at == 0 and i > 0 and len(cut[i - 1]) >= 2 and _CHINESE.fullmatch(cut[i - 1]):
            return "".join(cut[:i - 1]) + topic + word[len(head):] + "".join(cut[i + 1:])  # 普通 商标注册
    return ""


def previous_standalone(history: list[dict] | None) -> str:
    """The last user turn of the history, made standalone with the turns before it."""
    history = list(history or [])[-MAX_TURNS:]
    previous = previous_user_question(history)
    return standalone_question(previous, _history_before_last_user(history)) if previous else ""


def _only_chit_chat(question: str) -> bool:
    """A greeting or thanks ("你好", "谢谢啦") leans on nothing: it is not a follow-up of the previous question."""
    vocab = load_vocabulary()
    core, dropped, injection = strip_wrappers(normalise_text(question), vocab)
    return bool(dropped) and not injection and not re.search(r"\w", core)


def _facet_cue(question: str, vocab) -> str:
    """The words by which `question` asks its kind of fact ("多少", "哪些", "谁印发"), to carry over to a follow-up."""
    lowered = normalise_text(question)
    for facet, cue in vocab.facets:
        if cue in lowered and facet not in ("yesno",):
            return cue
    return ""


def _history_before_last_user(history: list[dict] | None) -> list[dict]:
    turns = list(history or [])
    for i in range(len(turns) - 1, -1, -1):
        turn = turns[i]
        if isinstance(turn, str) or (isinstance(turn, dict) and turn.get("role", "user") == "user"):
            return turns[:i]
    return []
