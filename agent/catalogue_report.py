"""qc_report.html for a catalogue: grade counts, a contact sheet per grade, and every C with its reasons.

The page is rendered from agent/templates/qc_report.html.j2 (autoescape on, the CJK font subset embedded as
agent/report.py does), so Chinese product names show in any browser. Contact sheets are PNGs in DIR/qc/.
"""

from __future__ import annotations

from pathlib import Path

from agent.catalogue_records import Records
from agent.report import render_page
from tools.files import write_atomic

SHEET_MAX = 48  # thumbnails on one grade's sheet; the rest are counted, and each C is listed below anyway
THUMB = 200


def contact_sheet(items: list[tuple[Path, str]], out: Path, columns: int = 8) -> Path:
    """Thumbnails fitted into squares (platforms differ in aspect), each labelled, as one PNG. A sheet of the
    same images (path, size, time) and labels is kept as it is: a review decision changes none of them."""
    import io

    from PIL import Image, ImageDraw, PngImagePlugin

    from tools.fonts import pil_font

    made_of = repr(
        [(str(p), label, p.stat().st_size, p.stat().st_mtime_ns) for p, label in items] + [columns]
    )
    if out.is_file():
        with Image.open(out) as old:
            if old.info.get("made-of") == made_of:
                return out

    rows = (len(items) + columns - 1) // columns
    cols = min(columns, len(items))
    cell_h = THUMB + 40
    sheet = Image.new("RGB", (cols * (THUMB + 8) + 8, rows * (cell_h + 8) + 8), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = pil_font(13)
    for i, (path, label) in enumerate(items):
        x, y = 8 + (i % columns) * (THUMB + 8), 8 + (i // columns) * (cell_h + 8)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            sheet.paste(im, (x + (THUMB - im.width) // 2, y + (THUMB - im.height) // 2))
        for j, line in enumerate(label.split("\n")[:2]):
            draw.text((x + 2, y + THUMB + 4 + j * 17), line[:30], fill=(230, 230, 230), font=font)
    info = PngImagePlugin.PngInfo()
    info.add_text("made-of", made_of)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", pnginfo=info)
    write_atomic(out, buf.getvalue())
    return out


def write_report(records: Records, out: Path) -> Path:
    """Write DIR/qc_report.html (and DIR/qc/contact-<grade>.png); returns the page's path."""
    counts = records.grade_counts()
    sheets = []
    for g in ("A", "B", "C"):
        rows = list(records.rows("where grade = ? and path != ''", (g,)))
        if not rows:
            continue
        shown = rows[:SHEET_MAX]
        items = [(out / r["path"], f"{r['sku']}\n{r['scene']} · {r['platform']}") for r in shown]
        sheet = contact_sheet(items, out / "qc" / f"contact-{g}.png")
        sheets.append({"grade": g, "path": sheet.relative_to(out).as_posix(), "more": len(rows) - len(shown)})
    failed = [
        {
            "sku": r["sku"],
            "scene": r["scene"],
            "platform": r["platform"],
            "path": r["path"],
            "issues": r["issues"] or ["no image: every take failed"],
            "notes": r["notes"],
            "attempts": r["attempts"],
        }
        for r in records.rows("where grade = 'C'")
    ]
    (products,) = records.db.execute("select count(*) from products").fetchone()
    page = render_page(
        "qc_report.html.j2",
        title="Catalogue QC",
        counts=counts,
        total=sum(counts.values()),
        products=products,
        sheets=sheets,
        failed=failed,
        review=sum(1 for _ in records.rows("where grade in ('B', 'C') and status in ('new', 'redo')")),
    )
    path = out / "qc_report.html"
    write_atomic(path, page)
    return path
