"""Pinyin an input method left unconverted in a question (rag/language/pinyin.py)."""

from rag.language.pinyin import hanzi_for_pinyin


def test_pinyin_typed_in_a_question_is_read_as_the_words_it_spells():
    """dev_g g053, g056: "反不正当竞争法 qinfan shangye mimi 罚款多少", "深圳zhuanli优先审查 申请人要满足啥条件" were
    searched for Latin letters no passage holds."""
    assert hanzi_for_pinyin("深圳zhuanli优先审查 申请人要满足啥条件") == "深圳专利优先审查 申请人要满足啥条件"
    assert hanzi_for_pinyin("反不正当竞争法 qinfan shangye mimi 罚款多少") == "反不正当竞争法 侵犯商业秘密 罚款多少"
    assert hanzi_for_pinyin("chongqing的条例") == "重庆的条例"  # 重 read by its second reading, chong


def test_english_and_short_words_are_left_as_typed():
    for text in ("IC layout design侵权纠纷", "这个demo怎么用", "PCT申请要多久", "hello world", "email地址填哪个"):
        assert hanzi_for_pinyin(text) == text


def test_the_librarys_own_words_come_first():
    """jishu hetong dengji: 等级 is the commoner word, 登记 the one a library of technology-contract rules holds."""
    assert hanzi_for_pinyin("jishu hetong dengji") == "技术合同等级"
    held = {"技术": 40, "合同": 30, "登记": 25, "等级": 1}
    assert hanzi_for_pinyin("jishu hetong dengji", lambda word: held.get(word, 0)) == "技术合同登记"


def test_a_question_with_pinyin_is_answered_from_the_words_it_spells(tmp_path):
    from rag.answer.pipeline import answer

    from .conftest import library_of

    engine = library_of(tmp_path, {"青川市专利条例.txt": "青川市专利条例\n\n第一条 为了保护专利权，制定本条例。\n\n第十二条 市专利管理部门"
                                                       "应当自收到专利侵权纠纷处理请求之日起五日内决定是否受理。\n"})
    result = answer("青川zhuanli qinquan jiufen 几天内决定受不受理", engine=engine)
    assert "五日内" in result.answer and not result.refused, result.answer
    assert "专利侵权纠纷" in result.rewritten_question or "专利侵权纠纷" in result.understood["text"], result.understood
