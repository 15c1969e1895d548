"""Editing shots by the offline planner's rules: a changed shot gets its camera and image prompt written again.

The grammar (framing per shot size, motion words, looks) is the planner's own, from tools/shot_grammar.py; the prompt is
the planner's template (prompts/shot_prompt.j2). What a person set explicitly (a prompt, a camera) wins.
"""

from __future__ import annotations

import re

from tools import beats, shot_grammar
from tools.critics.ocr import requested_text
from tools.film import Shot, ShotKind, Storyboard
from tools.templates import render_line

# Settings that belong to the film (not the machine): saved with every storyboard version so undo restores them.
FILM_FIELDS = ("platform", "platforms", "width", "height", "duration", "shots", "style", "lang", "reference")
# Fields whose change means the image prompt no longer says what the shot shows.
PROMPT_FIELDS = ("kind", "description", "camera", "lighting", "mood", "expect_text", "motion")
DAYLIGHT = (("day", "daytime", "noon", "白天", "日景", "中午"), "bright natural daylight", "clear, open")
# The planner's prompt opens "<Framing>: <subject>[, setting][, featuring product]. Camera: ..."
_SUBJECT = re.compile(r"^[^:]{1,80}:\s*(.+?)\.\s+Camera:", re.DOTALL)


def _matches(text: str, cues: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(re.search(rf"\b{re.escape(c)}", low) if c.isascii() else c in text for c in cues)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def look_for(words: str) -> tuple[str, str | None]:
    """(lighting, mood) for plain words such as 'night' or '黄昏', from the planner's looks; else the words."""
    for cues, lighting, mood in [*shot_grammar.LOOKS, DAYLIGHT]:
        if _matches(words, cues):
            return lighting, mood
    return words.strip(), None


def kind_for(description: str) -> ShotKind:
    for kind, cues in shot_grammar.KIND_CUES:
        if _matches(description, cues):
            return kind
    return "medium"


def camera_for(kind: str, motion: str) -> str:
    return f"{shot_grammar.FRAMING[kind]}, {shot_grammar.MOTION_WORDS.get(motion, motion)}"


def _orientation(storyboard: Storyboard) -> str:
    w, h = storyboard.width, storyboard.height
    return "vertical" if h > w * 1.05 else "horizontal" if w > h * 1.05 else "square"


def _variables(shot: Shot, subject: str, storyboard: Storyboard, product: str | None) -> dict:
    return {
        "framing": shot_grammar.FRAMING[shot.kind].split(",")[0].capitalize(),
        "subject": subject,
        "setting": ", ".join(
            p.strip().lower() for p in re.split(r"\s+[-–—]\s+", shot.scene or "") if p.strip()
        ),
        "product": product if product and product.lower() not in subject.lower() else "",
        "camera": shot.camera,
        "lighting": shot.lighting,
        "mood": shot.mood,
        "expect_text": shot.expect_text or "",
        "style": storyboard.style,
        "orientation": _orientation(storyboard).capitalize(),
        "kind": shot.kind,
    }


def rewrite_prompt(
    shot: Shot, update: dict, storyboard: Storyboard, product: str | None, force: bool = False
) -> Shot:
    """`shot` with `update` applied; its camera follows a new kind or motion, and its prompt is written again
    when what it shows changed (or `force`: the film's style or orientation changed), unless a prompt is given."""
    update = dict(update)
    kind = update.get("kind", shot.kind)
    motion = update.get("motion", shot.motion)
    if "camera" not in update and (kind != shot.kind or motion != shot.motion):
        update["camera"] = camera_for(kind, motion)
    new = shot.model_copy(update=update)
    content = any(getattr(new, f) != getattr(shot, f) for f in PROMPT_FIELDS)
    if "prompt" in update or not (content or force):
        return new
    old_subject = _SUBJECT.match(shot.prompt)
    if new.description != shot.description:
        subject = _short(new.description, 240).rstrip(".!?。！？ ")
    elif old_subject:
        subject, product = old_subject.group(1), None  # the planner's subject, setting and product, kept
    elif force and not content:
        return new  # a prompt written by a model: not rewritten for a film-wide change
    else:
        subject = _short(new.description, 240).rstrip(".!?。！？ ")
    variables = _variables(new, subject, storyboard, product)
    return new.model_copy(
        update={
            "prompt": render_line("shot_prompt.j2", **variables),
            "negative_prompt": render_line("negative_prompt.j2", **variables),
        }
    )


def new_shot(
    description: str,
    kind: ShotKind | None,
    duration: float | None,
    storyboard: Storyboard,
    product: str | None,
    at: int,
) -> Shot:
    """A shot written from a person's description: size from its words, look from its words or its neighbour."""
    description = " ".join(description.split())
    kind = kind or kind_for(description)
    motion = shot_grammar.DEFAULT_MOTIONS[kind][0]
    neighbour = storyboard.shots[max(0, min(at, len(storyboard.shots)) - 1)]
    lighting, mood = look_for(description)
    if mood is None:  # no look named: the neighbouring shot's
        lighting, mood = neighbour.lighting, neighbour.mood
    seconds = duration or round(storyboard.duration / len(storyboard.shots), 1)
    expect = requested_text(description)
    draft = Shot(
        id="new",
        index=at + 1,
        kind=kind,
        description=description,
        camera=camera_for(kind, motion),
        lighting=lighting,
        mood=mood,
        duration=max(beats.MIN_SHOT_SECONDS, seconds),
        prompt="",
        expect_text=expect,
        motion=motion,
    )
    subject = _short(description, 240).rstrip(".!?。！？ ")
    variables = _variables(draft, subject, storyboard, product)
    return draft.model_copy(
        update={
            "prompt": render_line("shot_prompt.j2", **variables),
            "negative_prompt": render_line("negative_prompt.j2", **variables),
        }
    )


def renumber(shots: list[Shot]) -> tuple[list[Shot], dict[str, str]]:
    """Program-made ids in film order (s01, s02, ...); returns the shots and new id → old id."""
    out, was = [], {}
    for i, shot in enumerate(shots, 1):
        new_id = f"s{i:02d}"
        was[new_id] = shot.id
        out.append(shot.model_copy(update={"id": new_id, "index": i}))
    return out, was


def scale_durations(shots: list[Shot], total: float) -> list[Shot] | None:
    """Every shot's time scaled to a film of `total` seconds, or None when the shots cannot fit in it."""
    if total < beats.MIN_SHOT_SECONDS * len(shots) - 1e-9:
        return None
    seconds = beats.allocate_durations([s.duration for s in shots], total)
    return [s.model_copy(update={"duration": d}) for s, d in zip(shots, seconds, strict=True)]


def shot_line(shot: Shot) -> str:
    """One line a person reads: number, size, time, what it shows, its light, and its line."""
    line = f"{shot.index}. {shot.kind}, {shot.duration:.1f} s: {_short(shot.description, 90)}"
    line += f" | {shot.lighting}; {shot.mood}"
    if shot.subtitle:
        line += f' | "{shot.subtitle}"'
    return line
