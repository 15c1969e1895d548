"""What a person looks at: the contact sheet, the storyboard sheet and report.html.

report.html is for the people who decide: it opens with the film (every cut), then the shot list as a client
reads it, then what needs a decision; every take with its critics is folded below. Pages are rendered from the
Jinja2 templates in agent/templates/ with autoescape on, and embed a subset of the project's CJK font, so
Chinese shows as Chinese in a browser that has no CJK font. Every link is a program-made path in the run.
"""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from agent.rundir import MARKER, RunDir, read_json, write_atomic
from agent.state import FilmState
from tools.budget import budget_note, cost_line
from tools.film import Cut, ShotResult, Storyboard, Take

_env = Environment(
    loader=PackageLoader("agent", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
PLAYER_HEIGHT = 360  # every cut's player is shown this tall, whatever its aspect


def render_page(template: str, **context) -> str:
    """Render `template` with a subset of the CJK font holding every character the page shows, embedded."""
    from tools.fonts import font_subset

    page = _env.get_template(template)
    text = page.render(font_b64="", **context)
    return page.render(font_b64=base64.b64encode(font_subset(text)).decode("ascii"), **context)


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
    draft = DraftBackend(annotate=True)  # the sheet keeps the shot labels a film frame leaves off
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
    page = render_page(
        "storyboard.html.j2",
        title=storyboard.title,
        lang=storyboard.lang,
        duration=storyboard.duration,
        width=storyboard.width,
        height=storyboard.height,
        planner=storyboard.planner,
        notes=storyboard.notes,
        shots=storyboard.shots,
    )
    write_atomic(root / "storyboard.html", page)
    return sheet


def _shot_views(state: FilmState, run: RunDir, on_disk: list) -> tuple[list[dict], list[tuple]]:
    """(one view per storyboard shot: its takes, the kept one, clip, cost and variants; the contact sheet's
    (frame, label) items)."""
    results = {r.shot_id: r for r in state.results}
    notes = _redo_notes(run)
    sheet_items, shots = [], []
    for shot in state.storyboard.shots:
        result = results.get(shot.id)
        takes = _all_takes(shot.id, result, on_disk)
        kept = result.best if result else None
        kept_take = next((t for t in takes if t.n == kept), None)
        if kept_take is not None:
            grade = kept_take.critique.grade if kept_take.critique else "?"
            sheet_items.append((run.abs(kept_take.path), f"{shot.id} · take {kept} · {grade}"))
        shots.append(
            {
                **shot.model_dump(),
                "frame": kept_take.path if kept_take else None,
                "kept": kept,
                "flagged": bool(result is None or result.flagged),
                "error": result.error if result else None,
                "clip": _clip_view(result),
                "takes": [_take_view(t, kept, notes.get((shot.id, t.n))) for t in takes],
                "cost": cost_line(
                    [t.timings for t in takes] + ([result.clip.timings] if result and result.clip else [])
                ),
                "variants": [_variant_view(v) for v in (result.variants if result else [])],
            }
        )
    return shots, sheet_items


def write_report(state: FilmState, run: RunDir, settings) -> str:
    """contact_sheet.png and report.html for a finished film; returns the report's relative path."""
    from tools.sound import sound_notes

    results = {r.shot_id: r for r in state.results}
    on_disk = run.takes()
    shots, sheet_items = _shot_views(state, run, on_disk)
    if sheet_items:
        _thumb_grid(sheet_items, run.root / "contact_sheet.png")
    cuts = _cuts(state, run)
    unfit = cuts[0].audio.unfit if cuts and cuts[0].audio else []
    all_takes = [t for s in shots for t in s["takes"]]
    duration = cuts[0].duration if cuts else state.storyboard.duration
    summary = (
        f"{len(shots)} shots · {duration:.1f} s · {settings.width}×{settings.height} · "
        f"planner {state.storyboard.planner} · {len(all_takes)} takes · {sum(s['flagged'] for s in shots)} flagged"
    )
    spent = [t.timings for s in state.storyboard.shots for t in _all_takes(s.id, results.get(s.id), on_disk)]
    spent += [r.clip.timings for r in state.results if r.clip]
    film_cost = cost_line(spent, kept=sum(s["kept"] is not None for s in shots))
    summary += f" · cost: {film_cost}" if film_cost else ""
    page = render_page(
        "report.html.j2",
        title=state.storyboard.title,
        lang=state.storyboard.lang,
        summary=summary,
        brief=state.brief.text[:2000],
        draft=any(t["backend"] == "draft" for t in all_takes),
        cuts=[_cut_view(c) for c in cuts],
        sound=sound_notes(cuts),
        decisions=_decisions(state.storyboard, shots)
        + [{"shot": i, "text": "its voice-over line does not fit the film's length"} for i in unfit]
        + [{"shot": None, "text": n} for n in [budget_note(run.root)] if n],
        shots=shots,
    )
    write_atomic(run.root / "report.html", page)
    return "report.html"


def _all_takes(shot_id: str, result: ShotResult | None, on_disk: list[Take]) -> list[Take]:
    """Every take of the shot: those recorded on disk (a redo's branch carries only its new ones) and the
    branch's own, which are newer where both exist."""
    by_n = {t.n: t for t in on_disk if t.shot_id == shot_id}
    by_n.update({t.n: t for t in (result.takes if result else [])})
    return [by_n[n] for n in sorted(by_n)]


def _redo_notes(run: RunDir) -> dict[tuple[str, int], str]:
    """(shot id, take number) → the director's note of the redo that made the take (from run.json)."""
    marker = run.root / MARKER
    redos = read_json(marker).get("redos", []) if marker.exists() else []
    notes: dict[tuple[str, int], str] = {}
    for i, redo in enumerate(redos):
        later = [r["first_take"] for r in redos[i + 1 :] if r["shot"] == redo["shot"]]
        last = min(later) if later else redo["first_take"] + 100
        for n in range(redo["first_take"], last):
            if redo.get("note"):
                notes[(redo["shot"], n)] = redo["note"]
    return notes


def _cuts(state: FilmState, run: RunDir) -> list[Cut]:
    """Every cut of the film, as the cut node listed them in manifest.json (the first is final.mp4)."""
    manifest = run.root / "manifest.json"
    listed = read_json(manifest).get("cuts", []) if manifest.exists() else []
    if listed:
        return [Cut.model_validate(c) for c in listed]
    return [state.cut] if state.cut else []


def _cut_view(cut: Cut) -> dict:
    show = min(640, round(PLAYER_HEIGHT * cut.width / cut.height))
    return {**cut.model_dump(), "show_width": show}


def _decisions(storyboard: Storyboard, shots: list[dict]) -> list[dict]:
    """What a person must decide on: flagged shots and why, failed deliveries, and the planner's notes."""
    out = [{"shot": None, "text": note} for note in storyboard.notes]
    for s in shots:
        if s["error"]:
            out.append({"shot": s["id"], "text": f"the shot failed: {s['error']}; --resume shoots it again"})
        if s["kept"] is None:
            if s["error"]:
                continue
            out.append(
                {
                    "shot": s["id"],
                    "text": "no take produced an image: missing from the cut; re-shoot it (redo) or drop it",
                }
            )
            continue
        kept = next(t for t in s["takes"] if t["kept"])
        if s["flagged"]:
            why = "; ".join(kept["issues"]) or "the kept take is not grade A"
            out.append(
                {"shot": s["id"], "text": f"take {kept['n']} (grade {kept['grade']}) kept with: {why}"}
            )
        if s["clip"] and s["clip"]["failed"]:
            out.append({"shot": s["id"], "text": f"the clip failed its check: {s['clip']['verdict']}"})
        for v in s["variants"]:
            if v["error"] or v["grade"] == "C":
                why = v["error"] or "; ".join(v["issues"])
                out.append({"shot": s["id"], "text": f"the {v['platform']} frame needs a look: {why}"})
    return out


def _take_view(take: Take, kept: int | None, note: str | None) -> dict:
    crit = take.critique
    return {
        "n": take.n,
        "image": None if take.error else take.path,
        "kept": take.n == kept,
        "note": note,
        "grade": crit.grade if crit else None,
        "backend": take.backend,
        "model": take.model,
        "seed": take.seed,
        "repair": take.repair.reason if take.repair else None,
        "references": take.parameters.get("references") or [],
        "error": take.error,
        "cost": cost_line([take.timings]),
        "issues": [f"{i.category}: {i.reason}" for i in crit.issues] if crit else [],
        "critics": [_critic_view(c) for c in crit.critics] if crit else [],
    }


def _critic_view(c) -> dict:
    return {
        "name": c.name,
        "ran": c.ran,
        "passed": c.passed,
        "reason": c.not_run_reason or "",
        "scores": sorted((k, _number(v)) for k, v in c.scores.items()),
    }


def _number(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def _variant_view(v) -> dict:
    crit = v.critique
    return {
        "platform": v.platform, "width": v.width, "height": v.height, "mode": v.mode, "error": v.error,
        "path": None if v.error else v.path, "grade": crit.grade if crit else None,
        "issues": [f"{i.category}: {i.reason}" for i in crit.issues] if crit else [],
    }  # fmt: skip


def _clip_view(result: ShotResult | None) -> dict | None:
    if not result or not result.clip:
        return None
    c = result.clip.critique
    if c is None:
        return {"path": result.clip.path, "verdict": "not checked", "failed": False, "scores": []}
    issues = "; ".join(i.reason for i in c.issues)
    return {
        "path": result.clip.path,
        "verdict": f"grade {c.grade}" + (f" ({issues})" if issues else ""),
        "failed": not c.passed,
        "scores": sorted((k, _number(v)) for k, v in c.scores.items()),
    }
