"""Judging an LLM storyboard by meaning, and mending what rules can mend (tools/plan_llm.py asks for the rest).

    review(planned, context)            -> Review: problems of the storyboard as a whole, and of single shots
    mend(planned, context, offline)     -> (planned, notes): what the director's own rules fix

What the rules fix, so the model is not asked again for it: a shot count close to the one asked (the missing beat
added from the offline planner, or the shortest neighbouring pair merged), a price or on-screen text that is not the
brief's (the brief's own price put back, or the text dropped), and an image prompt that only restates the rules
("subject, setting, framing, lens, lighting, mood"), rebuilt from the shot's own fields. What they cannot fix is
asked again: for a few shots (a subtitle in the wrong language, about the deliverable or a stage direction; a prompt
not in English; two shots alike), those shots alone; when most shots are wrong, a dialogue line is missing or the
count is far off, the whole storyboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.brief import CJK, LATIN, PRICE, detect_lang
from tools.film import Shot, Storyboard
from tools.templates import render_line

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}
# Words about the deliverable that never belong in a subtitle.
META_IN_SUBTITLE = re.compile(
    r"\b\d+\s*-?\s*(?:seconds?|secs?)\b|\b(?:instagram|tiktok|douyin|xiaohongshu|youtube)\b|\d+\s*秒|抖音|小红书|竖屏|横屏",
    re.IGNORECASE,
)
# The words of the planner's own rule for a prompt; a prompt made mostly of them describes nothing.
RULE_WORDS = frozenset(
    "subject setting framing lens lighting mood style detailed image prompt english text-to-image model "
    "camera composition shot description".split()
)
_FILLER = frozenset("a an the and of for in with on to".split())
_WORD = re.compile(r"[\w-]+", re.UNICODE)


@dataclass
class PlanContext:
    """What an answer is held to: the count and language asked, and the brief's own words."""

    shots: int
    lang: str
    brief: str
    dialogue: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    style: str = ""
    orientation: str = "Horizontal"

    def close(self, got: int) -> bool:
        """A count the rules may fix: within a quarter of the asked count (at least one shot either way)."""
        return 0 < got and abs(got - self.shots) <= max(1, self.shots // 4)


@dataclass
class Review:
    whole: list[str] = field(default_factory=list)  # asked again as a whole storyboard
    shots: dict[int, list[str]] = field(default_factory=dict)  # 0-based shot -> problems, asked again alone

    def add(self, index: int, problem: str) -> None:
        self.shots.setdefault(index, []).append(f"shot {index + 1}: {problem}")

    def problems(self) -> list[str]:
        return self.whole + [p for i in sorted(self.shots) for p in self.shots[i]]

    def needs_whole(self, n: int) -> bool:
        """Asked again whole: a whole-board problem, or more than half of the shots wrong."""
        return bool(self.whole) or len(self.shots) > n / 2


def _has_letters(text: str) -> bool:
    return bool(LATIN.search(text) or CJK.search(text))


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def in_brief(text: str, brief: str) -> bool:
    """Every piece of `text` (split at spaces and separators) is in the brief, ignoring case and punctuation."""
    pieces = [_norm(p) for p in re.split(r"[\s|｜/·,，、]+", text)]
    normal = _norm(brief)
    return all(p in normal for p in pieces if p)


def prices(text: str) -> list[str]:
    return [m.group(0).strip() for m in PRICE.finditer(text or "")]


def is_rule_words(prompt: str) -> bool:
    """A prompt that only restates the rule words ("subject, setting, framing, lens, lighting, mood")."""
    words = [w for w in _WORD.findall(prompt.casefold()) if w not in _FILLER]
    ruled = [w for w in words if w in RULE_WORDS]
    return not words or (len(ruled) >= 3 and len(ruled) >= 0.6 * len(words))


def review(planned, ctx: PlanContext) -> Review:
    """Every problem of the answer that the rules in `mend` do not fix."""
    r = Review()
    if len(planned.shots) != ctx.shots:
        r.whole.append(f"expected exactly {ctx.shots} shots, got {len(planned.shots)}")
    for i, shot in enumerate(planned.shots):
        for problem in shot_problems(shot, ctx):
            r.add(i, problem)
    for name in ("description", "prompt"):
        seen: dict[str, int] = {}
        for i, shot in enumerate(planned.shots):
            key = _norm(getattr(shot, name))
            if key and key in seen:
                # Either one may be the copy, so both are written again.
                first = seen[key]
                r.add(first, f"has the same {name} as shot {i + 1}; every shot must differ")
                r.add(i, f"has the same {name} as shot {first + 1}: {getattr(shot, name)[:80]!r}")
            seen.setdefault(key, i)
    said = " ".join(s.subtitle for s in planned.shots) + " " + " ".join(planned.notes)
    if missing := [line for line in ctx.dialogue if line not in said]:
        r.whole.append(
            f"dialogue line {missing[0]!r} is in no subtitle; say every line whole, or name it in notes"
        )
    return r


def shot_problems(shot, ctx: PlanContext) -> list[str]:
    out = []
    subtitle = shot.subtitle.strip()
    if subtitle and detect_lang(subtitle) != ctx.lang and _has_letters(subtitle):
        out.append(f"subtitle {subtitle!r} is not in {LANGUAGE_NAMES[ctx.lang]}")
    if META_IN_SUBTITLE.search(subtitle) or any(m and m in subtitle for m in ctx.meta):
        out.append(f"subtitle {subtitle!r} speaks about the deliverable; subtitles are copy")
    if any(d and d in subtitle for d in ctx.directions):
        out.append(f"subtitle {subtitle!r} is a stage direction; subtitles are copy")
    if not shot.prompt.strip():
        out.append("prompt is empty")
    elif detect_lang(shot.prompt) == "zh":
        out.append("prompt is in Chinese; write every image prompt in English")
    for where in ("subtitle", "prompt"):
        if wrong := [p for p in prices(getattr(shot, where)) if not in_brief(p, ctx.brief)]:
            out.append(f"{where} names the price {wrong[0]!r}, which is not in the brief")
    return out


# --------------------------------------------------------------------------------------------------------------
# Rules


def mend(planned, ctx: PlanContext, offline: Callable[[], Storyboard]) -> tuple[object, list[str]]:
    """The answer with what rules can fix fixed (count close to the asked one, copy, rule-word prompts), and one
    note per fix. `offline()` gives the offline planner's storyboard of the same brief (made only when needed)."""
    notes: list[str] = []
    shots = list(planned.shots)
    if len(shots) != ctx.shots and ctx.close(len(shots)):
        shots = _fit_count(shots, ctx, offline, notes)
    brief_prices = list(dict.fromkeys(prices(ctx.brief)))
    shots = [_mend_shot(i, s, ctx, brief_prices, offline, notes) for i, s in enumerate(shots)]
    return planned.model_copy(update={"shots": shots}), notes


def _fit_count(shots: list, ctx: PlanContext, offline, notes: list[str]) -> list:
    got = len(shots)
    while len(shots) > ctx.shots:
        # Merge the shortest neighbouring pair: the smallest change to the film's rhythm.
        j = min(range(len(shots) - 1), key=lambda k: shots[k].duration + shots[k + 1].duration)
        a, b = shots[j], shots[j + 1]
        subtitle = " ".join(t for t in (a.subtitle.strip(), b.subtitle.strip()) if t)
        shots[j : j + 2] = [a.model_copy(update={"duration": a.duration + b.duration, "subtitle": subtitle})]
        notes.append(f"the planning model gave {got} shots for {ctx.shots}: merged shots {j + 1} and {j + 2}")
    if len(shots) < ctx.shots:
        board = offline()
        while len(shots) < ctx.shots:
            # The offline beat least like any shot the model wrote is the one it left out.
            j = min(range(len(board.shots)), key=lambda k: _likeness(board.shots[k], shots))
            beat = board.shots[j]
            duration = sum(s.duration for s in shots) / max(1, len(shots))
            shots.insert(min(j, len(shots)), _planned_from(beat, shots[0], duration))
            notes.append(
                f"the planning model gave {got} shots for {ctx.shots}: added the offline planner's shot "
                f"{j + 1} ({beat.description[:60]})"
            )
    return shots


def _likeness(shot: Shot, shots: list) -> float:
    words = set(_WORD.findall(f"{shot.description} {shot.subtitle}".casefold()))
    best = 0.0
    for s in shots:
        other = set(_WORD.findall(f"{s.description} {s.subtitle}".casefold()))
        if words | other:
            best = max(best, len(words & other) / len(words | other))
    return best


def _planned_from(shot: Shot, like, duration: float):
    """An offline Shot as the planner model's shot class (`like` is any shot of that class)."""
    values = {name: getattr(shot, name) for name in type(like).model_fields if hasattr(shot, name)}
    return type(like).model_validate(values | {"duration": duration})


def _mend_shot(i: int, shot, ctx: PlanContext, brief_prices: list[str], offline, notes: list[str]):
    update: dict = {}
    for name in ("subtitle", "prompt", "expect_text"):
        text = getattr(shot, name) or ""
        wrong = [p for p in prices(text) if not in_brief(p, ctx.brief)]
        if wrong and len(brief_prices) == 1:
            for price in wrong:
                text = text.replace(price, brief_prices[0])
            update[name] = text
            notes.append(f"shot {i + 1}: {name} named {wrong[0]}; the brief's price is {brief_prices[0]}")
    expect = update.get("expect_text", shot.expect_text)
    if expect and not in_brief(expect, ctx.brief):
        update["expect_text"] = None
        notes.append(f"shot {i + 1}: on-screen text {expect!r} is not in the brief; not asked for")
    if is_rule_words(shot.prompt):
        update["prompt"] = _prompt_from_fields(i, shot.model_copy(update=update), ctx, offline)
        notes.append(f"shot {i + 1}: the prompt only restated the rules; rebuilt from the shot's fields")
    return shot.model_copy(update=update) if update else shot


def _prompt_from_fields(i: int, shot, ctx: PlanContext, offline) -> str:
    if is_rule_words(shot.description) or detect_lang(shot.description) != "en":
        board = offline()
        return board.shots[min(i, len(board.shots) - 1)].prompt
    return render_line(
        "shot_prompt.j2",
        framing=shot.kind.replace("-", " ").capitalize(),
        subject=shot.description.rstrip(". "),
        setting="",
        product="",
        camera=shot.camera,
        lighting=shot.lighting,
        mood=shot.mood,
        expect_text=shot.expect_text or "",
        style=ctx.style,
        orientation=ctx.orientation,
    )


def replace_shots(planned, indices: list[int], new: list):
    shots = list(planned.shots)
    for i, shot in zip(indices, new, strict=True):
        shots[i] = shot
    return planned.model_copy(update={"shots": shots})
