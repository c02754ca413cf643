"""Test documents in the formats offices receive: Word with heading styles, PDF with a text layer (and the faulty
kinds: encrypted, image-only), a government web page with navigation and page furniture. Own text throughout."""

from __future__ import annotations

import io

DOCX_TITLE = "滨海市数据知识产权登记管理暂行办法"
DOCX_BLOCKS = [
    ("title", DOCX_TITLE),
    ("p", "滨海市市场监督管理局"),
    ("p", "滨市监规〔2025〕3号"),
    ("h1", "总体要求"),
    ("p", "坚持依法登记、公开透明、安全可控，促进数据要素流通利用。"),
    ("h1", "登记范围"),
    ("p", "依法收集、经过一定算法加工、具有实用价值的数据集合，可以申请数据知识产权登记。"),
    ("h2", "登记机构"),
    ("p", "市知识产权保护中心负责登记平台的运行，登记申请在十个工作日内完成审查。"),
    ("h1", "激励措施"),
    ("p", "对完成登记并实现交易的企业，每件给予不超过2万元奖励，单个企业每年不超过20万元。"),
    ("p", "本办法自2025年3月1日起施行，有效期至2027年12月31日。"),
    ("p", "滨海市市场监督管理局    2025年2月10日"),
]

PDF_TITLE = "海州市专利转化运用专项行动方案（2024—2026年）"
PDF_PAGES = [
    [PDF_TITLE, "海州市人民政府办公室", "一、工作目标",
     "到2026年，全市高校和科研院所专利转化率达到15%，",
     "培育专利密集型产品200个。",
     "二、重点任务", "（一）盘活存量专利。组织高校对存量专利开展全面盘点。"],
    ["（二）培育转化主体。支持企业建设专利转化中心，",
     "每家给予不超过80万元建设补助。",
     "三、保障措施", "市财政每年安排专利转化专项资金3000万元。", "- 2 -"],
]

HTML_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<title>江宁市人民政府关于印发江宁市知识产权强市建设纲要的通知_江宁市人民政府门户网站</title></head>
<body><div class="top"><a href="/">首页</a><a href="/zwgk">政务公开</a><a>无障碍</a><a>长者模式</a></div>
<div class="crumb">当前位置：首页 &gt; 政务公开 &gt; 政策文件</div>
<div class="content">
<h1>江宁市人民政府关于印发江宁市知识产权强市建设纲要的通知</h1>
<div class="meta">发布时间：2021-06-18  浏览次数：2310</div>
<p>江政发〔2021〕12号</p>
<p>各区人民政府，市政府各部门：</p>
<p>现将《江宁市知识产权强市建设纲要（2021—2035年）》印发给你们，请认真组织实施。</p>
<p>江宁市人民政府</p><p>2021年6月15日</p>
<h2>战略目标</h2>
<p>到2025年，每万人口高价值发明专利拥有量达到18件，知识产权使用费进出口总额达到20亿元。</p>
<h2>重点任务</h2>
<h3>建设知识产权保护高地</h3>
<p>建立知识产权快速维权中心，实用新型专利授权周期压缩至三个月以内。</p>
<h3>建设知识产权运用高地</h3>
<p>每年新增知识产权质押融资额不低于50亿元。</p>
</div>
<div class="share">分享到：微信 微博</div>
<div class="tools">【打印本页】【关闭窗口】</div>
<div class="footer">主办单位：江宁市人民政府办公室 网站标识码：1234567890 备案号：京ICP备00000000号</div>
</body></html>"""


def docx_bytes(blocks: list[tuple[str, str]] = DOCX_BLOCKS) -> bytes:
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, 0)
        elif kind.startswith("h"):
            document.add_heading(text, int(kind[1]))
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_bytes(pages: list[list[str]] = PDF_PAGES, password: str | None = None, image_only: bool = False) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))  # an Adobe CID font: no font file needed
    out = io.BytesIO()
    pdf = canvas.Canvas(out, encrypt=password) if password else canvas.Canvas(out)
    for lines in pages:
        if image_only:
            pdf.rect(72, 400, 400, 300, fill=1)  # a "scan": no text layer
        else:
            pdf.setFont("STSong-Light", 12)
            for i, line in enumerate(lines):
                pdf.drawString(60, 790 - 22 * i, line)
        pdf.showPage()
    pdf.save()
    return out.getvalue()
