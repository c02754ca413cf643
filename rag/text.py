"""Chinese text helpers: jieba tokens for BM25 (domain dictionary, stop words) and normalisation."""

from __future__ import annotations

import functools
import re
import unicodedata

# Domain terms jieba would otherwise cut apart, and the places the corpus names.
DOMAIN_WORDS = [
    "知识产权", "质押融资", "专利导航", "地理标志", "高价值专利", "知识产权强省", "知识产权强市", "知识产权强县",
    "知识产权强企", "强省", "强市", "强县", "强企", "用标企业", "贯标", "运营服务体系", "专利密集型产业", "专利密集型产品", "商标品牌", "维权援助", "快速维权",
    "贯标认证", "知识产权托管", "知识产权证券化", "专利代理", "商标代理", "蓝天专项整治", "知识产权保护中心",
    "知识产权运营中心", "知识产权服务业", "集聚区", "试点示范", "强省建设", "强市建设", "放管服", "三高四新",
    "十四五", "有效发明专利", "发明专利", "注册商标", "驰名商标", "风险补偿", "专利转化", "开放许可", "技术合同",
    "专利权质押", "知识产权金融", "知识产权保险", "专利保险", "牵头单位", "责任单位", "市场监管局", "知识产权局",
    "河南省", "河南", "郑州", "洛阳", "新乡", "济源", "杭州市", "杭州", "浙江省", "浙江", "萧山", "乌海市", "乌海",
    "内蒙古", "内蒙古自治区", "巴彦淖尔", "阿拉善盟", "沈阳市", "沈阳", "辽宁省", "辽宁", "浑南", "浑南区",
    "湖南省", "湖南", "长沙", "株洲", "湘潭", "岳阳", "衡阳", "常德", "益阳", "长株潭", "桑植", "浏阳花炮",
    "桑植白茶", "龙山百合", "酒鬼酒", "乌海葡萄", "湘品出湘", "湘品出境",
]

STOP_WORDS = frozenset(
    """的 了 和 与 及 以及 或 等 是 在 对 为 将 把 被 由 从 向 中 上 下 其 之 这 那 该 各 有 个 所 并 而 且 也 都 就 要
    什么 多少 哪些 哪个 哪 几 怎么 怎样 如何 是否 吗 呢 吧 啊 请问 请 问 一下 关于 方面 有关 相关 进行 开展 加强 提出
    文件 规定 提到 提及 说 讲 里 内 中的 通过 可以 能 会 我 我们 你 你们 他们 它 本 此 其中 哪里 谁 何时 什么样
    多 少 到 达到 年 吗 么 呀 哦 嘛 """.split()
)
_TOKEN_CHARS = re.compile(r"[\w\u4e00-\u9fff%％]")


@functools.lru_cache(maxsize=1)
def _tokenizer():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for word in DOMAIN_WORDS:
        tokenizer.add_word(word, freq=20000)
    return tokenizer


def tokenizer_fingerprint() -> str:
    """Changes when the domain dictionary or stop words change: part of the index signature (BM25 tokens)."""
    import hashlib

    return hashlib.sha256(("|".join(DOMAIN_WORDS) + "#" + "|".join(sorted(STOP_WORDS))).encode()).hexdigest()[:12]


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def tokenize(text: str) -> list[str]:
    """Search-grained jieba tokens (知识产权 also yields 知识, 产权) without stop words or punctuation."""
    tokens = []
    for token in _tokenizer().cut_for_search(normalise(text)):
        token = token.strip()
        if token and token not in STOP_WORDS and _TOKEN_CHARS.search(token):
            tokens.append(token)
    return tokens


def compact(text: str) -> str:
    """NFKC and all whitespace removed: the form in which evidence strings are matched."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def places_in(text: str) -> list[str]:
    """Place names mentioned in `text`, in order, without 省/市 suffixes (湖南省 → 湖南): any place in China
    (see rag/places.py), not only the documents' own."""
    from rag.places import places_named

    return places_named(text)


def years_in(text: str) -> list[str]:
    """Four-digit years (2000–2099) mentioned in `text`."""
    return sorted(set(re.findall(r"(?<!\d)(20\d\d)(?!\d)", normalise(text))))
