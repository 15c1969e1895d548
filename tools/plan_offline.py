"""The deterministic offline planner: beats (tools/beats.py) fitted to the film's shots, the shot grammar
(tools/shot_grammar.py) for sizes, camera and looks, and the prompt templates in prompts/.

Subtitles are copy, never the brief: dialogue (whole, with its speaker), SUPER / on-screen lines, claims and
quotes inside a beat, and on the last shot of a product film the end card (name, slogan, price or call to
action). A shot with nothing to say has no subtitle. Same brief and config (seed included), same storyboard.
"""

from __future__ import annotations

import logging
import random
import re
from functools import lru_cache

from tools.beats import (
    Beat,
    Unit,
    allocate_durations,
    end_card_requested,
    fit_units,
    split_beats,
    total_seconds,
)
from tools.brief import (
    CJK,
    DELIVERABLE_CUES,
    TEXT_CUES,
    Subject,
    find_subject,
    find_subject_kind,
    has_cue,
    is_product_brief,
    read_brief_settings,
)
from tools.film import Brief, BriefReading, Shot, Storyboard
from tools.shot_grammar import (
    ANGLES,
    COVERAGE_CYCLE,
    COVERAGE_NOTE,
    CYCLE,
    DEFAULT_LOOK,
    DEFAULT_MOTIONS,
    END_CARD,
    END_CARD_JOIN,
    EXTERIOR_LOOK,
    FRAMING,
    INTERIOR_LOOK,
    KIND_CUES,
    KIND_NAMES,
    KIND_WEIGHTS,
    LOOKS,
    MOTION_CUES,
    MOTION_WORDS,
    OPENING,
    PRODUCT_COVERAGE,
    PRODUCT_LOOKS,
    READ_CHARS_PER_SECOND,
    SUBJECT_COVERAGE,
)  # fmt: skip
from tools.templates import render_line

log = logging.getLogger(__name__)


def _first_cue(table: list[tuple[str, tuple[str, ...]]], text: str) -> str | None:
    return next((name for name, cues in table if has_cue(text, cues)), None)


@lru_cache(maxsize=512)
def look(*texts: str) -> tuple[str, str] | None:
    """(lighting, mood) from the first text that names a look, or None."""
    for text in texts:
        for cues, lighting, mood in LOOKS:
            if text and has_cue(text, cues):
                return lighting, mood
    return None


def shorten(text: str, limit: int) -> str:
    """Cut long text at a word boundary (anywhere for Chinese) and mark the cut with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut and not CJK.search(cut[-1]):
        cut = cut.rsplit(" ", 1)[0]
    return cut.strip().rstrip(",，、:：;；—–- ") + "…"


def orientation(width: int, height: int) -> str:
    return "vertical" if height > width * 1.05 else "horizontal" if width > height * 1.05 else "square"


def setting(scene: str) -> str:
    """A slugline's words as a prompt fragment: 'COFFEE SHOP - NIGHT' -> 'coffee shop, night'."""
    return ", ".join(p.strip().lower() for p in re.split(r"\s+[-–—]\s+|\s{2,}", scene) if p.strip())


def _title(brief: Brief, reading: BriefReading, beats: list[Beat]) -> str:
    first = reading.product or (beats[0].scene or beats[0].text if beats else brief.text)
    first = first.strip(" #.。")
    first = first[:1].upper() + first[1:]
    limit = 24 if brief.lang == "zh" else 60
    if len(first) <= limit:
        return first
    cut = first[:limit]
    if brief.lang == "en" and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,，、") + "…"


def _coverage_beats(content: list[Beat], room: int, subject: str, lang: str) -> list[Beat]:
    """The brief's beats with product coverage woven in when it has fewer beats than shots."""
    extra = [
        Beat((en if lang == "en" else zh).format(subject=subject), role="product", heading=kind)
        for kind, en, zh in PRODUCT_COVERAGE[: max(0, room - len(content))]
    ]
    if not content:
        opening = Beat(OPENING[lang].format(subject=subject), role="product", heading="establishing")
        return [opening, *extra[: max(0, room - 1)]]
    out: list[Beat] = []
    for i, beat in enumerate(content):
        out.append(beat)
        take = len(extra) * (i + 1) // len(content) - len(extra) * i // len(content)
        for cover in extra[len(extra) * i // len(content) : len(extra) * i // len(content) + take]:
            out.append(Beat(cover.text, beat.scene, beat.scene_index, role="product", heading=cover.heading))
    return out


def _subject_beats(about: Subject, room: int, lang: str) -> list[Beat]:
    """A film about one thing in one place, seen from an opening view to a closing one. The brief's sentence
    that asked for the film is never a shot: only its subject and setting are used."""

    def the(words: str) -> str:
        return (
            words if lang == "zh" or re.match(r"(?:the|a|an|his|her|their|its)\s", words) else f"the {words}"
        )

    setting = the(about.setting) if about.setting else ("its surroundings" if lang == "en" else "周围的环境")
    words = {
        "subject": the(about.subject),
        "setting": setting,
        "place": f"{about.joiner or 'in'} {setting}" if about.setting else "in its surroundings",
    }
    middle = SUBJECT_COVERAGE[1:-1]
    picks = (
        [SUBJECT_COVERAGE[1]]
        if room == 1
        else [SUBJECT_COVERAGE[0], *(middle[i % len(middle)] for i in range(room - 2)), SUBJECT_COVERAGE[-1]]
    )
    beats = []
    for kind, en, zh in picks:
        text = (en if lang == "en" else zh).format(**words)
        beats.append(Beat(text[:1].upper() + text[1:], about.setting or "", role="subject", heading=kind))
    return beats


def _assign_kinds(units: list[Unit], product: bool, rng: random.Random) -> None:
    """The shot grammar: establish, vary the sizes without repeating one back to back, close the film."""
    offset = rng.randrange(len(CYCLE))
    previous = None
    for i, unit in enumerate(units):
        last = i == len(units) - 1 and len(units) >= 3
        if i == 0:
            kind = "hero" if len(units) == 1 and product else "establishing"
        elif unit.role == "end" or last:
            kind = "hero" if product else "wide"
        elif unit.scene_index != units[i - 1].scene_index:
            kind = "establishing" if unit.scene else "wide"
        elif unit.role in ("product", "subject"):
            kind = unit.kind
        elif unit.coverage:
            kind = COVERAGE_CYCLE[(unit.coverage - 1 + offset) % len(COVERAGE_CYCLE)]
        elif unit.role == "dialogue":
            kind = "over-the-shoulder" if previous == "close-up" else "close-up"
        elif unit.role == "super":
            kind = "wide" if not product else "detail"
        else:
            kind = _first_cue(KIND_CUES, unit.text) or CYCLE[(i + offset) % len(CYCLE)]
        if kind == previous and not (i == 0 or last):
            kind = next(k for k in CYCLE[(i + offset) % len(CYCLE) :] + CYCLE if k != previous)
        unit.kind = kind
        if last:
            unit.motion = "push-in" if kind == "hero" else "pull-out"
        else:
            unit.motion = _first_cue(MOTION_CUES, unit.text) or rng.choice(DEFAULT_MOTIONS[kind])
        previous = kind


def _unit_look(unit: Unit, film_look: tuple[str, str] | None) -> tuple[str, str]:
    """Lighting and mood from the beat's own words, then its scene heading, then INT./EXT., then the film."""
    found = look(unit.text, unit.scene) if unit.role not in ("product", "end") else look(unit.text)
    interior = unit.heading.upper().startswith(("INT", "I/E")) or bool(
        re.search(r"(^|\s)内($|\s)", unit.scene)
    )
    if found and interior and "interior" not in found[0]:
        found = (f"interior, {found[0]}", found[1])
    if found:
        return found
    if unit.role in ("product", "end") and unit.kind in PRODUCT_LOOKS:
        return PRODUCT_LOOKS[unit.kind]
    if interior:
        return INTERIOR_LOOK
    if unit.heading.upper().startswith("EXT"):
        return EXTERIOR_LOOK
    return film_look or DEFAULT_LOOK


def _say(lines: list[tuple[str | None, str]], lang: str) -> str:
    """The words a shot says; several speakers are each named so the lines stay attributed."""
    speakers = {who for who, _ in lines if who}
    sep = "：" if lang == "zh" else ": "
    if len(speakers) <= 1:
        return " ".join(words for _, words in lines) if lang == "en" else "".join(w for _, w in lines)
    return " / ".join(f"{who}{sep}{words}" if who else words for who, words in lines)


def _end_card(reading: BriefReading, used: set[str], lang: str) -> tuple[str, str | None, str]:
    """The end card: its subtitle, its on-image text and the line the voice-over says (product name, slogan,
    price or call to action)."""
    slogans = [s for s in reading.slogans if s not in used]
    name = reading.product if reading.product and len(reading.product) <= 40 else None
    pieces = [p.strip() for p in (name, *slogans, reading.price, reading.cta) if p and p.strip()]
    on_image = " ".join(p for p in (*slogans, reading.price) if p) or None
    return _card_line(pieces, lang), on_image, _card_spoken(pieces, reading.price, lang)


_STOPS = ".!?。！？…"


def _card_line(pieces: list[str], lang: str) -> str:
    """The card as it is read: pieces apart by a separator, except after a piece that ends its own sentence
    ('Slow mornings. Order now'), where a separator would read as a stray mark."""
    out = ""
    for piece in pieces:
        if not out:
            out = piece
        elif out[-1] in _STOPS:
            out += ("" if lang == "zh" else " ") + piece
        else:
            out += END_CARD_JOIN[lang] + piece
    return out


def _card_spoken(pieces: list[str], price: str | None, lang: str) -> str:
    """The card as a person says it: one short sentence per piece, no separators; a Chinese price is said in
    yuan ('¥899' -> '899元'), since a speech engine reads '¥' as yen or not at all."""
    said = []
    for piece in pieces:
        if lang == "zh" and piece == price and (m := re.fullmatch(r"[¥￥]\s?(\d[\d,.]*)", piece)):
            piece = f"{m.group(1)}元"
        said.append(piece if piece[-1] in _STOPS else piece + ("。" if lang == "zh" else "."))
    return ("" if lang == "zh" else " ").join(said)


def plan_offline(brief: Brief, config, notes: list[str] | None = None) -> Storyboard:
    """The deterministic planner: same brief and config (seed included), same storyboard."""
    rng = random.Random(config.seed)
    n = config.shot_count()
    total = total_seconds(config.film_seconds(), n)
    lang = brief.lang
    reading = brief.reading or read_brief_settings(brief.text)
    board_notes: list[str] = []
    if config.lang and config.lang != brief.lang:
        board_notes.append(
            f"subtitles stay in {brief.lang}, the brief's language: the offline planner does not translate; "
            f"use --planner llm to have them written in {config.lang}"
        )
    product = is_product_brief(brief.text)
    subject = reading.product or ("the product" if lang == "en" else "产品")
    if lang == "en" and subject[:1].islower() and not subject.startswith(("the ", "a ", "an ")):
        subject = f"the {subject}"
    beats = split_beats(brief.text)
    end_unit = _end_unit(beats, brief.text, n, product)  # takes the closing beat when it asks for the card
    m = n - (1 if end_unit else 0)
    units = fit_units(_content_beats(brief, beats, m, subject, product), m)
    for unit in units:
        if unit.role in ("product", "subject"):
            unit.kind = unit.heading
            unit.heading = unit.scene if unit.role == "subject" else ""
    _place_claims(units, reading.claims, board_notes)
    if end_unit:
        units.append(end_unit)
    _assign_kinds(units, product, rng)
    durations = _durations(units, total, lang)
    film_look = look(" ".join(b.text for b in beats if not has_cue(b.text, DELIVERABLE_CUES)))
    used = {w for u in units for _, w in u.lines}
    shots: list[Shot] = []
    seen_descriptions: set[str] = set()
    seen_prompts: set[str] = set()
    for i, (unit, seconds) in enumerate(zip(units, durations, strict=True), start=1):
        shot = _shot(i, unit, seconds, lang, reading, subject, product, film_look, used, config, board_notes)
        shot = _distinct(shot, unit, i, lang, seen_descriptions, seen_prompts, config, subject, product)
        shots.append(shot)
    for note in board_notes:
        log.warning(note)
        if notes is not None:
            notes.append(note)
    return Storyboard(
        title=_title(brief, reading, beats),
        lang=lang,
        style=config.style,
        width=config.width,
        height=config.height,
        planner="offline",
        shots=shots,
        notes=board_notes,
    )


def _end_unit(beats: list[Beat], text: str, n: int, product: bool) -> Unit | None:
    """The end card of a product film, or of a brief that asks to end on its copy; None for other films."""
    if n < 2 or not (product or end_card_requested(text)):
        return None
    # A closing sentence that asks for the end card ("End on the mug on a windowsill, slogan …") is it.
    end_text = ""
    if beats and beats[-1].role == "action" and has_cue(beats[-1].text, TEXT_CUES + ("end on", "最后")):
        end_text = beats.pop().text
    last = beats[-1] if beats else None
    return Unit(end_text, last.scene if last else "", last.scene_index if last else 0, role="end",
                heading=last.heading if last else "")  # fmt: skip


def _content_beats(brief: Brief, beats: list[Beat], room: int, subject: str, product: bool) -> list[Beat]:
    """What the shots before the end card cover: the brief's beats, with coverage woven in for a product film;
    a film about one thing in one place ("a paper boat on a rainy street") is that thing, seen in its setting."""
    about = None if product else find_subject(brief.text)
    if about and about.setting:
        # "… on a rainy street": the setting is where every beat without a scene heading happens.
        for beat in beats:
            beat.scene = beat.scene or about.setting
    if about and (not beats or (len(beats) == 1 and beats[0].text.strip(" .。") in about.phrase)):
        return _subject_beats(about, room, brief.lang)
    if product:
        return _coverage_beats(beats, room, subject, brief.lang)
    return beats or [Beat(brief.text.split("\n")[0], role="action")]


def _place_claims(units: list[Unit], claims: list[str], notes: list[str]) -> None:
    """Claims the brief gives on their own ("Charges in 3 hours.") are said on a shot that has nothing to say."""
    said = {w for u in units for _, w in u.lines}
    for claim in (c for c in claims if not any(c in w or w in c for w in said)):
        free = [u for u in units if not u.lines and u.role in ("product", "action")]
        if free := sorted(free, key=lambda u: u.role != "product")[:1]:
            free[0].lines = [(None, claim)]
        else:
            notes.append(f"claim not shown, no shot free for it: {claim!r}")


def _durations(units: list[Unit], total: float, lang: str) -> list[float]:
    """Seconds per shot: by the grammar's weight of its size, and longer for a shot with more to read."""
    weights = []
    for unit in units:
        said = sum(len(w) for _, w in unit.lines) / READ_CHARS_PER_SECOND[lang]
        weights.append(KIND_WEIGHTS.get(unit.kind, 1.0) * (1 + 0.25 * min(3.0, said / 2.5)))
    return allocate_durations(weights, total)


def _shot(i, unit, seconds, lang, reading, subject, product, film_look, used, config, board_notes) -> Shot:
    lighting, mood = _unit_look(unit, film_look)
    sep = "：" if lang == "zh" else ": "
    expect = None
    lines = unit.lines
    # A shot says what a viewer can read in its time; a line that does not fit is named in the notes.
    budget = seconds * READ_CHARS_PER_SECOND[lang] * 1.6
    kept, spent = [], 0
    for who, words in lines:
        if kept and spent + len(words) > budget:
            board_notes.append(f"shot s{i:02d}: line not said, no time in {seconds:g} s: {words!r}")
            continue
        kept.append((who, words))
        spent += len(words)
    subtitle = _say(kept, lang)
    spoken = None
    if unit.role == "end":
        subtitle, expect, spoken = _end_card(reading, used, lang)
        description = END_CARD[lang].format(subject=subject)
        if unit.text:
            description = f"{unit.text.rstrip('.。')}{'。' if lang == 'zh' else '. '}{description}"
        prompt_subject = f"{subject}, the end card"
    elif unit.role == "product":
        description = prompt_subject = unit.text
    elif unit.role == "subject":
        description = unit.text
        prompt_subject = re.sub(r"^[^:：]{2,30}[:：]\s*", "", unit.text)  # the template names the framing
    elif unit.role == "super":
        description = f"{setting(unit.scene) or subject}{sep}{unit.text}".strip(": ")
        prompt_subject = setting(unit.scene) or (subject if product else unit.text)
        expect = kept[0][1] if kept else None
    elif unit.role == "dialogue" and unit.coverage == 0:
        description = (
            unit.text
            if not unit.speaker or unit.text.startswith(unit.speaker)
            else f"{unit.speaker}{sep}{unit.text}"
        )
        prompt_subject = f"{unit.speaker or 'a person'} speaking, {setting(unit.scene) or 'face lit'}"
    elif unit.coverage:
        description = COVERAGE_NOTE[lang].format(text=unit.text, kind=KIND_NAMES[lang][unit.kind])
        prompt_subject = unit.text
    else:
        description = prompt_subject = unit.text
        if has_cue(unit.text, TEXT_CUES) and kept:
            expect = " ".join(w for who, w in kept if not who) or None
    kind_of = reading.subject_kind if unit.role in ("product", "end", "subject") else None
    kind_of = kind_of or find_subject_kind(unit.text, people_first=True) or reading.subject_kind
    return _render(i, unit, seconds, lang, description, prompt_subject, subtitle, expect, lighting, mood,
                   config, subject if product else "", kind_of, kept, spoken)  # fmt: skip


def _render(i, unit, seconds, lang, description, prompt_subject, subtitle, expect, lighting, mood, config,
            product, subject_kind, kept, spoken=None) -> Shot:  # fmt: skip
    camera = f"{FRAMING[unit.kind]}, {MOTION_WORDS[unit.motion]}"
    prompt_subject = shorten(prompt_subject, 240)
    variables = {
        "framing": FRAMING[unit.kind].split(",")[0].capitalize(),
        "subject": prompt_subject.rstrip(".!?。！？ "),  # the template ends the sentence
        "setting": setting(unit.scene),
        "product": product if product and product not in prompt_subject else "",
        "camera": camera,
        "lighting": lighting,
        "mood": mood,
        "expect_text": expect or "",
        "style": config.style,
        "orientation": orientation(config.width, config.height).capitalize(),
        "kind": unit.kind,
    }
    speakers = {who for who, _ in kept if who}
    # The voice-over speaks the copy and narration (lines with no speaker, or a speaker marked V.O.); a
    # character's on-screen dialogue is not voiced over a silent picture. The end card says its copy.
    if spoken is None:
        spoken = _say([(None, w) for who, w in kept if _voice_over(who)], lang)
    return Shot(
        id=f"s{i:02d}",
        index=i,
        kind=unit.kind,
        description=shorten(description, 320),
        camera=camera,
        lighting=lighting,
        mood=mood,
        duration=seconds,
        subtitle=subtitle.strip() if lang == "en" else subtitle.strip(),
        expect_text=expect,
        motion=unit.motion,
        prompt=render_line("shot_prompt.j2", **variables),
        negative_prompt=render_line("negative_prompt.j2", **variables),
        subject_kind=subject_kind,
        scene=unit.heading,
        speaker=speakers.pop() if len(speakers) == 1 else None,
        voiceover=spoken.strip(),
    )


def _voice_over(who: str | None) -> bool:
    return not who or bool(re.search(r"\bV\.?O\b|\(O\.?S\.?\)|旁白|画外音", who, re.IGNORECASE))


def _distinct(shot, unit, i, lang, seen_descriptions, seen_prompts, config, subject, product) -> Shot:
    """No two shots read the same: a repeat gets a different angle in its description and prompt."""
    angles = ANGLES[lang]
    j = 0
    while shot.description in seen_descriptions or shot.prompt in seen_prompts:
        angle = angles[(i + j) % len(angles)]
        sep = "，" if lang == "zh" else ", "
        shot = shot.model_copy(
            update={
                "description": f"{shot.description.rstrip('.。')}{sep}{angle}",
                "prompt": shot.prompt.replace(
                    ". Camera:", f", {ANGLES['en'][(i + j) % len(angles)]}. Camera:", 1
                ),
            }
        )
        j += 1
        if j > 2 * len(angles):
            break
    seen_descriptions.add(shot.description)
    seen_prompts.add(shot.prompt)
    return shot
