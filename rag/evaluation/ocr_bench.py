"""`rag bench --ocr`: how fast and how well scanned documents are read, on scans made from known text.

Each document of the library (the seed documents by default) is printed to an image-only PDF (rag.evaluation.scans:
A4, 150 dpi, blurred, speckled, JPEG pages, optionally turned by a few degrees) and converted the way an upload is
(rag.ingest.converters.convert, OCR on). Printed per document and in all: pages, characters, seconds, characters
per second, and character accuracy — 1 − (edit distance between what OCR read and the document's text) / (the
text's length), both without whitespace and NFKC-normalised (，and , count as one character). `--out DIR` also writes the scans and a manifest there, a library to index
and evaluate beside the text copy (answer quality over the OCR'd copy vs the text copy):

    rag bench --ocr --out .variants/ocr-seed/data
    RAG_DATA_DIR=.variants/ocr-seed/data RAG_INDEX_DIR=.variants/ocr-seed/index rag eval --backend extractive
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path

from rag.errors import RagError
from rag.ingest.converters import OcrOptions, convert, decode_bytes
from rag.ingest.documents import MANIFEST_NAME, corpus_files, read_manifest


def _compact(text: str) -> str:
    """Without whitespace and in NFKC form: a full-width ，（： and its ASCII twin are one character to a reader, and
    documents print either."""
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", text))


def accuracy(read: str, truth: str) -> float:
    """1 − Levenshtein distance / length of the truth, whitespace left out of both, NFKC (floored at 0)."""
    from rapidfuzz.distance import Levenshtein

    truth, read = _compact(truth), _compact(read)
    if not truth:
        return 1.0 if not read else 0.0
    return max(0.0, 1 - Levenshtein.distance(read, truth) / len(truth))


def run(data_dir: Path, out_dir: Path | None = None, angle: float = 0.0, scale: float = 2.0,
        limit: int = 0) -> dict:
    from rag.evaluation.scans import scan_pdf

    files = [p for p in corpus_files(data_dir) if p.suffix.lower() in (".txt", ".md")]
    if limit:
        files = files[:limit]
    if not files:
        raise RagError(f"{data_dir}: no text documents", f"文档目录 {data_dir} 中没有 .txt / .md 文档可用来制作扫描件。")
    manifest = read_manifest(data_dir)
    rows: list[dict] = []
    written: dict[str, dict] = {}
    options = OcrOptions(True, 10_000, scale)
    for path in files:
        text, _ = decode_bytes(path.read_bytes())
        pdf = scan_pdf(text, angle=angle, seed=len(rows))
        started = time.perf_counter()
        extracted = convert(path.with_suffix(".pdf").name, pdf, options)
        seconds = time.perf_counter() - started
        chars = len(_compact(text))
        rows.append({"file": path.name, "pages": len(extracted.pages), "chars": chars, "seconds": round(seconds, 1),
                     "chars_per_s": round(chars / seconds, 1), "accuracy": round(accuracy(extracted.text, text), 4)})
        print(f"{path.name[:44]:44} {rows[-1]['pages']:3d} 页 {chars:6d} 字 {seconds:6.1f} s "
              f"{rows[-1]['chars_per_s']:6.1f} 字/s  字符准确率 {rows[-1]['accuracy']:.4f}", flush=True)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / path.with_suffix(".pdf").name).write_bytes(pdf)
            if path.name in manifest:
                written[path.with_suffix(".pdf").name] = manifest[path.name] | {"file": path.with_suffix(".pdf").name}
    pages = sum(r["pages"] for r in rows)
    chars = sum(r["chars"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    weighted = sum(r["accuracy"] * r["chars"] for r in rows) / max(1, chars)
    summary = {"documents": len(rows), "pages": pages, "chars": chars, "seconds": round(seconds, 1),
               "chars_per_s": round(chars / max(seconds, 1e-9), 1), "s_per_page": round(seconds / max(1, pages), 2),
               "accuracy": round(weighted, 4), "angle": angle, "scale": scale, "rows": rows}
    print(f"{'共计':44} {pages:3d} 页 {chars:6d} 字 {seconds:6.1f} s {summary['chars_per_s']:6.1f} 字/s  "
          f"字符准确率 {weighted:.4f}（每页 {summary['s_per_page']} s，倾斜 {angle}°，渲染倍数 {scale}）")
    if out_dir is not None:
        (out_dir / MANIFEST_NAME).write_text(json.dumps({"documents": list(written.values())}, ensure_ascii=False,
                                                        indent=1), encoding="utf-8")
        print(f"扫描件和清单已写入 {out_dir}")
    return summary
