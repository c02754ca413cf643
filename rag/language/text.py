"""Chinese text helpers: jieba tokens for BM25 (segmentation words and stop words from the vocabulary) and
normalisation."""

from __future__ import annotations

import functools
import re
import unicodedata

from rag.language.vocab import load_vocabulary

_TOKEN_CHARS = re.compile(r"[\w\u4e00-\u9fff%％]")
CJK = re.compile(r"[\u4e00-\u9fff]")  # a Chinese character


@functools.lru_cache(maxsize=4)
def _tokenizer(folder: str):
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for word in load_vocabulary(folder).segmentation:
        tokenizer.add_word(word, freq=20000)
    return tokenizer


def word_frequencies() -> dict[str, int]:
    """The tokenizer's dictionary: word → frequency (jieba's, with the segmentation words)."""
    tokenizer = _tokenizer(load_vocabulary().source)
    tokenizer.check_initialized()
    return tokenizer.FREQ


def tokenizer_fingerprint() -> str:
    """Changes when the segmentation words or stop words change (vocab/segmentation.txt, stop_words.txt): part of
    the index signature (BM25 tokens)."""
    import hashlib

    vocab = load_vocabulary()
    return hashlib.sha256(("|".join(vocab.segmentation) + "#" + "|".join(sorted(vocab.stop_words))).encode()).hexdigest()[:12]


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def tokenize(text: str) -> list[str]:
    """Search-grained jieba tokens (知识产权 also yields 知识, 产权) without stop words or punctuation."""
    vocab = load_vocabulary()
    tokens = []
    for token in _tokenizer(vocab.source).cut_for_search(normalise(text)):
        token = token.strip()
        if token and token not in vocab.stop_words and _TOKEN_CHARS.search(token):
            tokens.append(token)
    return tokens


def words(text: str) -> list[str]:
    """The text cut into jieba words, every character kept (their concatenation is `text`)."""
    return list(_tokenizer(load_vocabulary().source).cut(text))


@functools.lru_cache(maxsize=1)
def _to_simplified():
    import opencc

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """Traditional characters → simplified (OpenCC t2s), phrase by phrase."""
    return _to_simplified().convert(text)


def simplified_in_place(text: str) -> str:
    """`text` with traditional characters made simplified, every character in its place (offsets into the result
    are offsets into `text`): where a phrase conversion changes the length, it is converted character by character."""
    converted = simplified(text)
    if len(converted) != len(text):
        convert = _to_simplified().convert
        converted = "".join(c if len(c) == 1 else ch for ch, c in ((ch, convert(ch)) for ch in text))
    return converted


def compact(text: str) -> str:
    """NFKC and all whitespace removed: the form in which evidence strings are matched."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def years_in(text: str) -> list[str]:
    """Four-digit years (2000–2099) mentioned in `text`."""
    return sorted(set(re.findall(r"(?<!\d)(20\d\d)(?!\d)", normalise(text))))
