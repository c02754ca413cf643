"""Library errors. The edges (CLI, API, UI) turn them into friendly Chinese messages."""


class RagError(Exception):
    """Base class; `user_message` is what an edge shows to a person."""

    user_message = "处理请求时出错。"

    def __init__(self, message: str, user_message: str | None = None):
        super().__init__(message)
        if user_message:
            self.user_message = user_message


class SettingsError(RagError):
    user_message = "配置有误。"


class CorpusError(RagError):
    user_message = "文档库无法读取。"


class IndexMissingError(RagError):
    user_message = "索引尚未建立，请先运行 `rag index`。"


class IndexMismatchError(RagError):
    user_message = "索引与当前的向量模型不匹配，请运行 `rag index --rebuild` 重建索引。"


class QueryError(RagError):
    user_message = "问题无效。"


class UnknownFilterError(QueryError):
    user_message = "筛选条件中的文档或地区不存在。"


class ModelError(RagError):
    user_message = "模型无法加载。"


class LLMUnavailableError(RagError):
    user_message = "生成服务暂时不可用。"


class UnknownDocumentError(CorpusError):
    user_message = "没有这篇文档。"


class StoreUnavailableError(IndexMissingError):
    user_message = "检索数据库暂时无法连接，请稍后再试。"
