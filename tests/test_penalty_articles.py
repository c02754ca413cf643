"""A question about the consequence of an act is answered by the article punishing it, which names the act only by
the number of the article forbidding it (违反本条例第五条规定…): that article comes first (retrieve.with_penalty_articles)."""


import pytest

from rag.answer.pipeline import answer
from rag.answer.retrieve import retrieve, understand_question
from rag.engine import Engine
from rag.models.embedders import FakeEmbedder
from rag.store.library import ensure_index
from tests.conftest import make_settings

REGULATION = """甲市苗木种植管理条例

第一条 为了规范苗木种植活动，制定本条例。

第二条 苗木种植户应当向甲市林业主管部门登记种植地块。

第五条 任何单位和个人不得在水源保护区内种植速生桉树苗木，不得向种植户出售未经检疫的苗木种子。

第六条 甲市林业主管部门应当在受理登记申请之日起十五日内作出登记决定。

第九条 违反本条例第五条规定的，由甲市林业主管部门责令改正，没收违法所得，并处二千元以上二万元以下罚款。

第十条 违反本条例第六条规定，逾期未作出登记决定的，对直接负责的主管人员依法给予处分。
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    tmp = tmp_path_factory.mktemp("penalty")
    data = tmp / "data"
    data.mkdir()
    (data / "jiashi-seedlings.txt").write_text(REGULATION, encoding="utf-8")
    settings = make_settings(data, tmp / "index")
    embedder = FakeEmbedder()
    index, _ = ensure_index(settings, embedder)
    return Engine(settings, embedder=embedder, index=index)


def _first(engine: Engine, question: str) -> str:
    return retrieve(understand_question(question, None, engine), engine)[0].chunk.text


def test_the_article_punishing_an_act_comes_before_the_article_forbidding_it(engine):
    question = "甲市有人在水源保护区内种植速生桉树苗木，会被怎么罚？"
    # without the consequence asked, the forbidding article is the best match of the act's words
    assert _first(engine, "甲市有人在水源保护区内种植速生桉树苗木吗？").startswith("第五条")
    assert _first(engine, question).startswith("第九条")
    result = answer(question, engine=engine)
    assert "二千元以上二万元以下" in result.answer, result.answer


def test_a_question_about_a_procedure_keeps_the_order_found(engine):
    # 登记决定 matches 第六条; 第十条 cites it, but the question asks for a period, not a consequence
    assert _first(engine, "甲市林业主管部门受理登记申请后多少日内作出登记决定？").startswith("第六条")


def test_only_articles_of_the_same_text_are_cited(engine):
    from rag.language.facts import articles_cited

    assert articles_cited("违反本条例第五条、第七条第一款规定的，处罚款") == {5, 7}
    assert articles_cited("违反《中华人民共和国专利法》第五条规定的") == set()
    assert articles_cited("违反本规定的，责令改正") == set()


def test_a_penalty_citing_one_item_is_about_that_item_only():
    """违反本条例第二十条第一款第二项 punishes the second item of 第二十条, not 假冒专利 in its first: a question about
    假冒专利 is not answered by it (a near miss the held-out Chongqing regulation has)."""
    from rag.language.facts import provision_text, provisions_cited

    assert provisions_cited("第三十条 违反本条例第二十条第一款第二项的，处二千元以上二万元以下罚款") == [(20, 1, 2)]
    assert provisions_cited("违反本法第九条第二款规定的") == [(9, 2, 0)]
    article = "第二十条 有下列行为之一的，由市专利管理部门依法进行查处：\n\n（一）假冒专利的；\n\n（二）同一侵权人再次侵犯同一专利权的。"
    assert provision_text(article, 1, 2) == "（二）同一侵权人再次侵犯同一专利权的。"
    assert provision_text(article, 0, 0) == article.replace("\n\n", "\n")
    two = "第十六条 任何单位和个人不得假冒专利。\n\n任何单位和个人不得为其提供便利条件。"
    assert provision_text(two, 2, 0) == "任何单位和个人不得为其提供便利条件。"
