"""What a person looks at: the contact sheet, the storyboard sheet and report.html.

The report shows, for every shot, each take with its grade, scores and issues, and why it was re-shot.
All text is HTML-escaped by Jinja2's autoescape; every link is a program-made path inside the run directory.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from agent.rundir import RunDir, write_atomic
from agent.state import FilmState
from tools.film import Storyboard

_env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

REPORT = _env.from_string(
    """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;background:#111;color:#eee}
a{color:#9cf} h1{margin-bottom:0} .muted{color:#999}
.shot{border-top:1px solid #333;padding:12px 0} .takes{display:flex;gap:12px;flex-wrap:wrap}
.take{background:#1c1c1c;padding:8px;border-radius:6px;width:260px;font-size:13px}
.take img{width:100%;border-radius:4px} .kept{outline:3px solid #4c4}
.grade-A{color:#4c4} .grade-B{color:#fc4} .grade-C{color:#f66}
table{border-collapse:collapse;font-size:12px} td{padding:1px 6px 1px 0}
.flag{background:#553;padding:2px 6px;border-radius:4px}
</style></head><body>
<h1>{{ title }}</h1>
<p class="muted">{{ brief }}</p>
<p>{{ n_shots }} shots · {{ "%.1f"|format(duration) }} s · {{ width }}×{{ height }} · planner {{ planner }}
 · {{ n_takes }} takes · {{ n_flagged }} flagged</p>
{% if draft %}<p class="flag">Draft mode: shots are storyboard panels from the offline renderer, not final images.</p>{% endif %}
{% if video %}<video src="{{ video }}" controls width="640"></video>{% endif %}
<p><a href="contact_sheet.png"><img src="contact_sheet.png" style="max-width:100%"></a></p>
{% for s in shots %}
<div class="shot" id="{{ s.id }}">
<h3>{{ s.id }} · {{ s.kind }} · {{ "%.1f"|format(s.duration) }} s {% if s.flagged %}<span class="flag">flagged</span>{% endif %}</h3>
<p>{{ s.description }}<br><span class="muted">camera: {{ s.camera }} · lighting: {{ s.lighting }}
 · mood: {{ s.mood }}{% if s.subtitle %} · subtitle: “{{ s.subtitle }}”{% endif %}</span></p>
<div class="takes">
{% for t in s.takes %}
<div class="take {{ 'kept' if t.kept else '' }}">
{% if t.image %}<img src="{{ t.image }}">{% endif %}
<b>take {{ t.n }}</b> {% if t.grade %}<span class="grade-{{ t.grade }}">grade {{ t.grade }}</span>{% endif %}
{% if t.kept %} · kept{% endif %}<br>
<span class="muted">{{ t.backend }} · {{ t.model }} · seed {{ t.seed }}</span>
{% if t.references %}<br><span class="muted">conditioned on</span>{% for r in t.references %}
<a href="{{ r }}"><img src="{{ r }}" alt="{{ r }}" style="width:56px;display:inline;vertical-align:middle"></a>{% endfor %}{% endif %}
{% if t.repair %}<br><i>re-shot because: {{ t.repair }}</i>{% endif %}
{% if t.error %}<br><span class="grade-C">error: {{ t.error }}</span>{% endif %}
{% if t.issues %}<ul>{% for i in t.issues %}<li>{{ i }}</li>{% endfor %}</ul>{% endif %}
<table>{% for k, v in t.scores %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
{% if t.not_run %}<span class="muted">not run: {{ t.not_run }}</span>{% endif %}
</div>
{% endfor %}
</div>
{% if s.clip %}<p class="muted">clip: <a href="{{ s.clip }}">{{ s.clip }}</a> · {{ s.clip_verdict }}</p>{% endif %}
{% if s.variants %}<div class="takes">{% for v in s.variants %}
<div class="take" style="width:160px">{% if v.path %}<a href="{{ v.path }}"><img src="{{ v.path }}"></a>{% endif %}
<b>{{ v.platform }}</b> {{ v.width }}×{{ v.height }} · {{ v.mode }}
{% if v.grade %}<span class="grade-{{ v.grade }}">grade {{ v.grade }}</span>{% endif %}
{% if v.error %}<br><span class="grade-C">error: {{ v.error }}</span>{% endif %}
{% if v.issues %}<ul>{% for i in v.issues %}<li>{{ i }}</li>{% endfor %}</ul>{% endif %}</div>
{% endfor %}</div>{% endif %}
</div>
{% endfor %}
</body></html>
"""
)


def _thumb_grid(items: list[tuple[Path, str]], out: Path, columns: int = 4, thumb_w: int = 320) -> Path:
    """A grid of labelled thumbnails written as one PNG."""
    from PIL import Image, ImageDraw

    from tools.fonts import pil_font

    if not items:
        raise ValueError("no images to put on the sheet")
    first = Image.open(items[0][0])
    thumb_h = max(1, round(thumb_w * first.height / first.width))
    label_h = 44
    rows = (len(items) + columns - 1) // columns
    cols = min(columns, len(items))
    sheet = Image.new("RGB", (cols * (thumb_w + 8) + 8, rows * (thumb_h + label_h + 8) + 8), (17, 17, 17))
    draw = ImageDraw.Draw(sheet)
    font = pil_font(15)
    for i, (path, label) in enumerate(items):
        x = 8 + (i % columns) * (thumb_w + 8)
        y = 8 + (i // columns) * (thumb_h + label_h + 8)
        with Image.open(path) as im:
            sheet.paste(im.convert("RGB").resize((thumb_w, thumb_h)), (x, y))
        for j, line in enumerate(label.split("\n")[:2]):
            draw.text((x + 2, y + thumb_h + 4 + j * 19), line[:48], fill=(230, 230, 230), font=font)
    tmp = out.with_suffix(".tmp.png")  # write then rename: a killed run never leaves half a PNG
    sheet.save(tmp)
    tmp.replace(out)
    return out


def write_storyboard_sheet(storyboard: Storyboard, root: Path) -> Path:
    """storyboard.png (draft panels with shot numbers and subtitles) and storyboard.html beside it."""
    from tools.generate_image import DraftBackend, ImageRequest

    panels = root / "storyboard"
    panels.mkdir(parents=True, exist_ok=True)
    draft = DraftBackend()
    items = []
    for shot in storyboard.shots:
        path = panels / f"{shot.id}.png"
        draft.generate(
            ImageRequest(
                prompt=shot.prompt,
                width=storyboard.width,
                height=storyboard.height,
                seed=shot.index,
                output_path=str(path),
                shot=shot,
            )
        )
        items.append(
            (path, f"{shot.id} · {shot.kind} · {shot.duration:.1f}s\n{shot.subtitle or shot.description}")
        )
    sheet = _thumb_grid(items, root / "storyboard.png")
    rows = "".join(
        f"<tr><td><img src='storyboard/{s.id}.png' width='240'></td><td><b>{s.id} · {html.escape(s.kind)}"
        f" · {s.duration:.1f} s</b><br>{html.escape(s.description)}<br><i>{html.escape(s.camera)} · "
        f"{html.escape(s.lighting)} · {html.escape(s.mood)}</i><br>“{html.escape(s.subtitle)}”<br>"
        f"<small>{html.escape(s.prompt)}</small></td></tr>"
        for s in storyboard.shots
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(storyboard.title)}</title>"
        f"<body style='font-family:system-ui'><h1>{html.escape(storyboard.title)}</h1>"
        f"<p>{len(storyboard.shots)} shots · {storyboard.duration:.1f} s · {storyboard.width}×{storyboard.height}"
        f" · planner {html.escape(storyboard.planner)}</p><table>{rows}</table></body>"
    )
    write_atomic(root / "storyboard.html", page)
    return sheet


def write_report(state: FilmState, run: RunDir, settings) -> str:
    """contact_sheet.png and report.html for a finished film; returns the report's relative path."""
    results = {r.shot_id: r for r in state.results}
    sheet_items, shots = [], []
    for shot in state.storyboard.shots:
        result = results.get(shot.id)
        takes = result.takes if result else []
        kept = result.best if result else None
        if kept is not None:
            grade = next(t.critique.grade for t in takes if t.n == kept)
            sheet_items.append(
                (run.abs(f"shots/{shot.id}/take-{kept}.png"), f"{shot.id} · take {kept} · {grade}")
            )
        shots.append(
            {
                **shot.model_dump(),
                "flagged": bool(result and result.flagged),
                "clip": result.clip.path if result and result.clip else None,
                "clip_verdict": _clip_verdict(result),
                "takes": [_take_view(t, kept) for t in takes],
                "variants": [_variant_view(v) for v in (result.variants if result else [])],
            }
        )
    if sheet_items:
        _thumb_grid(sheet_items, run.root / "contact_sheet.png")
    all_takes = [t for r in state.results for t in r.takes]
    page = REPORT.render(
        title=state.storyboard.title,
        brief=state.brief.text[:600],
        lang=state.storyboard.lang,
        n_shots=len(state.storyboard.shots),
        duration=state.cut.duration if state.cut else state.storyboard.duration,
        width=settings.width,
        height=settings.height,
        planner=state.storyboard.planner,
        n_takes=len(all_takes),
        n_flagged=sum(r.flagged for r in state.results),
        draft=any(t.backend == "draft" for t in all_takes),
        video=state.cut.path if state.cut else None,
        shots=shots,
    )
    write_atomic(run.root / "report.html", page)
    return "report.html"


def _take_view(take, kept: int | None) -> dict:
    crit = take.critique
    return {
        "n": take.n,
        "image": None if take.error else take.path,
        "kept": take.n == kept,
        "grade": crit.grade if crit else None,
        "backend": take.backend,
        "model": take.model,
        "seed": take.seed,
        "repair": take.repair.reason if take.repair else None,
        "references": take.parameters.get("references") or [],
        "error": take.error,
        "issues": [f"{i.category}: {i.reason}" for i in crit.issues] if crit else [],
        "scores": sorted((k, round(v, 3)) for k, v in crit.scores.items()) if crit else [],
        "not_run": ", ".join(crit.critics_not_run) if crit else "",
    }


def _variant_view(v) -> dict:
    crit = v.critique
    return {
        "platform": v.platform, "width": v.width, "height": v.height, "mode": v.mode, "error": v.error,
        "path": None if v.error else v.path, "grade": crit.grade if crit else None,
        "issues": [f"{i.category}: {i.reason}" for i in crit.issues] if crit else [],
    }  # fmt: skip


def _clip_verdict(result) -> str:
    if not result or not result.clip or not result.clip.critique:
        return ""
    c = result.clip.critique
    issues = "; ".join(i.reason for i in c.issues)
    return f"grade {c.grade}" + (f" ({issues})" if issues else "") + " · " + json.dumps(c.scores)[:200]
