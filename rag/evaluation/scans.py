"""Scans made from known text: a document printed to page images the way a scanner returns them, as an image-only PDF.

What OCR is measured on (`rag bench --ocr`) and tested with: the text is known, so the characters OCR reads back can
be compared with it, and questions over the scan can be compared with the same questions over the text. Pages are A4
at `dpi`, the text set in WenQuanYi Zen Hei (Debian's fonts-wqy-zenhei, which the browser tests install too), each
paragraph's first line indented two characters as Chinese documents are set, lines wrapped at the page width; then
each page is turned by `angle` degrees, blurred a little, speckled and stored as a JPEG, as a desk scanner does.
"""

from __future__ import annotations

import io
from pathlib import Path

FONT_PATHS = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc")


def font_path() -> Path | None:
    """The CJK font pages are set in, or None when it is not installed."""
    return next((Path(p) for p in FONT_PATHS if Path(p).is_file()), None)


def _wrapped(line: str, font, width: float, indent: str) -> list[str]:
    out, current = [], indent
    for char in line:
        if font.getlength(current + char) > width and current.strip():
            out.append(current)
            current = ""
        current += char
    if current.strip():
        out.append(current)
    return out


def page_images(text: str, dpi: int = 150, angle: float = 0.0, seed: int = 0, font_size_pt: float = 12.0,
                noise: bool = True, turn: int = 0) -> list:
    """The text as page images (PIL, grayscale), in order. `turn`: the whole page put on the scanner turned by this
    many degrees anticlockwise (90: sideways, 180: upside down)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    path = font_path()
    if path is None:
        raise FileNotFoundError("fonts-wqy-zenhei is not installed (apt-get install fonts-wqy-zenhei)")
    size = round(font_size_pt / 72 * dpi)
    font = ImageFont.truetype(str(path), size)
    width, height = round(8.27 * dpi), round(11.69 * dpi)
    margin_x, margin_y, leading = round(0.9 * dpi), round(1.0 * dpi), round(size * 1.75)
    rows: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        paragraph = font.getlength(line) > 0.6 * (width - 2 * margin_x)  # long lines are paragraphs, short ones headings
        rows += _wrapped(line, font, width - 2 * margin_x, "\u3000\u3000" if paragraph else "")
    per_page = max(1, (height - 2 * margin_y) // leading)
    rng = np.random.default_rng(seed)
    pages = []
    for first in range(0, max(1, len(rows)), per_page):
        image = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(image)
        for i, row in enumerate(rows[first:first + per_page]):
            draw.text((margin_x, margin_y + i * leading), row, font=font, fill=20)
        if angle:
            image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
        if turn:
            image = image.rotate(turn, expand=True)
        if noise:
            image = image.filter(ImageFilter.GaussianBlur(0.6))
            pixels = np.asarray(image, dtype=np.int16)
            pixels = pixels + rng.normal(0, 10, pixels.shape).astype(np.int16)
            specks = rng.random(pixels.shape) < 0.0008
            pixels[specks] = 40
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
        pages.append(image)
    return pages


def scan_pdf(text: str, dpi: int = 150, angle: float = 0.0, seed: int = 0, noise: bool = True, turn: int = 0) -> bytes:
    """An image-only PDF of the text (no text layer), each page a JPEG as a scanner stores it."""
    from PIL import Image

    frames = []
    for page in page_images(text, dpi, angle, seed, noise=noise, turn=turn):
        buffer = io.BytesIO()
        page.save(buffer, "JPEG", quality=75)
        buffer.seek(0)
        frames.append(Image.open(buffer))
    out = io.BytesIO()
    frames[0].save(out, "PDF", resolution=float(dpi), save_all=True, append_images=frames[1:])
    return out.getvalue()
