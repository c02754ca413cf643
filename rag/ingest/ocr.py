"""Text from pictures of pages: scanned or image-only PDF pages and pictures inside Word files.

Recognition is rapidocr's (Apache-2.0): PP-OCR text detection, line orientation and recognition models that ship
inside its wheel, run on the CPU by onnxruntime, offline. What this module adds is layout: the boxes it returns are
put in reading order (rows top to bottom, the boxes of a row left to right) and a row that runs to the right margin
goes on in the next row unless that row is indented (a new paragraph in Chinese typesetting), starts an article or
an item, or the row ended a sentence. A paragraph thus becomes one line, as a text PDF's does after its page-width
breaks are joined, and the chunker finds 第X章 / 一、 / 第X条 at line starts exactly as in a text PDF.

Each row keeps where it stood on its page (`Line.box`, fractions of the page's width and height), so the document
view can mark a cited span on the page image.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.language.facts import HEADING_START, ITEM

LAYOUT_VERSION = "2"  # changes whenever the reading-order rules change: part of what a cached conversion is keyed by
MIN_SCORE = 0.5  # rapidocr's own default confidence for keeping a recognised line
UNSURE_SCORE = 0.8  # below this rapidocr's line score marks a line it mostly misread (seen on pages turned 180°)
TURNS = (180, 90, 270)  # clockwise degrees a page read mostly unsure is tried at
_SENTENCE_END = re.compile(r"[。！？；：!?;:]$")
_ASCII_END = re.compile(r"[A-Za-z0-9]$")
# Recognition often returns the ASCII form of Chinese punctuation (",", "(", ":"): beside a Chinese character it is
# the full-width mark the document printed, as its text layer would hold.
_FULL_WIDTH = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
_HALF_BESIDE_HAN = re.compile(r"(?<=[\u4e00-\u9fff（）“”《》、。])[,:;?!()]|[,:;?!()](?=[\u4e00-\u9fff（）“”《》])")
_ASCII_START = re.compile(r"^[A-Za-z0-9]")


@dataclass(frozen=True)
class Box:
    """One recognised piece of text and its rectangle in pixels."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def height(self) -> float:
        return max(1.0, self.bottom - self.top)

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


Rect = tuple[float, float, float, float]  # left, top, right, bottom as fractions of the page's width and height


@dataclass(frozen=True)
class Line:
    """One line of the page's text as it is written into the document, and the rows it was read from: (start, end,
    rect) with start/end offsets into `text` — a paragraph joined from several rows has one entry per row."""

    text: str
    rows: tuple[tuple[int, int, Rect], ...]


@functools.cache
def _engine() -> Any:
    from rapidocr import RapidOCR

    # no per-line orientation classifier: a page upside down then reads as unsure text and is turned whole
    # (read_page), which keeps its rows in order; turned one line at a time, its rows came out bottom to top
    return RapidOCR(params={"Global.log_level": "error", "Global.use_cls": False})


def recognise(image: Any) -> list[Box]:
    """The text boxes rapidocr finds in an image (a BGR numpy array, as pypdfium2 renders and OpenCV reads)."""
    result = _engine()(image)
    if result is None or getattr(result, "boxes", None) is None or not getattr(result, "txts", None):
        return []
    boxes = []
    for points, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
        text = str(text).strip()
        if not text or float(score) < MIN_SCORE:
            continue
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        boxes.append(Box(text, min(xs), min(ys), max(xs), max(ys), float(score)))
    return boxes


def rows_of(boxes: list[Box]) -> list[list[Box]]:
    """Boxes grouped into rows (a box joins the row it overlaps by half its height or more), top to bottom, each row
    left to right."""
    rows: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: (b.middle, b.left)):
        for row in reversed(rows[-3:]):
            top, bottom = min(b.top for b in row), max(b.bottom for b in row)
            overlap = min(bottom, box.bottom) - max(top, box.top)
            if overlap >= 0.5 * min(box.height, bottom - top):
                row.append(box)
                break
        else:
            rows.append([box])
    for row in rows:
        row.sort(key=lambda b: b.left)
    rows.sort(key=lambda r: statistics.median(b.middle for b in r))
    return rows


_PAIRED = re.compile(r"（([^（）()\n]{1,30})\)|\(([^（）()\n]{1,30})）")
# The year bracket of a 文号 (国办发〔2014〕64号) read as a square bracket on one side: 〔2014]64号.
_YEAR_BRACKET = re.compile(r"[〔\[【]((?:19|20)\d\d)[〕\]】](?=\d{1,4}号)")


def _starts_unit(text: str) -> bool:
    """A row that starts an article, a chapter or an enumerated item starts a new line, as in a text PDF."""
    return bool(HEADING_START.match(text) or ITEM.match(text))


def full_width(text: str) -> str:
    """ASCII punctuation beside Chinese characters as the full-width marks Chinese text is printed with."""
    text = _HALF_BESIDE_HAN.sub(lambda m: _FULL_WIDTH[m.group()], text)
    text = _PAIRED.sub(lambda m: f"（{m.group(1) or m.group(2)}）", text)  # a pair is one kind: （2020) → （2020）
    return _YEAR_BRACKET.sub(lambda m: f"〔{m.group(1)}〕", text)


def _row_text(row: list[Box]) -> str:
    return full_width(_joined(row))


def _joined(row: list[Box]) -> str:
    out = row[0].text
    for before, box in zip(row, row[1:], strict=False):
        gap = box.left - before.right
        if gap > 1.5 * min(before.height, box.height):
            out += "  "  # a wide gap: table cells or a signature block; kept apart, never one word
        elif _ASCII_END.search(out) and _ASCII_START.match(box.text) and gap > 0.3 * min(before.height, box.height):
            out += " "  # a word space; a number the detector cut in two ("2" "020-2023年") stays one number
        out += box.text
    return out


def page_lines(boxes: list[Box], width: float, height: float) -> list[Line]:
    """The page's text as lines in reading order, rows that wrap at the right margin joined into their paragraph."""
    rows = rows_of(boxes)
    if not rows:
        return []
    lefts = sorted(min(b.left for b in r) for r in rows)
    rights = sorted(max(b.right for b in r) for r in rows)
    char = statistics.median(statistics.median(b.height for b in r) for r in rows)
    left_margin = lefts[len(lefts) // 10]  # robust to a stray box in the margin
    right_margin = rights[-1 - len(rights) // 10]
    lines: list[tuple[str, list[tuple[int, int, Rect]]]] = []
    previous: list[Box] | None = None
    for row in rows:
        text = _row_text(row)
        rect: Rect = (round(min(b.left for b in row) / width, 4), round(min(b.top for b in row) / height, 4),
                      round(max(b.right for b in row) / width, 4), round(max(b.bottom for b in row) / height, 4))
        if previous is not None and lines:
            ran_to_margin = max(b.right for b in previous) >= right_margin - 1.5 * char
            flush_left = min(b.left for b in row) <= left_margin + 0.8 * char
            before, spans = lines[-1]
            if ran_to_margin and flush_left and not _SENTENCE_END.search(before) and not _starts_unit(text):
                joined = before + (" " if _ASCII_END.search(before) and _ASCII_START.match(text) else "")
                lines[-1] = (joined + text, spans + [(len(joined), len(joined) + len(text), rect)])
                previous = row
                continue
        lines.append((text, [(0, len(text), rect)]))
        previous = row
    return [Line(text, tuple(spans)) for text, spans in lines]


def read_image(image: Any) -> list[Line]:
    """The lines of text in one image (a page rendered from a PDF, a picture from a Word file)."""
    height, width = image.shape[:2]
    return page_lines(recognise(image), float(width), float(height))


def _weight(boxes: list[Box]) -> float:
    return sum(b.score * len(b.text) for b in boxes)


def _upright(boxes: list[Box]) -> bool:
    """Most text boxes stand upright: the page was scanned sideways and its rows run down the image."""
    return sum(1 for b in boxes if len(b.text) >= 2 and b.height > 1.5 * (b.right - b.left)) > len(boxes) / 2


def _unsure(boxes: list[Box]) -> bool:
    """Recognition is unsure of most of what it read: a page upside down (lines are not turned one by one)."""
    return sum(len(b.text) for b in boxes if b.score < UNSURE_SCORE) > 0.5 * sum(len(b.text) for b in boxes)


def read_page(render: Callable[[int], Any]) -> tuple[list[Line], int]:
    """A page's lines, read the right way up: `render(degrees)` gives the page turned clockwise by that many degrees.
    The page is read as it is; a page whose boxes stand upright is read again turned a quarter both ways, a page read
    mostly unsure is tried the other three ways, and the reading with the most confidently read text is kept. Returns
    the lines and the degrees they were read at, so that the page image is shown the same way up."""
    image = render(0)
    boxes = recognise(image)
    best = (boxes, 0, image)
    if boxes and (_upright(boxes) or _unsure(boxes)):
        sideways = _upright(boxes)
        turned = [(recognise(img), degrees, img) for degrees in ((90, 270) if sideways else TURNS)
                  for img in (render(degrees),)]
        turned = [t for t in turned if t[0] and not _upright(t[0])]
        if turned:
            candidate = max(turned, key=lambda t: _weight(t[0]))
            if sideways or _weight(candidate[0]) > 1.2 * _weight(boxes):
                best = candidate
    boxes, degrees, image = best
    height, width = image.shape[:2]
    return page_lines(boxes, float(width), float(height)), degrees


def engine_version() -> str:
    """rapidocr's version and this module's layout rules: what a cached conversion is keyed by."""
    from importlib.metadata import version

    return f"rapidocr-{version('rapidocr')}+layout-{LAYOUT_VERSION}"
