"""The one vocabulary: every word list is a file of rag/resources/vocab/, and RAG_VOCAB_DIR reaches every step."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from rag.language import vocab as vocab_module
from rag.language.vocab import load_vocabulary, package_dir, use_vocabulary

RAG = Path(vocab_module.__file__).parents[1]  # rag/


@pytest.fixture
def own_vocab(tmp_path):
    """A copy of the shipped vocabulary, to which a test adds words; the default is restored afterwards."""
    folder = tmp_path / "vocab"
    shutil.copytree(package_dir("vocab"), folder)
    yield folder
    use_vocabulary(None)


def _add(folder: Path, name: str, *lines: str) -> None:
    with (folder / name).open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def test_every_vocabulary_file_parses_and_every_class_is_used_by_name():
    vocab = load_vocabulary(package_dir("vocab"))
    assert vocab.segmentation and vocab.stop_words and vocab.model_refusals and vocab.page_chrome
    assert vocab.example_asks and vocab.place_suffixes
    for pattern in vocab.page_chrome:
        re.compile(pattern)  # each line is a regular expression
    source = "\n".join(p.read_text(encoding="utf-8") for p in RAG.rglob("*.py"))
    for word_class in vocab.words:  # a class nobody reads is a dead list
        assert f'"{word_class}"' in source or f"'{word_class}'" in source, word_class


def test_the_settings_vocabulary_reaches_every_step(own_vocab, monkeypatch):
    from rag.answer.grounding import says_cannot_answer
    from rag.engine import Engine
    from rag.ingest.documents import mask_chrome
    from rag.language.facts import is_cross_document, requested_kind
    from rag.language.text import tokenize, tokenizer_fingerprint
    from rag.settings import Settings
    from rag.understand.followup import is_followup
    from rag.understand.suggest import example_questions

    before = (is_cross_document("每个城市的目标"), says_cannot_answer("查无此项"), mask_chrome("返回顶部\n正文"),
              is_followup("顺带问问，补贴标准是多少"), "质押" in tokenize("知识产权质押融资"), tokenizer_fingerprint(),
              requested_kind("第几期"))
    assert before[:5] == (False, False, "返回顶部\n正文", False, True)
    _add(own_vocab, "question_words.tsv", "cross_document\t每个城市", "followup_lead\t顺带问问", "docno_asked\t第几期")
    _add(own_vocab, "model_refusals.txt", "查无此项")
    _add(own_vocab, "page_chrome.txt", "返回顶部")
    _add(own_vocab, "stop_words.txt", "质押")
    (own_vocab / "example_asks.txt").write_text("的适用范围是什么？\n", encoding="utf-8")
    monkeypatch.setenv("RAG_VOCAB_DIR", str(own_vocab))
    Engine(Settings.load())  # the engine makes its settings' folder the one every step reads

    assert is_cross_document("每个城市的目标")
    assert says_cannot_answer("查无此项")
    assert mask_chrome("返回顶部\n正文") == "    \n正文"
    assert is_followup("顺带问问，补贴标准是多少")
    assert "质押" not in tokenize("知识产权质押融资")
    assert tokenizer_fingerprint() != before[5]  # the index is rebuilt when its tokens would change
    assert requested_kind("第几期") == "docno" != before[6]
    docs = [{"doc_id": "x", "title": "某某条例"}]
    assert example_questions(docs, own_vocab, 5) == ["《某某条例》的适用范围是什么？"]


def test_a_vocabulary_folder_that_is_missing_or_incomplete_is_named_in_chinese(own_vocab, tmp_path):
    from rag.errors import SettingsError

    with pytest.raises(SettingsError) as missing:
        load_vocabulary(tmp_path / "nowhere")
    assert "词表目录" in missing.value.user_message and "RAG_VOCAB_DIR" in missing.value.user_message
    (own_vocab / "facets.tsv").unlink()
    with pytest.raises(SettingsError) as incomplete:
        load_vocabulary(own_vocab)
    assert "facets.tsv" in incomplete.value.user_message


# Chinese word collections and regular expressions still written in rag/**/*.py, each with why it stays: structural
# patterns defined once (headings, enumerators, 文号, dates, units of figures, page numbers) and administrative-level
# characters. Anything else found is vocabulary and belongs in rag/resources/vocab/.
REMAINING = {
    "ingest/converters.py": "page-number lines of PDF text (structural)",
    "ingest/docfacts.py": "dates, 文号, 关于印发 titles, periods, validity, region heads: the structure of a notice",
    "ingest/ocr.py": "the year bracket of a 文号 (〔2014〕64号) that recognition read as ] (structural)",
    "ingest/documents.py": "title-line structure, 第X号 orders, layout lines",
    "language/facts.py": "numerals, units of figures, durations, dates, 文号, enumerators, headings (structural, once)",
    "understand/followup.py": "a question's trailing particles and punctuation",
    "answer/grounding.py": "citation markers, source notes, headings, enumerators, 文号 keys",
    "answer/plans.py": "list items, 第X条 and 第X章 lines",
    "evaluation/synthetic.py": "the synthetic benchmark library's own text",
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _cjk_words_in_code() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(RAG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            what = ""
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                         and _CJK.search(e.value)]
                what = f"{len(words)} words" if len(words) >= 3 else ""
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "compile" and node.args
                  and isinstance(node.args[0], ast.Constant) and _CJK.search(str(node.args[0].value))):
                what = "pattern"
            if what:
                found.setdefault(path.relative_to(RAG).as_posix(), []).append(f"{node.lineno}: {what}")
    return found


def test_no_word_list_is_left_in_code_outside_the_listed_structural_patterns():
    found = _cjk_words_in_code()
    unexplained = {name: where for name, where in found.items() if name not in REMAINING}
    assert not unexplained, f"vocabulary in code (move it to rag/resources/vocab/): {unexplained}"
    # what remains: no tuple of three or more Chinese words outside docfacts' division levels and the synthetic library
    lists = {name: [w for w in where if "words" in w] for name, where in found.items()}
    assert {name for name, where in lists.items() if where} <= {"ingest/docfacts.py", "evaluation/synthetic.py"}, lists
