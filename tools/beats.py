"""Beats: a brief or script cut into the things that happen (scenes, sentences, dialogue, SUPER lines), and those
beats fitted to exactly the shots and seconds the film has.

A beat's `text` is what the camera sees; its `lines` are what the film says (dialogue, on-screen text, claims):
only lines ever become subtitles. Stage directions, parentheticals, transitions and scene headings are never
lines. Meta sentences about the deliverable and copy-only sentences ("Slogan 'Slow mornings'.", "¥129.") are not
beats at all; `split_beats` leaves them out and the planner puts their copy on the end card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.brief import (
    CJK,
    PRICE,
    QUOTED,
    SPEECH_CUES,
    TEXT_CUES,
    find_claims,
    find_cta,
    has_cue,
    is_meta_sentence,
)

MIN_SHOT_SECONDS = 1.5
SECONDS_PER_SHOT = 2.5


class PlanError(RuntimeError):
    """Planning failed (endpoint down, answers never valid, too many shots); the message says what to do."""


_HEADING = [
    re.compile(r"^(?:INT|EXT|INT\.?/EXT|EXT\.?/INT|I/E)[.\s]\s*(.*)$"),  # screenplay sluglines
    re.compile(r"^#{1,6}\s+(.*)$"),  # markdown headings
    re.compile(r"^(?:场景|第)\s*[一二三四五六七八九十百零〇\d]+\s*[场幕景]?\s*[：:.、\s]?\s*(.*)$"),
    re.compile(r"^scene\s+\d+\s*[:.\-–—]?\s*(.*)$", re.IGNORECASE),
]
# A screenplay character cue: a short all-caps line, optionally with (V.O.) / (O.S.).
_CUE = re.compile(r"^([A-Z][A-Z0-9 .'\-]{0,30})(?:\s*\((?:V\.O\.|O\.S\.|O\.C\.|CONT'D|[^)]{1,12})\))?$")
_EN_DIALOGUE = re.compile(r"^([A-Z][A-Z0-9 .'\-]{0,30}?)(?:\s*\((?:V\.O\.|O\.S\.|O\.C\.)\))?\s*:\s*(.+)$")
_ZH_DIALOGUE = re.compile(r"^([\u4e00-\u9fff]{1,6})(?:[（(][^）)]{0,8}[）)])?\s*[：:]\s*(.+)$")
_SUPER = re.compile(
    r"^(?:SUPER|ON[- ]SCREEN(?: TEXT)?|TEXT ON SCREEN|TITLE CARD|TITLE|CARD|CAPTION|字幕|画面字幕|屏幕文字|标题)\s*[:：]\s*(.+)$",
    re.IGNORECASE,
)
_TRANSITION = re.compile(
    r"^(?:FADE (?:IN|OUT|TO BLACK)|CUT TO|SMASH CUT TO|DISSOLVE TO|MATCH CUT TO|THE END|END|淡入|淡出|切至|转场)[.:：]?$",
    re.IGNORECASE,
)
_PAREN = re.compile(r"^[(（].*[)）]$")
_ZH_NOT_SPEAKERS = {"字幕", "画面", "镜头", "场景", "时间", "地点", "旁白字幕"}
# English . ! ? end a sentence only before a capital, a digit, an opening quote or the end, so "¥199.00" and
# 'the slogan “Hear nothing.” and the price' stay whole; Chinese 。！？； always end one.
_CLOSERS = '”’"」』)）'
_SENT_END = re.compile(
    rf"[。！？；]+[{_CLOSERS}]*|[.!?]+[{_CLOSERS}]*(?=\s+[A-Z0-9“\"「『(¥$€£\u4e00-\u9fff]|\s*$)"
)
_CLAUSE_END = re.compile(r"[,，、:：;；]|\s[—–-]\s|—")
# What is left of a copy sentence once its copy and the words that introduce it are gone.
_COPY_WORDS = re.compile(
    r"\b(?:end(?:s|ing)? (?:on|with)|finish(?:es)? (?:on|with)|close (?:on|with)|the|a|an|and|with|our|its|"
    r"slogan|tagline|motto|price[ds]?|at|only|just|call to action|cta|text|title|card|end card|super|on screen|"
    r"show(?:s|ing)?|reads?|says?|words?|is|of|final(?:ly)?|shot|frame|logo|from|to|it|then|for|in)\b|"
    r"最后|结尾|出现|口号|标语|广告语|价格|售价|和|以及|并|打出|显示|字样|仅|只要|收尾|画面|定格|在|上|的|为|是",
    re.IGNORECASE,
)
DIRECTION_CUES = ("end on", "end with", "ends on", "ends with", "close on", "finish", "final", "last",
                  "最后", "结尾", "收尾", "定格")  # fmt: skip


@dataclass
class Beat:
    """One thing that happens: a sentence, a speech or an on-screen line, in the scene it belongs to."""

    text: str
    scene: str = ""  # the scene heading's words (location, time of day), "" when the brief has none
    scene_index: int = 0
    speaker: str | None = None
    role: str = "action"  # action, dialogue, super, product (coverage the grammar adds), end (the end card)
    heading: str = ""  # the scene heading as written, e.g. "INT. SUBWAY CAR – NIGHT"
    lines: list[tuple[str | None, str]] = field(default_factory=list)  # (speaker, words) the film says


@dataclass
class Unit:
    """What one shot covers: a beat (or several merged), and which coverage of it this shot is."""

    text: str
    scene: str
    scene_index: int
    coverage: int = 0  # 0: the beat's first shot; 1, 2, ...: more angles on the same beat
    speaker: str | None = None
    last: bool = True  # the beat's last shot
    kind: str = "medium"
    motion: str = "static"
    role: str = "action"
    heading: str = ""
    lines: list[tuple[str | None, str]] = field(default_factory=list)


def _heading(line: str) -> str | None:
    for pattern in _HEADING:
        if m := pattern.match(line):
            return m.group(1).strip(" .:-–—") or line.strip("# ")
    return None


def split_sentences(text: str) -> list[str]:
    """Split on English . ! ? (a period only before a space or the end, so ¥199.00 stays whole) and 。！？；."""
    out, start = [], 0
    for m in _SENT_END.finditer(text):
        if piece := text[start : m.end()].strip():
            out.append(piece)
        start = m.end()
    if rest := text[start:].strip():
        out.append(rest)
    return out


def split_clauses(text: str) -> list[str]:
    """Split a sentence at commas, colons, semicolons and dashes, merging fragments too short to be a shot."""
    pieces, start = [], 0
    for m in _CLAUSE_END.finditer(text):
        pieces.append(text[start : m.end()])
        start = m.end()
    pieces.append(text[start:])
    out: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if out and _too_short(out[-1]):
            out[-1] = join([out[-1], piece])
        else:
            out.append(piece)
    if len(out) > 1 and _too_short(out[-1]):
        last = out.pop()
        out[-1] = join([out[-1], last])
    return out


def _too_short(text: str) -> bool:
    return len(re.findall(r"[A-Za-z0-9']+", text)) + len(CJK.findall(text)) / 2 < 3


def join(texts: list[str]) -> str:
    """Join pieces of text: with a space between Latin words, without one next to Chinese characters."""
    out = ""
    for t in texts:
        if not t:
            continue
        out = t if not out else (out + t if ord(out[-1]) >= 0x2E80 or ord(t[0]) >= 0x2E80 else f"{out} {t}")
    return out


def trim(text: str) -> str:
    return text.strip().rstrip(",，、:：;；—–- ")


def _quotes(text: str) -> list[str]:
    return [next(g for g in m.groups() if g).strip() for m in QUOTED.finditer(text)]


def is_copy_only(sentence: str) -> bool:
    """A sentence that only gives copy ('Slogan: "Slow mornings".', '¥129.', 'End on the price.')."""
    rest = QUOTED.sub(" ", sentence)
    rest = PRICE.sub(" ", rest)
    rest = _COPY_WORDS.sub(" ", rest)
    rest = re.sub(r"[\W\d_]+", " ", rest)
    words = len(re.findall(r"[A-Za-z]{2,}", rest)) + len(CJK.findall(rest)) / 2
    had_copy = bool(QUOTED.search(sentence) or PRICE.search(sentence) or has_cue(sentence, TEXT_CUES))
    if had_copy and words < 1.5:
        return True
    # A bare claim or call to action ("Charges in 3 hours.", "Try it today.") is copy for the end of the film.
    rest = sentence
    for claim in find_claims(sentence):
        rest = rest.replace(claim, " ")
    if cta := find_cta(sentence):
        rest = re.sub(re.escape(cta), " ", rest, flags=re.IGNORECASE)
    rest = _COPY_WORDS.sub(" ", re.sub(r"[\W\d_]+", " ", rest))
    return rest != sentence and len(re.findall(r"[A-Za-z]{2,}", rest)) + len(CJK.findall(rest)) / 2 < 1.5


def split_beats(text: str) -> list[Beat]:
    """Split a brief or script into beats: scene headings, then paragraphs, then sentences, then dialogue.
    Meta sentences and copy-only sentences are left out (see the module docstring)."""
    scenes: list[tuple[str, str, list[str]]] = [("", "", [])]
    for line in (raw.strip() for raw in text.split("\n")):
        if (heading := _heading(line)) is None:
            scenes[-1][2].append(line)
        elif scenes[-1][0] or any(scenes[-1][2]):
            scenes.append((heading, line.lstrip("# "), []))
        else:
            scenes[-1] = (heading, line.lstrip("# "), [])
    beats: list[Beat] = []
    for index, (heading, full, lines) in enumerate(scenes):
        scene_beats = _scene_beats(heading, full, index, lines)
        # A scene that is only a heading still needs a shot of the place.
        beats += scene_beats or ([Beat(heading, heading, index, heading=full)] if heading else [])
    return beats


def _sentence_beats(sentence: str, scene: str, full: str, index: int) -> list[Beat]:
    """A prose sentence as a beat: meta and copy-only sentences give none; a quote someone says is a line."""
    if is_meta_sentence(sentence):
        # "Make a 15-second ad for our thermos: hikers at dawn" still has something to film after the colon.
        colon = re.search(r"[:：]|\s—\s", sentence)
        tail = sentence[colon.end() :].strip() if colon else ""
        if not tail or is_meta_sentence(tail):
            return []
        sentence = tail
    if is_copy_only(sentence):
        return []
    lines: list[tuple[str | None, str]] = []
    if has_cue(sentence, SPEECH_CUES) and not has_cue(sentence, TEXT_CUES) and _quotes(sentence):
        # Prose dialogue ('“Not like that,” she said'): the quote is a line, the sentence what the camera sees.
        return [Beat(sentence, scene, index, None, "dialogue", full, [(None, q) for q in _quotes(sentence)])]
    else:
        lines += [(None, q) for q in _quotes(sentence)]
        lines += [(None, c) for c in find_claims(sentence) if not any(c in q for _, q in lines)]
    return [Beat(sentence, scene, index, None, "action", full, lines)]


def _scene_beats(scene: str, full: str, index: int, lines: list[str]) -> list[Beat]:
    beats: list[Beat] = []
    paragraph: list[str] = []
    speaker: str | None = None
    speech: list[str] = []

    def flush() -> None:
        nonlocal speaker
        if speaker and speech:
            words = " ".join(speech).strip()
            beats.append(Beat(words, scene, index, speaker, "dialogue", full, [(speaker, words)]))
        speech.clear()
        speaker = None
        for sentence in split_sentences(" ".join(paragraph)):
            beats.extend(_sentence_beats(sentence, scene, full, index))
        paragraph.clear()

    # Character cues and "NAME: line" count as dialogue only under a scene heading, i.e. in a script; in a
    # brief an all-caps line is more likely a product name.
    for line in lines:
        if not line:
            flush()
        elif _PAREN.match(line) or _TRANSITION.match(line):
            continue  # parentheticals direct the actor and transitions the editor, not the camera
        elif m := _SUPER.match(line):
            flush()
            words = (_quotes(m.group(1)) or [m.group(1).strip()])[0]
            beats.append(Beat(f"On-screen text: {words}", scene, index, None, "super", full, [(None, words)]))
        elif speaker is not None:
            speech.append(line)
        elif scene and _CUE.match(line) and len(line.split()) <= 4 and not line.endswith((".", "!", "?")):
            flush()
            speaker = line.split("(")[0].strip().title()
        elif scene and (m := _EN_DIALOGUE.match(line)) and len(m.group(1).split()) <= 3:
            flush()
            who, words = m.group(1).strip().title(), m.group(2).strip()
            beats.append(Beat(words, scene, index, who, "dialogue", full, [(who, words)]))
        elif (
            (m := _ZH_DIALOGUE.match(line)) and m.group(1) not in _ZH_NOT_SPEAKERS and (scene or "：" in line)
        ):
            flush()
            who, words = m.group(1), m.group(2).strip()
            beats.append(Beat(words, scene, index, who, "dialogue", full, [(who, words)]))
        else:
            paragraph.append(line)
    flush()
    return beats


def end_card_requested(text: str) -> bool:
    """The brief asks to end on something ('End on the slogan …', '最后出现口号…')."""
    return any(
        has_cue(s, DIRECTION_CUES) for s in split_sentences(text) if QUOTED.search(s) or PRICE.search(s)
    )


# --------------------------------------------------------------------------------------------------------------
# Fitting beats to shots


def allocate(weights: list[float], total: int, minimum: int = 1) -> list[int]:
    """Split the integer `total` over `weights` (largest remainder), each at least `minimum`; deterministic."""
    extra = total - minimum * len(weights)
    norm = sum(weights) or 1.0
    shares = [extra * w / norm for w in weights]
    counts = [minimum + int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def partition(items: list, groups: int) -> list[list]:
    """Cut a list into `groups` contiguous, nearly equal runs."""
    return [items[len(items) * g // groups : len(items) * (g + 1) // groups] for g in range(groups)]


def _merged(group: list[Beat]) -> Unit:
    lines = [line for b in group for line in b.lines]
    speakers = {who for who, _ in lines if who}
    roles = {b.role for b in group}
    role = "dialogue" if "dialogue" in roles else group[0].role if len(roles) == 1 else "action"
    texts = (
        [f"{b.speaker}: {b.text}" if b.role == "dialogue" and b.speaker else b.text for b in group]
        if len(group) > 1
        else [group[0].text]
    )
    return Unit(
        trim(join(texts)),
        group[0].scene,
        group[0].scene_index,
        speaker=speakers.pop() if len(speakers) == 1 else None,
        role=role,
        heading=group[0].heading,
        lines=lines,
    )


def fit_units(beats: list[Beat], n: int) -> list[Unit]:
    """Turn beats into exactly `n` shot units: merge beats when there are too many, split sentences into clauses
    and then cover a beat from more angles when there are too few. Scene boundaries are kept when they fit."""
    scenes: list[list[Beat]] = []
    for beat in beats:
        if scenes and scenes[-1][0].scene_index == beat.scene_index:
            scenes[-1].append(beat)
        else:
            scenes.append([beat])
    if len(scenes) > n:  # more scenes than shots: one shot per run of scenes
        return [_merged([b for s in run for b in s]) for run in partition(scenes, n)]
    units: list[Unit] = []
    for scene, k in zip(scenes, allocate([len(s) for s in scenes], n), strict=True):
        if k <= len(scene):
            units += [_merged(group) for group in partition(scene, k)]
            continue
        # Only action carries clauses worth a shot each; a speech or an on-screen line stays whole.
        pieces = [(b, [b.text]) for b in scene]
        while sum(len(p) for _, p in pieces) < k:
            best = None
            for bi, (beat, parts) in enumerate(pieces):
                for pi, part in enumerate(parts):
                    clauses = split_clauses(part) if beat.role == "action" else [part]
                    if len(clauses) > 1 and (best is None or len(part) > best[2]):
                        best = (bi, pi, len(part), clauses)
            if best is None:
                break
            bi, pi, _, clauses = best
            half = (len(clauses) + 1) // 2
            pieces[bi][1][pi : pi + 1] = [join(clauses[:half]), join(clauses[half:])]
        flat: list[tuple[Beat, str, list]] = []
        for beat, parts in pieces:
            # A beat's lines are said once: each on the clause that holds it, the rest on the beat's first shot.
            own = (
                [[ln for ln in beat.lines if ln[1] in part] for part in parts]
                if len(parts) > 1
                else [beat.lines]
            )
            placed = {ln for lines in own for ln in lines}
            own[0] = [ln for ln in beat.lines if ln not in placed] + own[0]
            flat += [(beat, part, lines) for part, lines in zip(parts, own, strict=True)]
        for (beat, part, lines), copies in zip(flat, allocate([len(p) for _, p, _ in flat], k), strict=True):
            units += [
                Unit(
                    trim(part),
                    beat.scene,
                    beat.scene_index,
                    c,
                    beat.speaker,
                    c == copies - 1,
                    role=beat.role,
                    heading=beat.heading,
                    lines=lines if c == 0 else [],
                )  # fmt: skip
                for c in range(copies)
            ]
    return units


def total_seconds(film_seconds: float, n: int) -> float:
    if film_seconds < MIN_SHOT_SECONDS * n - 1e-9:
        raise PlanError(
            f"{n} shots of at least {MIN_SHOT_SECONDS} s need {MIN_SHOT_SECONDS * n:g} s, but the film "
            f"is {film_seconds:g} s. Raise --duration or lower --shots."
        )
    return film_seconds


def allocate_durations(weights: list[float], total: float) -> list[float]:
    """Seconds per shot in tenths, proportional to `weights`, each at least MIN_SHOT_SECONDS, summing to `total`."""
    floor = round(MIN_SHOT_SECONDS * 10)
    tenths = allocate(weights, round(total * 10) - floor * len(weights) + len(weights), 1)
    return [(t - 1 + floor) / 10 for t in tenths]
