"""Judging an LLM storyboard by meaning, and mending what rules can mend (tools/plan_llm.py asks for the rest).

    review(planned, context)            -> Review: problems of the storyboard as a whole, and of single shots
    mend(planned, context, offline)     -> (planned, notes): what the director's own rules fix, one note each

What the rules fix, so the model is not asked again for it (a small local model asked again mostly repeats
itself): a shot count close to the one asked (the missing beat added from the offline planner, or the shortest
neighbouring pair merged); a price or on-screen text that is not the brief's (the brief's own price put back, or
the text dropped); a speaker in a brief without dialogue; a camera that names no framing ('lens'); a description
that speaks about the film, is the copy or repeats an earlier shot's (that shot's outline beat, or the offline
planner's beat for its place); the same subtitle on several shots (kept on the last); and an
image prompt that is the copy, the brief's own sentences, rule words ("subject, setting, framing, lens, lighting,
mood"), too short or the same on three shots or more, rebuilt from the shot's own description, camera, lighting and
mood. What they cannot fix is asked again: for a few shots (a subtitle in the wrong language, about the
deliverable or a stage direction; a prompt not in English; two shots alike), those shots alone; when most shots
are wrong, a dialogue line is missing or the count is far off, the whole storyboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.brief import CJK, LATIN, PRICE, detect_lang, is_meta_sentence
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
LATIN_OR_CJK_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|[\u3400-\u9fff]")  # a CJK character counts as a word


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
    copy: list[str] = field(default_factory=list)  # the brief's slogans, call to action and claims
    outline: list[str] = field(default_factory=list)  # the model's outline, one line per shot (short calls)
    has_dialogue: bool = False  # the brief has dialogue lines (kept when a batch is judged without them)
    # Short calls: a subtitle the model got wrong takes the offline planner's copy for its place rather than
    # a whole batch asked again.
    subtitles_by_rule: bool = False
    # The model's last word on the storyboard: repeated descriptions take beats however many there are, rather
    # than the storyboard being asked again whole.
    fill_repeats: bool = False

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


def same_key(text: str) -> str:
    """What two descriptions or prompts are compared by: their words without case, punctuation or articles
    ('The commuter on a train' is 'A commuter on the train')."""
    return " ".join(w for w in _WORD.findall(text.casefold()) if w not in _FILLER)


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
            key = same_key(getattr(shot, name))
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
    if ctx.subtitles_by_rule:
        shots = _mend_subtitles(shots, ctx, offline, notes)
    shots = _mend_kinds(shots, offline, notes)
    shots = _mend_descriptions(shots, ctx, offline, notes)
    shots = _mend_repeats(shots, ctx, notes)
    shots = _mend_prompts(shots, ctx, offline, notes)
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
    if expect is not None and not expect.strip():
        update["expect_text"] = None
    elif expect and not in_brief(expect, ctx.brief):
        update["expect_text"] = None
        notes.append(f"shot {i + 1}: on-screen text {expect!r} is not in the brief; not asked for")
    if shot.speaker and not ctx.has_dialogue:
        # Nobody speaks in a brief without dialogue: a named speaker would voice the copy as a character.
        update["speaker"] = None
        notes.append(f"shot {i + 1}: speaker {shot.speaker[:40]!r} dropped; the brief has no dialogue")
    if _placeholder(shot.camera) or _only_format(shot.camera) or _no_camera_words(shot.camera):
        camera = offline().shots[min(i, len(offline().shots) - 1)].camera
        update["camera"] = camera
        notes.append(
            f"shot {i + 1}: camera {shot.camera[:40]!r} names no framing; the shot grammar's {camera!r}"
        )
    if _only_format(shot.lighting) or _norm(shot.lighting) in _NONE:
        lighting = offline().shots[min(i, len(offline().shots) - 1)].lighting
        update["lighting"] = lighting
        notes.append(
            f"shot {i + 1}: lighting {shot.lighting[:40]!r} names no light; the scene's {lighting!r}"
        )
    return shot.model_copy(update=update) if update else shot


_NONE = frozenset("无 没有 none no na n/a null nil 暂无".replace("/", "").split())
_FORMAT = re.compile(
    r"\d+\s*[x×*]\s*\d+|\d+|[()（）]|[横竖]屏?|horizontal|vertical|landscape|portrait", re.IGNORECASE
)


def _no_camera_words(text: str) -> bool:
    """A camera that names no shot size, lens or movement ('stirred'): not a direction a camera can take."""
    words = LATIN_OR_CJK_WORD.findall(text.casefold())
    return bool(words) and not CJK.search(text) and not any(w in _CAMERA or w in _SIZES for w in words)


def _only_format(text: str) -> bool:
    """A field that names only the frame's size or orientation ('1280x720 (横)'), or nothing."""
    return not _FORMAT.sub("", text).strip(" ,，、.;:-")


def with_offline_subtitle(shot, offline_shot):
    """The model's shot with the offline planner's copy (subtitle and speaker) for its place."""
    return shot.model_copy(update={"subtitle": offline_shot.subtitle, "speaker": offline_shot.speaker})


def _mend_subtitles(shots: list, ctx: PlanContext, offline, notes: list[str]) -> list:
    out = []
    for i, shot in enumerate(shots):
        wrong = [p for p in shot_problems(shot, ctx) if p.startswith("subtitle ")]
        if wrong:
            board = offline()
            shot = with_offline_subtitle(shot, board.shots[min(i, len(board.shots) - 1)])
            notes.append(
                f"shot {i + 1}: {wrong[0]}; took the offline planner's copy ({shot.subtitle[:40]!r})"
            )
        out.append(shot)
    return out


def _mend_kinds(shots: list, offline, notes: list[str]) -> list:
    """A shot size repeated back to back ('establishing' on every shot) takes the shot grammar's for its place."""
    out = list(shots)
    for i in range(1, len(out)):
        if out[i].kind == out[i - 1].kind:
            board = offline()
            kind = board.shots[min(i, len(board.shots) - 1)].kind
            nxt = out[i + 1].kind if i + 1 < len(out) else None
            if kind not in (out[i - 1].kind, nxt):
                notes.append(
                    f"shot {i + 1}: kind {out[i].kind!r} repeats the shot before; the shot grammar's {kind!r}"
                )
                out[i] = out[i].model_copy(update={"kind": kind})
    return out


def _placeholder(text: str) -> bool:
    """A field that only names rule words or shot sizes ('lens', 'framing', 'wide, medium, close-up')."""
    words = [w for w in _WORD.findall(text.casefold()) if w not in _FILLER]
    return all(w in RULE_WORDS or w in _SIZES for w in words)


_SIZES = frozenset(
    "establishing wide medium close-up closeup insert hero detail over-the-shoulder movement motion that "
    "its angle".split()
)
# Words of a camera direction: a prompt made only of them ('Close-up, 85mm, slow push-in') shows no subject.
_CAMERA = frozenset(
    "slow fast gentle push-in push pull-out pull pan left right tilt up down dolly handheld static locked-off "
    "drift tracking zoom orbit crane mm lens high low eye level angle shallow depth field macro".split()
)
_LABEL = re.compile(r"^\s*[\w\s-]{1,24}[:：]\s*")  # "Slogan: ...", "口号：..."


def _weak_description(text: str, ctx: PlanContext) -> str | None:
    """Why a description shows nothing, or None."""
    if len(LATIN_OR_CJK_WORD.findall(text)) < 3:
        return "says almost nothing"
    if is_meta_sentence(text) or META_IN_SUBTITLE.search(text) or any(m and m in text for m in ctx.meta):
        return "speaks about the film, not what it shows"
    if is_rule_words(text):
        return "only restates the rules"
    if same_key(_LABEL.sub("", text)) in {same_key(c) for c in ctx.copy} or _COPY_LABEL.match(text):
        return "is the brief's copy, not a picture"
    if _echoes_the_prompt(text, ctx):
        return "restates the planner's instructions"
    return None


# A line the model labelled as copy ("Claim: cold for 24 hours", "字幕：今天，慢一点") is copy, not a picture.
_COPY_LABEL = re.compile(
    r"^\s*(?:slogan|claim|price|cta|call to action|super|subtitle|caption|tagline|on-screen text|"
    r"字幕|口号|价格|标语|文案|广告语)\s*[:：]",
    re.IGNORECASE,
)
# Chinese words about making the advert (its wording, font, concision), never what a shot shows.
_ZH_ABOUT_THE_AD = re.compile(r"广告(?:内容|语言|语)|字体|简洁|明了")


def _prompt_words() -> frozenset[str]:
    """The words of the planner prompts' own instructions (prompts/planner_*.j2, template tags left out)."""
    from tools.templates import PROMPTS_DIR

    text = " ".join(p.read_text() for p in sorted(PROMPTS_DIR.glob("planner_*.j2")))
    text = re.sub(r"\{[{%#].*?[}%#]\}", " ", text, flags=re.DOTALL)
    return frozenset(_stem(w) for w in _WORD.findall(text.casefold()))


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


_PROMPT_WORDS: list[frozenset[str]] = []


def _echoes_the_prompt(text: str, ctx: PlanContext) -> bool:
    """Text made of the planner prompts' instruction words ('The first shot establishes the place; the last closes
    the film', 'Close the film on the product.'), or Chinese about the advert's wording."""
    if _ZH_ABOUT_THE_AD.search(text):
        return True
    if not _PROMPT_WORDS:
        _PROMPT_WORDS.append(_prompt_words())
    words = [_stem(w) for w in _WORD.findall(text.casefold()) if w not in _FILLER]
    ruled = [w for w in words if w in _PROMPT_WORDS[0]]
    return len(words) >= 3 and len(ruled) >= 0.75 * len(words)


def weak_description(text: str, ctx: PlanContext) -> str | None:
    """Why a description or beat shows no picture (about the film, copy, the planner's instructions), or None."""
    return _weak_description(text, ctx)


def _mend_descriptions(shots: list, ctx: PlanContext, offline, notes: list[str]) -> list:
    """A description that shows nothing (the brief's words about the film, its copy, rule words), or repeats an
    earlier shot's, takes that shot's outline beat or the offline planner's beat for its place; the first shot of
    a set alike keeps the model's. A prompt that showed the replaced description is rebuilt (`_mend_prompts`)."""
    seen: set[str] = set()
    weak: dict[int, str] = {}
    repeated: dict[int, str] = {}
    for i, shot in enumerate(shots):
        key = same_key(shot.description)
        if why := _weak_description(shot.description, ctx):
            weak[i] = why
        elif key in seen:
            repeated[i] = "repeats an earlier shot's"
        seen.add(key)
    if not ctx.outline and not ctx.fill_repeats and len(repeated) > len(shots) / 2:
        repeated = {}  # the model gave no beats: asked again whole while there is time (tools/plan_llm.py)
    shots = list(shots)
    # A beat that is a shot's subtitle is the model's copy, not a picture.
    copy = {same_key(s.subtitle) for s in shots if s.subtitle.strip()}
    for i, why in sorted((weak | repeated).items()):
        for source, beat in beats_for(i, ctx, offline):
            key = same_key(beat)
            if beat and key not in seen and key not in copy and not _weak_description(beat, ctx):
                seen.add(same_key(beat))
                old = same_key(shots[i].description)
                shots[i] = shots[i].model_copy(update={"description": beat})
                notes.append(f"shot {i + 1}: the description {why}; took {source} ({beat[:60]!r})")
                if old and old in same_key(shots[i].prompt):
                    # The prompt was written for the description the shot no longer has.
                    prompt, built = prompt_and_source(i, shots[i], ctx, offline)
                    shots[i] = shots[i].model_copy(update={"prompt": prompt})
                    why = "the prompt showed the description it no longer has"
                    notes.append(f"shot {i + 1}: {why}; rebuilt from {built}")
                break
    return shots


def wants_beats(planned, ctx: PlanContext) -> bool:
    """The model gave the film too few beats of its own: two shots or more repeat an earlier shot's description
    (one such shot, or ones whose description shows nothing, take their outline or offline beat without asking)."""
    keys = [same_key(s.description) for s in planned.shots]
    return len(keys) - len(set(keys)) >= 2


def beats_for(i: int, ctx: PlanContext, offline):
    """Beats for shot i, best first: its outline beat, the offline planner's beat for its place, then the offline
    planner's beats of the nearest other places (where the model put this place's beat on another shot)."""
    if i < len(ctx.outline):
        yield "the outline's beat", ctx.outline[i]
    board = offline()
    place = min(i, len(board.shots) - 1)
    for j in sorted(range(len(board.shots)), key=lambda j: (abs(j - place), j)):
        yield "the offline planner's beat", board.shots[j].description


def _weak_prompt(prompt: str, ctx: PlanContext, subtitles: set[str]) -> str | None:
    """Why an image prompt describes no picture, or None."""
    key = _norm(prompt)
    if is_rule_words(prompt):
        return "only restated the rules"
    if len(LATIN_OR_CJK_WORD.findall(prompt)) < 4:
        return "is too short to describe a picture"
    if all(
        w in _CAMERA or w in _SIZES or w in RULE_WORDS for w in LATIN_OR_CJK_WORD.findall(prompt.casefold())
    ):
        return "names only the camera, not what the shot shows"
    if key in subtitles or any(key == _norm(c) for c in ctx.copy) or key in _norm(ctx.brief):
        return "is the brief's copy, not a picture"
    if META_IN_SUBTITLE.search(prompt) or any(m and m in prompt for m in ctx.meta):
        return "speaks about the film (its length or platform)"
    return None


def _mend_prompts(shots: list, ctx: PlanContext, offline, notes: list[str]) -> list:
    """A prompt that is the copy, rule words, the brief's own sentences, only the camera, or the same on three
    shots or more is rebuilt from that shot's own description, camera, lighting and mood (prompts/shot_prompt.j2)."""
    keys = [same_key(s.prompt) for s in shots]
    subtitles = {_norm(s.subtitle) for s in shots if s.subtitle.strip()}
    out = []
    for i, shot in enumerate(shots):
        why = _weak_prompt(shot.prompt, ctx, subtitles) if shot.prompt.strip() else None
        if why is None and keys[i] and keys.count(keys[i]) > 2:
            # One prompt on most of the film is no shot's own; a pair alike is the model's to write again (either
            # one may be the copy).
            why = f"was the same on {keys.count(keys[i])} shots"
        if why is None or (detect_lang(shot.prompt) == "zh" and why.startswith("was the same")):
            # A Chinese prompt is the model's to write again in English (review asks for it).
            out.append(shot)
            continue
        prompt, source = prompt_and_source(i, shot, ctx, offline)
        out.append(shot.model_copy(update={"prompt": prompt}))
        notes.append(f"shot {i + 1}: the prompt {why}; rebuilt from {source}")
    return out


def _mend_repeats(shots: list, ctx: PlanContext, notes: list[str]) -> list:
    """Copy is said once: the same subtitle on several shots stays on the last of them (the end card carries the
    copy); a subtitle or on-screen text that is a shot's description (what it shows, not copy) is left out."""
    shown = {same_key(s.description) for s in shots}
    out = list(shots)
    for name, label in (("subtitle", "subtitle"), ("expect_text", "on-screen text")):
        values = [(getattr(s, name) or "").strip() for s in out]
        last = {same_key(v): i for i, v in enumerate(values) if v}
        for i, value in enumerate(values):
            if not value:
                continue
            update = {name: "" if name == "subtitle" else None} | (
                {"speaker": None} if name == "subtitle" else {}
            )
            # A stage direction as subtitle is the model's to fix (review says so): it may have left the copy out.
            direction = any(d and d in value for d in ctx.directions)
            if same_key(value) in shown and not direction:
                out[i] = out[i].model_copy(update=update)
                notes.append(
                    f"shot {i + 1}: {label} {value[:50]!r} describes a shot, it is not copy; left out"
                )
            elif name == "subtitle" and last[same_key(value)] != i:
                out[i] = out[i].model_copy(update=update)
                notes.append(
                    f"shot {i + 1}: {label} said again on shot {last[same_key(value)] + 1}; left out here"
                )
    return out


def _english_subject(i: int, shot, ctx: PlanContext) -> str:
    """What shot i shows, in English, from the model's own words: its description, else its outline beat."""
    for text in (shot.description, ctx.outline[i] if i < len(ctx.outline) else ""):
        if text.strip() and not is_rule_words(text) and detect_lang(text) == "en":
            return text
    return ""


def prompt_and_source(i: int, shot, ctx: PlanContext, offline) -> tuple[str, str]:
    """The image prompt of shot i built from its own description (or, where that is not English, its English
    outline beat), camera, lighting and mood. Without English words for the picture, a Chinese description is
    the subject of the English frame, as the offline planner writes Chinese briefs' prompts; the offline planner's
    prompt only where the model gave no usable words at all. The second value names the source, for the note."""
    beat = ctx.outline[i] if i < len(ctx.outline) else ""
    candidates = [
        (_english_subject(i, shot, ctx), None),
        (shot.description, "the shot's fields"),
        (beat, "the outline's beat and the shot's fields"),
    ]
    for subject, source in candidates:
        if not subject.strip() or is_rule_words(subject) or _weak_description(subject, ctx):
            continue
        source = source or (
            "the shot's fields" if subject == shot.description else "the outline's beat and the shot's fields"
        )
        prompt = render_line(
            "shot_prompt.j2",
            framing=shot.kind.replace("-", " ").capitalize(),
            subject=subject.rstrip(". 。"),
            setting="",
            product="",
            camera=shot.camera,
            lighting=shot.lighting,
            mood=shot.mood,
            expect_text=shot.expect_text or "",
            style=ctx.style,
            orientation=ctx.orientation,
        )
        if detect_lang(prompt) == "en":
            return prompt, source
    board = offline()
    return board.shots[min(i, len(board.shots) - 1)].prompt, "the offline planner's prompt"


_REBUILT = re.compile(
    r"^shot (\d+): (?:the )?(description|prompt)\b.*; (?:took|rebuilt from) (.+?)(?: \(.*)?$"
)


def rebuilt_by_rule(notes: list[str]) -> dict[str, dict[str, int]]:
    """How many shots had their description or prompt rebuilt by rule, by source, read from the planner's notes
    (the last note of a shot's field wins): {"description": {"the outline's beat": 2}, "prompt": {...},
    "outline": {...}} ("outline": beats of the short calls' outline that are the offline planner's)."""
    last: dict[tuple[str, int], str] = {}
    for note in notes:
        if m := re.match(r"outline beat (\d+) .*; took (.+?) \(", note):
            last[("outline", int(m.group(1)))] = m.group(2)
        elif m := _REBUILT.match(note):
            last[(m.group(2), int(m.group(1)))] = m.group(3)
    out: dict[str, dict[str, int]] = {"description": {}, "prompt": {}, "outline": {}}
    for (field_name, _), source in last.items():
        out[field_name][source] = out[field_name].get(source, 0) + 1
    return out


def replace_shots(planned, indices: list[int], new: list):
    shots = list(planned.shots)
    for i, shot in zip(indices, new, strict=True):
        shots[i] = shot
    return planned.model_copy(update={"shots": shots})
