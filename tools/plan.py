"""Tool: plan. Turns a brief or script into a storyboard.

Backends: an OpenAI-compatible chat endpoint with structured output (`llm`), or the deterministic offline
planner (`offline`): beat splitting for Chinese and English, a shot grammar, and prompt templates in prompts/.

    brief = read_brief(text, source="brief.md")          # BriefError on empty, oversized or binary input
    storyboard = plan_storyboard(brief, settings)        # PlanError when the chosen planner cannot plan

Which planner runs is `settings.planner`: `offline`; `llm` (fails loudly when the endpoint is missing or down);
`auto` (the endpoint when one is configured and it answers, else offline, with the reason logged and appended to
`notes`). `planner_description(settings)` is the one-line answer for the startup banner.

Offline timing: the shot count is `settings.shot_count()` and the film lasts `settings.film_seconds()`: the
`--duration` when given, else `SECONDS_PER_SHOT` per shot with `--shots` alone, else 20 s. No shot is shorter than `MIN_SHOT_SECONDS`.

Offline language: subtitles are the brief's own words. When `settings.lang` asks for another language the offline
planner keeps the brief's language (it does not translate), says so in the notes, and the storyboard's `lang` is
the language the subtitles are really in, so the cut picks a font that can draw them.
"""

from __future__ import annotations

import json
import logging
import random
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from tools.film import Brief, Shot, ShotKind, Storyboard
from tools.templates import render, render_line

log = logging.getLogger(__name__)

MAX_BRIEF_CHARS = 20_000
MIN_SHOT_SECONDS = 1.5
SECONDS_PER_SHOT = 2.5
# Share of junk characters (controls, unassigned code points, U+FFFD) above which input is called binary.
MAX_JUNK_SHARE = 0.05

Motion = Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"]
MOTIONS: tuple[str, ...] = ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static")
SHOT_KINDS: tuple[str, ...] = ShotKind.__args__  # type: ignore[attr-defined]


class BriefError(ValueError):
    """The brief cannot be used; the message says what is wrong and what to do."""


class PlanError(RuntimeError):
    """Planning failed (endpoint down, answers never valid); the message says what to do."""


# --------------------------------------------------------------------------------------------------------------
# Reading the brief

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_lang(text: str) -> Literal["en", "zh"]:
    """`zh` when CJK ideographs are at least a quarter of the letters, else `en`.

    One ideograph carries about as much as an English word of ~4 letters, so a quarter keeps an English brief that
    names a Chinese brand English and a Chinese brief that names an English product Chinese.
    """
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return "zh" if cjk and cjk / (cjk + latin) >= 0.25 else "en"


def _is_junk(ch: str) -> bool:
    if ch in "\n\t\r":
        return False
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")


def read_brief(raw: bytes | str, source: str = "argument") -> Brief:
    """Validate and decode a brief: empty, too long or binary input raises BriefError.

    Accepts bytes (decoded as UTF-8, a byte-order mark is dropped) or str. Line endings become `\\n`; stray
    control characters in otherwise good text are removed because they would end up in subtitles and prompts.
    """
    where = "" if source == "argument" else f" ({source})"
    if isinstance(raw, bytes):
        if b"\x00" in raw:
            raise BriefError(
                f"the brief{where} contains NUL bytes: it looks like a binary file, not text. "
                "Give a plain-text brief or script (UTF-8)."
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BriefError(
                f"the brief{where} is not UTF-8 text (undecodable byte at position {exc.start}). "
                "Save it as UTF-8 and try again."
            ) from None
    else:
        text = raw
        if "\x00" in text:
            raise BriefError(
                f"the brief{where} contains NUL characters: it looks like binary data, not text. "
                "Give a plain-text brief or script."
            )
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise BriefError(
            f"the brief{where} is empty. Say what the film is about, e.g. "
            '"a 20-second launch film for wireless headphones".'
        )
    if len(text) > MAX_BRIEF_CHARS:
        raise BriefError(
            f"the brief{where} is {len(text):,} characters; the limit is {MAX_BRIEF_CHARS:,}. "
            "Shorten it, or split the script and plan each part as its own run."
        )
    junk = sum(1 for ch in text if _is_junk(ch))
    if junk / len(text) > MAX_JUNK_SHARE:
        raise BriefError(
            f"the brief{where} is mostly unprintable characters ({junk} of {len(text)}): it looks "
            "like binary data, not text. Give a plain-text brief or script (UTF-8)."
        )
    if junk:
        text = "".join(ch for ch in text if not _is_junk(ch))
    return Brief(text=text, lang=detect_lang(text), source=source)


# --------------------------------------------------------------------------------------------------------------
# Offline planner: beats

_HEADING = [
    re.compile(r"^(?:INT|EXT|INT\.?/EXT|EXT\.?/INT|I/E)[.\s]\s*(.*)$"),  # screenplay sluglines
    re.compile(r"^#{1,6}\s+(.*)$"),  # markdown headings
    re.compile(r"^(?:场景|第)\s*[一二三四五六七八九十百零〇\d]+\s*[场幕景]?\s*[：:.、\s]?\s*(.*)$"),
    re.compile(r"^scene\s+\d+\s*[:.\-–—]?\s*(.*)$", re.IGNORECASE),
]
# A screenplay character cue: a short all-caps line, optionally with (V.O.) / (O.S.).
_CUE = re.compile(r"^([A-Z][A-Z0-9 .'\-]{0,30})(?:\s*\((?:V\.O\.|O\.S\.|O\.C\.|CONT'D)\))?$")
_ZH_DIALOGUE = re.compile(r"^([\u4e00-\u9fff]{1,6})\s*[：:]\s*(.+)$")
_PAREN = re.compile(r"^[(（].*[)）]$")
# English . ! ? end a sentence only before a capital, a digit, an opening quote or the end, so "¥199.00" and
# 'the slogan “Hear nothing.” and the price' stay whole; Chinese 。！？； always end one.
_CLOSERS = '”’"」』)）'
_SENT_END = re.compile(
    rf"[。！？；]+[{_CLOSERS}]*|[.!?]+[{_CLOSERS}]*(?=\s+[A-Z0-9“\"「『(¥$€£\u4e00-\u9fff]|\s*$)"
)
_CLAUSE_END = re.compile(r"[,，、:：;；]|\s[—–-]\s|—")


@dataclass
class Beat:
    """One thing that happens: a sentence or clause of the brief, in the scene it belongs to."""

    text: str
    scene: str = ""  # the scene heading's words (location, time of day), "" when the brief has none
    scene_index: int = 0
    speaker: str | None = None


@dataclass
class Unit:
    """What one shot covers: a beat (or several merged), and which coverage of it this shot is."""

    text: str
    scene: str
    scene_index: int
    coverage: int = 0  # 0: the beat's first shot; 1, 2, ...: more angles on the same beat
    speaker: str | None = None
    last: bool = True  # the beat's last shot (a direction such as "end on the slogan" lands here)
    kind: str = "medium"
    motion: str = "static"


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
            out[-1] = _join([out[-1], piece])
        else:
            out.append(piece)
    if len(out) > 1 and _too_short(out[-1]):
        last = out.pop()
        out[-1] = _join([out[-1], last])
    return out


def _too_short(text: str) -> bool:
    return len(re.findall(r"[A-Za-z0-9']+", text)) + len(_CJK.findall(text)) / 2 < 3


def split_beats(text: str) -> list[Beat]:
    """Split a brief or script into beats: scene headings, then paragraphs, then sentences, then dialogue."""
    scenes: list[tuple[str, list[str]]] = [("", [])]
    for line in (raw.strip() for raw in text.split("\n")):
        if (heading := _heading(line)) is None:
            scenes[-1][1].append(line)
        elif scenes[-1][0] or any(scenes[-1][1]):
            scenes.append((heading, []))
        else:
            scenes[-1] = (heading, [])
    beats: list[Beat] = []
    for index, (heading, lines) in enumerate(scenes):
        scene_beats = _scene_beats(heading, index, lines)
        # A scene that is only a heading still needs a shot of the place.
        beats += scene_beats or ([Beat(heading, heading, index)] if heading else [])
    return beats or [Beat(text.strip())]


def _scene_beats(scene: str, index: int, lines: list[str]) -> list[Beat]:
    beats: list[Beat] = []
    paragraph: list[str] = []
    speaker: str | None = None

    def flush() -> None:
        for sentence in split_sentences(" ".join(paragraph)):
            beats.append(Beat(sentence, scene, index, speaker))
        paragraph.clear()

    # Character cues and "名字：台词" lines count as dialogue only under a scene heading, i.e. in a script; in a
    # brief an all-caps line is more likely a product name.
    for line in lines:
        if not line:
            flush()
            speaker = None
        elif _PAREN.match(line):
            continue  # parentheticals such as (beat) direct the actor, not the camera
        elif scene and _CUE.match(line) and len(line.split()) <= 4 and not line.endswith((".", "!", "?")):
            flush()
            speaker = line.split("(")[0].strip().title()
        elif scene and (m := _ZH_DIALOGUE.match(line)):
            flush()
            beats.append(Beat(m.group(2).strip(), scene, index, m.group(1)))
        else:
            paragraph.append(line)
    flush()
    return beats


def _allocate(weights: list[float], total: int, minimum: int = 1) -> list[int]:
    """Split the integer `total` over `weights` (largest remainder), each at least `minimum`; deterministic."""
    extra = total - minimum * len(weights)
    norm = sum(weights) or 1.0
    shares = [extra * w / norm for w in weights]
    counts = [minimum + int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _partition(items: list, groups: int) -> list[list]:
    """Cut a list into `groups` contiguous, nearly equal runs."""
    return [items[len(items) * g // groups : len(items) * (g + 1) // groups] for g in range(groups)]


def _join(texts: list[str]) -> str:
    """Join pieces of text: with a space between Latin words, without one next to Chinese characters."""
    out = ""
    for t in texts:
        out = t if not out else (out + t if ord(out[-1]) >= 0x2E80 or ord(t[0]) >= 0x2E80 else f"{out} {t}")
    return out


def _trim(text: str) -> str:
    return text.strip().rstrip(",，、:：;；—–- ")


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
        return [
            Unit(_join([b.text for b in group]), group[0].scene, group[0].scene_index)
            for group in ([b for s in run for b in s] for run in _partition(scenes, n))
        ]
    units: list[Unit] = []
    for scene, k in zip(scenes, _allocate([len(s) for s in scenes], n), strict=True):
        if k <= len(scene):
            for group in _partition(scene, k):
                units.append(
                    Unit(
                        _trim(_join([b.text for b in group])),
                        group[0].scene,
                        group[0].scene_index,
                        speaker=group[0].speaker,
                    )
                )
            continue
        pieces = [(b, [b.text]) for b in scene]
        while sum(len(p) for _, p in pieces) < k:
            # Split the longest piece that still has clauses, at the clause boundary nearest its middle.
            best = None
            for bi, (_, parts) in enumerate(pieces):
                for pi, part in enumerate(parts):
                    clauses = split_clauses(part)
                    if len(clauses) > 1 and (best is None or len(part) > best[2]):
                        best = (bi, pi, len(part), clauses)
            if best is None:
                break
            bi, pi, _, clauses = best
            half = (len(clauses) + 1) // 2
            pieces[bi][1][pi : pi + 1] = [_join(clauses[:half]), _join(clauses[half:])]
        flat = [(b, part) for b, parts in pieces for part in parts]
        for (beat, part), copies in zip(flat, _allocate([len(p) for _, p in flat], k), strict=True):
            units += [
                Unit(_trim(part), beat.scene, beat.scene_index, c, beat.speaker, c == copies - 1)
                for c in range(copies)
            ]
    return units


# --------------------------------------------------------------------------------------------------------------
# Offline planner: the shot grammar, camera, lighting and mood

FRAMING: dict[str, str] = {
    "establishing": "extreme wide establishing shot, 24mm lens, high angle",
    "wide": "wide shot, 28mm lens, eye level",
    "medium": "medium shot, 35mm lens, eye level",
    "close-up": "close-up, 85mm lens, shallow depth of field",
    "insert": "insert shot, 100mm lens, hands and objects",
    "detail": "extreme close-up detail, 100mm macro lens",
    "hero": "hero product shot, 50mm lens, low angle, centered",
    "over-the-shoulder": "over-the-shoulder shot, 50mm lens",
}
MOTION_WORDS: dict[str, str] = {
    "push-in": "slow push-in",
    "pull-out": "slow pull-out",
    "pan-left": "slow pan left",
    "pan-right": "slow pan right",
    "drift": "gentle handheld drift",
    "static": "locked-off static camera",
}
# How a coverage shot describes its subject when the beat is a request, not an action.
KIND_DESCRIPTION: dict[str, dict[str, str]] = {
    "en": {
        "establishing": "The world of {subject}: an establishing view of the setting",
        "wide": "Wide view: {subject} in its setting",
        "medium": "Medium shot: {subject} in use",
        "close-up": "Close-up on {subject}",
        "insert": "Insert: hands interacting with {subject}",
        "detail": "Extreme close-up on the materials and details of {subject}",
        "hero": "Hero shot: {subject}, centered, on a clean background",
        "over-the-shoulder": "Over the shoulder: someone looking at {subject}",
    },
    "zh": {
        "establishing": "{subject}所在的世界：交代环境的远景",
        "wide": "全景：{subject}与它的环境",
        "medium": "中景：{subject}正在被使用",
        "close-up": "特写：{subject}",
        "insert": "插入镜头：手与{subject}的互动",
        "detail": "大特写：{subject}的材质与细节",
        "hero": "主视觉：{subject}居中，干净的背景",
        "over-the-shoulder": "过肩镜头：有人注视着{subject}",
    },
}
KIND_NAMES: dict[str, dict[str, str]] = {
    "en": {k: k.replace("-", " ") for k in FRAMING},
    "zh": {
        "establishing": "远景",
        "wide": "全景",
        "medium": "中景",
        "close-up": "特写",
        "insert": "插入镜头",
        "detail": "大特写",
        "hero": "主视觉",
        "over-the-shoulder": "过肩",
    },
}
# A further angle on a beat that another shot already shows.
COVERAGE_NOTE = {"en": "{text} (another angle: {kind})", "zh": "{text}（另一角度：{kind}）"}
DIRECTION_CUES = (
    "price",
    "end on",
    "close on",
    "open on",
    "finish",
    "last",
    "final",
    "价格",
    "结尾",
    "最后",
    "收尾",
)
# Longest subtitle line, in characters: two lines of a readable size in each language.
SUBTITLE_CHARS = {"en": 84, "zh": 32}
# Words that choose a shot size. English entries are word prefixes; Chinese ones are substrings.
KIND_CUES: list[tuple[str, tuple[str, ...]]] = [
    (
        "detail",
        ("detail", "texture", "stitch", "macro", "button", "logo", "细节", "纹理", "材质", "按键", "微距"),
    ),
    (
        "close-up",
        ("close-up", "close up", "face", "eyes", "smile", "tear", "lips", "特写", "脸", "眼", "微笑", "泪"),
    ),
    ("insert", ("hand", "fingers", "taps", "presses", "picks up", "phone", "手指", "手机", "拿起", "按下")),
    (
        "wide",
        (
            "city",
            "street",
            "landscape",
            "skyline",
            "crowd",
            "field",
            "beach",
            "城市",
            "街道",
            "风景",
            "人群",
            "海边",
            "山",
        ),
    ),
]
MOTION_CUES: list[tuple[str, tuple[str, ...]]] = [
    ("pan-left", ("pan left", "pans left", "左摇", "向左")),
    (
        "pan-right",
        ("pan right", "pans right", "pan", "sweep", "across", "右摇", "向右", "横移", "平移", "摇镜"),
    ),
    ("pull-out", ("pull back", "pull out", "pulls back", "zoom out", "reveal", "拉远", "拉开", "揭示")),
    ("push-in", ("push in", "pushes in", "zoom in", "approach", "closer", "推近", "推进", "靠近")),
    ("static", ("still", "static", "motionless", "frozen", "静止", "固定", "一动不动")),
    ("drift", ("drift", "float", "handheld", "wander", "漂浮", "缓缓", "手持", "漫步")),
]
DEFAULT_MOTIONS: dict[str, tuple[str, ...]] = {
    "establishing": ("pan-right", "pan-left", "drift"),
    "wide": ("pan-left", "pan-right", "drift"),
    "medium": ("drift", "push-in"),
    "close-up": ("push-in",),
    "insert": ("static", "push-in"),
    "detail": ("push-in", "static"),
    "hero": ("push-in",),
    "over-the-shoulder": ("drift",),
}
# (cues, lighting, mood), first match wins, so the more specific entries come first.
LOOKS: list[tuple[tuple[str, ...], str, str]] = [
    (
        ("night", "midnight", "neon", "dark", "夜", "霓虹", "深夜", "黑暗"),
        "low-key night lighting, practical lamps and neon accents, deep shadows",
        "moody, nocturnal",
    ),
    (
        ("sunrise", "dawn", "morning", "first light", "日出", "清晨", "黎明", "早晨", "晨光"),
        "golden-hour sunrise light, long soft shadows",
        "hopeful, fresh",
    ),
    (
        ("sunset", "dusk", "golden hour", "evening", "黄昏", "日落", "傍晚", "夕阳"),
        "warm golden-hour backlight, gentle lens flare",
        "nostalgic, warm",
    ),
    (
        ("rain", "storm", "雨", "暴风"),
        "overcast diffuse light, wet reflections",
        "melancholic, introspective",
    ),
    (("snow", "winter", "ice", "雪", "冬", "冰"), "cool soft daylight, bright snow bounce", "quiet, crisp"),
    (
        ("lonely", "alone", "sad", "grief", "孤独", "悲伤", "难过", "寂寞"),
        "cool low-key light, a single soft source",
        "lonely, quiet",
    ),
    (
        ("tense", "danger", "chase", "fear", "紧张", "危险", "追", "恐惧"),
        "hard contrasty light, harsh shadows",
        "tense, urgent",
    ),
    (
        ("party", "festival", "celebrat", "birthday", "派对", "节日", "庆祝", "春节", "生日"),
        "colorful festive practicals, warm bokeh",
        "joyful, lively",
    ),
    (
        ("cozy", "warm", "home", "coffee", "tea", "温暖", "温馨", "家", "咖啡", "茶"),
        "warm tungsten practicals, soft window fill",
        "cozy, intimate",
    ),
    (
        ("beach", "summer", "sunny", "sunlight", "海滩", "夏", "阳光"),
        "bright high-key sunlight, crisp shadows",
        "energetic, joyful",
    ),
    (
        ("sport", "run", "gym", "energy", "运动", "跑", "健身", "活力"),
        "punchy high-contrast daylight",
        "energetic, dynamic",
    ),
    (
        ("forest", "mountain", "nature", "garden", "森林", "山", "自然", "花园"),
        "dappled natural light through leaves",
        "serene, open",
    ),
    (
        ("office", "city", "urban", "street", "办公", "城市", "街道"),
        "cool daylight through windows, mixed practicals",
        "modern, busy",
    ),
    (
        ("calm", "quiet", "peace", "relax", "安静", "宁静", "平静", "放松"),
        "soft diffuse light",
        "calm, peaceful",
    ),
    (
        ("product", "launch", "studio", "premium", "产品", "新品", "发布", "高端"),
        "clean studio lighting, large softbox key, subtle rim light",
        "premium, modern",
    ),
]
DEFAULT_LOOK = ("soft natural daylight", "calm, clear")
# A brief is about a product when it says so, names a price, or asks for a film about a kind of product.
PRODUCT_CUES = (
    "product",
    "launch",
    "brand",
    "commercial",
    "advert",
    "ad",
    "campaign",
    "catalog",
    "packag",
    "产品",
    "新品",
    "发布",
    "广告",
    "品牌",
    "包装",
)
PRODUCT_NOUNS = (
    "headphone",
    "earbud",
    "phone",
    "watch",
    "sneaker",
    "shoe",
    "bottle",
    "perfume",
    "skincare",
    "camera",
    "laptop",
    "耳机",
    "手机",
    "手表",
    "球鞋",
    "香水",
    "护肤",
    "相机",
    "电脑",
)
# Words that make a sentence a request to the crew ("make a 20-second film ...") rather than something on screen.
REQUEST_CUES = (
    "film",
    "video",
    "commercial",
    "advert",
    "spot",
    "make",
    "create",
    "second",
    "storyboard",
    "短片",
    "视频",
    "广告片",
    "拍",
    "制作",
    "秒",
)
META_WORDS = re.compile(
    r"\b(?:instagram|tiktok|douyin|youtube|reels|shorts|xiaohongshu|for|and|or|on|the|a|an|vertical|horizontal|"
    r"square|suitable|optimi[sz]ed|posting|platforms?|\d+(?:-second)?s?|seconds?|format)\b|"
    r"抖音|小红书|快手|视频号|竖屏|横屏|适合|用于|投放|平台|\d+秒|[\W_]",
    re.IGNORECASE,
)
TEXT_CUES = (
    "slogan",
    "tagline",
    "text",
    "title",
    "caption",
    "sign",
    "reads",
    "says",
    "logo",
    "words",
    "headline",
    "标语",
    "口号",
    "文字",
    "字样",
    "写着",
    "广告语",
    "标题",
)
SPEECH_CUES = ("said", "asks", "asked", "replied", "whisper", "shout", "说道", "问道", "喊")
_QUOTED = re.compile(r"“([^”]{1,60})”|\"([^\"]{1,60})\"|「([^」]{1,60})」|『([^』]{1,60})』")
_PRICE = re.compile(r"[¥￥$€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:元|块|RMB|USD)")


@cache
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    """One regex per cue list: English cues match at a word start (so 'celebrat' finds 'celebration'), Chinese
    cues anywhere (Chinese has no spaces between words)."""
    return re.compile("|".join(rf"\b{re.escape(c)}" if c.isascii() else re.escape(c) for c in cues))


def _has(text: str, cues: tuple[str, ...]) -> bool:
    return bool(_cue_pattern(cues).search(text.lower()))


def _shorten(text: str, limit: int) -> str:
    """Cut long text at a word boundary (anywhere for Chinese) and mark the cut with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut and not _CJK.search(cut[-1]):
        cut = cut.rsplit(" ", 1)[0]
    return _trim(cut) + "…"


def _first_cue(table: list[tuple[str, tuple[str, ...]]], text: str) -> str | None:
    return next((name for name, cues in table if _has(text, cues)), None)


@lru_cache(maxsize=512)  # coverage shots of one beat ask again with the same text
def _look(*texts: str) -> tuple[str, str] | None:
    """(lighting, mood) from the first text that names a look, or None."""
    for text in texts:
        for cues, lighting, mood in LOOKS:
            if text and _has(text, cues):
                return lighting, mood
    return None


@lru_cache(maxsize=512)
def find_expected_text(sentence: str) -> str | None:
    """On-image text a sentence asks for: prices, and quoted words when the sentence talks about text on screen
    (or when the quote is short and nobody is saying it)."""
    found: list[str] = []
    for m in _QUOTED.finditer(sentence):
        quote = next(g for g in m.groups() if g).strip()
        short = len(quote.split()) <= 6 if not _CJK.search(quote) else len(quote) <= 12
        if quote and (_has(sentence, TEXT_CUES) or (short and not _has(sentence, SPEECH_CUES))):
            found.append(quote)
    for m in _PRICE.finditer(sentence):
        if not any(m.group(0).strip() in f for f in found):
            found.append(m.group(0).strip())
    return " ".join(found) or None


def product_phrase(text: str) -> str | None:
    """The product a brief is about, e.g. 'wireless noise-cancelling headphones', or None."""
    for m in re.finditer(
        r"\b(?:for|of|introducing|launching|featuring|showcasing)\s+(?:(?:the|our|a|an|new|its)\s+)*"
        r"([^,.;:!?\n]{3,60})",
        text,
        re.IGNORECASE,
    ):
        phrase = re.split(r"\s+(?:for|on|in|with|to|that|which)\s+", m.group(1))[0].strip()
        if phrase and META_WORDS.sub("", phrase).strip() and not re.match(r"\d", phrase):
            return phrase
    if m := re.search(r"(?:为|给)(?:我们的|我们|一款|这款)?(.{2,16}?)(?:拍|做|制作|打造|设计)", text):
        return m.group(1)
    return None


def is_product_brief(text: str) -> bool:
    """True when the brief sells something: product words, a price, or a film requested about a product noun."""
    return bool(
        _has(text, PRODUCT_CUES)
        or _PRICE.search(text)
        or (_has(text, PRODUCT_NOUNS) and _has(text, REQUEST_CUES))
    )


def _is_meta(text: str) -> bool:
    """A clause about the deliverable only (platforms, length), with nothing to film."""
    rest = META_WORDS.sub("", text)
    return len(re.findall(r"[A-Za-z]{2,}", rest)) + len(_CJK.findall(rest)) / 2 < 1


def _title(brief: Brief, beats: list[Beat]) -> str:
    first = beats[0].scene or beats[0].text if beats else brief.text
    first = first.strip(" #.。")
    first = first[:1].upper() + first[1:]
    limit = 24 if brief.lang == "zh" else 60
    if len(first) <= limit:
        return first
    cut = first[:limit]
    if brief.lang == "en" and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,，、") + "…"


def _orientation(width: int, height: int) -> str:
    return "vertical" if height > width * 1.05 else "horizontal" if width > height * 1.05 else "square"


def _setting(scene: str) -> str:
    """A slugline's words as a prompt fragment: 'COFFEE SHOP - NIGHT' -> 'coffee shop, night'."""
    return ", ".join(p.strip().lower() for p in re.split(r"\s+[-–—]\s+|\s{2,}", scene) if p.strip())


# --------------------------------------------------------------------------------------------------------------
# Offline planner: timing


def _total_seconds(settings, n: int) -> float:
    total = settings.film_seconds()
    if total < MIN_SHOT_SECONDS * n - 1e-9:
        raise PlanError(
            f"{n} shots of at least {MIN_SHOT_SECONDS} s need {MIN_SHOT_SECONDS * n:g} s, but the film "
            f"is {total:g} s. Raise --duration or lower --shots."
        )
    return total


def allocate_durations(weights: list[float], total: float) -> list[float]:
    """Seconds per shot in tenths, proportional to `weights`, each at least MIN_SHOT_SECONDS, summing to `total`."""
    floor = round(MIN_SHOT_SECONDS * 10)
    tenths = _allocate(weights, round(total * 10) - floor * len(weights) + len(weights), 1)
    return [(t - 1 + floor) / 10 for t in tenths]


# --------------------------------------------------------------------------------------------------------------
# Offline planner


def plan_offline(brief: Brief, settings, notes: list[str] | None = None) -> Storyboard:
    """The deterministic planner: same brief and settings (seed included), same storyboard."""
    rng = random.Random(settings.seed)
    n = settings.shot_count()
    total = _total_seconds(settings, n)
    lang = brief.lang
    if settings.lang and settings.lang != brief.lang:
        note = (
            f"subtitles stay in {brief.lang}, the brief's language: the offline planner does not translate; "
            f"use --planner llm to have them written in {settings.lang}"
        )
        log.warning(note)
        if notes is not None:
            notes.append(note)

    beats = split_beats(brief.text)
    # Clauses about the deliverable ("for Instagram and TikTok") are not things to film.
    kept = []
    for beat in beats:
        clauses = split_clauses(beat.text)
        filmable = [c for c in clauses if not _is_meta(c)]
        if filmable:
            text = beat.text if len(filmable) == len(clauses) else _trim(_join(filmable))
            kept.append(Beat(text, beat.scene, beat.scene_index, beat.speaker))
    kept = kept or beats
    units = fit_units(kept, n)
    product = None
    if is_product_brief(brief.text):
        product = product_phrase(brief.text) or ("the product" if lang == "en" else "产品")

    _assign_kinds(units, product, rng)
    brief_look = _look(brief.text) or DEFAULT_LOOK
    weights, shots = [], []
    for unit in units:
        base = {"establishing": 1.2, "hero": 1.3, "insert": 0.8, "detail": 0.8}.get(unit.kind, 1.0)
        reading = len(unit.text) / (6 if _CJK.search(unit.text) else 15) if unit.coverage == 0 else 0
        weights.append(base * (1 + 0.25 * min(2.0, reading / SECONDS_PER_SHOT)))
    durations = allocate_durations(weights, total)

    texts_seen: set[str] = set()
    for i, (unit, seconds) in enumerate(zip(units, durations, strict=True), start=1):
        # A request to the crew ("a launch film for ...") is filmed as coverage of the product it names.
        request = bool(product) and _has(unit.text, REQUEST_CUES) and not unit.speaker
        found = find_expected_text(unit.text)
        # A line about text on screen ("end on the slogan ...") directs the crew: its shots show the product and
        # the text goes on the beat's last shot; text that is part of the action goes on the beat's first shot.
        direction = bool(found and _has(unit.text, TEXT_CUES + DIRECTION_CUES))
        request = request or (direction and bool(product))
        carries = unit.last if direction else unit.coverage == 0
        expect = found if carries else None
        subject = (product if request and product else unit.text).strip()
        if request:
            description = KIND_DESCRIPTION[lang][unit.kind].format(subject=subject)
        elif unit.coverage:
            description = COVERAGE_NOTE[lang].format(text=unit.text, kind=KIND_NAMES[lang][unit.kind])
        else:
            description = (
                unit.text
                if not unit.speaker
                else f"{unit.speaker}{'：' if lang == 'zh' else ': '}{unit.text}"
            )
        if expect in texts_seen:
            expect = None
        texts_seen.add(expect or "")
        if request:
            subtitle = expect or (subject if product and i == len(units) else "")
        elif unit.coverage:
            subtitle = ""
        else:
            # A shot that covers several sentences shows the first; a subtitle must be readable in its time.
            subtitle = _shorten(split_sentences(unit.text)[0], SUBTITLE_CHARS[lang])
        lighting, mood = _look(unit.text, unit.scene) or brief_look
        description = _shorten(description, 320)
        subject = _shorten(subject, 240)
        camera = f"{FRAMING[unit.kind]}, {MOTION_WORDS[unit.motion]}"
        variables = {
            "framing": FRAMING[unit.kind].split(",")[0].capitalize(),
            "subject": subject.rstrip(".!?。！？ "),  # the template ends the sentence
            "setting": _setting(unit.scene),
            "product": product if product and product not in subject else "",
            "camera": camera,
            "lighting": lighting,
            "mood": mood,
            "expect_text": expect or "",
            "style": settings.style,
            "orientation": _orientation(settings.width, settings.height).capitalize(),
            "kind": unit.kind,
        }
        shots.append(
            Shot(
                id=f"s{i:02d}",
                index=i,
                kind=unit.kind,
                description=description,
                camera=camera,
                lighting=lighting,
                mood=mood,
                duration=seconds,
                subtitle=subtitle.strip(),
                expect_text=expect,
                motion=unit.motion,
                prompt=render_line("shot_prompt.j2", **variables),
                negative_prompt=render_line("negative_prompt.j2", **variables),
            )
        )
    # Requested text that landed in no shot (its sentence was merged away) goes on the last shot.
    wanted = find_expected_text(brief.text)
    if wanted and not any(s.expect_text for s in shots):
        last = shots[-1]
        variables.update(expect_text=wanted, kind=last.kind)
        shots[-1] = last.model_copy(
            update={
                "expect_text": wanted,
                "prompt": render_line("shot_prompt.j2", **variables),
                "negative_prompt": render_line("negative_prompt.j2", **variables),
            }
        )
    return Storyboard(
        title=_title(brief, kept),
        lang=lang,
        style=settings.style,
        width=settings.width,
        height=settings.height,
        planner="offline",
        shots=shots,
    )


def _assign_kinds(units: list[Unit], product: str | None, rng: random.Random) -> None:
    """The shot grammar: establish, vary the sizes without repeating one back to back, close the film."""
    cycle = ["medium", "close-up", "wide", "insert", "medium", "detail"]
    offset = rng.randrange(len(cycle))
    coverage_cycle = ["close-up", "detail", "medium", "insert", "wide"]
    previous = None
    for i, unit in enumerate(units):
        last = i == len(units) - 1 and len(units) >= 3
        if i == 0:
            kind = "hero" if len(units) == 1 and product else "establishing"
        elif last:
            kind = "hero" if product else "wide"
        elif unit.scene_index != units[i - 1].scene_index:
            kind = "establishing" if unit.scene else "wide"
        elif unit.coverage:
            kind = coverage_cycle[(unit.coverage - 1 + offset) % len(coverage_cycle)]
        elif unit.speaker:
            kind = "over-the-shoulder" if previous == "close-up" else "close-up"
        else:
            kind = _first_cue(KIND_CUES, unit.text) or cycle[(i + offset) % len(cycle)]
        if kind == previous and not (i == 0 or last):
            kind = next(k for k in cycle[(i + offset) % len(cycle) :] + cycle if k != previous)
        unit.kind = kind
        if last:
            unit.motion = "push-in" if kind == "hero" else "pull-out"
        else:
            unit.motion = _first_cue(MOTION_CUES, unit.text) or rng.choice(DEFAULT_MOTIONS[kind])
        previous = kind


# --------------------------------------------------------------------------------------------------------------
# LLM planner


class PlannedShot(BaseModel):
    """One shot as the language model writes it. Ids and positions are the program's, so the model gives none."""

    model_config = ConfigDict(extra="forbid")

    kind: ShotKind = Field(description="Shot size or role from the shot grammar.")
    description: str = Field(description="What the shot shows, in one or two sentences.")
    camera: str = Field(description="Framing, lens and movement, e.g. 'close-up, 85mm, slow push-in'.")
    lighting: str = Field(description="Lighting, e.g. 'soft window light, warm key'.")
    mood: str = Field(description="Mood in a few words.")
    motion: Motion = Field(description="Camera motion used to animate the still.")
    duration: float = Field(description="Seconds on screen.")
    subtitle: str = Field(description="One short subtitle line in the film's language; empty for none.")
    prompt: str = Field(description="Detailed English image prompt for a text-to-image model.")
    negative_prompt: str = Field(description="What the image must not show.")
    expect_text: str | None = Field(description="Exact on-image text the shot must show, or null.")


class PlannedStoryboard(BaseModel):
    """The storyboard as the language model writes it. Validation context: `shots` (count) and `lang`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="A short title for the film.")
    shots: list[PlannedShot] = Field(description="The shots in film order.")

    @model_validator(mode="after")
    def _matches_request(self, info: ValidationInfo) -> PlannedStoryboard:
        context = info.context or {}
        if (n := context.get("shots")) and len(self.shots) != n:
            raise ValueError(f"expected exactly {n} shots, got {len(self.shots)}")
        lang = context.get("lang")
        for i, shot in enumerate(self.shots, start=1):
            if (
                shot.subtitle.strip()
                and lang
                and detect_lang(shot.subtitle) != lang
                and _has_letters(shot.subtitle)
            ):
                raise ValueError(f"shot {i}: subtitle {shot.subtitle!r} is not in {LANGUAGE_NAMES[lang]}")
            if not shot.prompt.strip():
                raise ValueError(f"shot {i}: prompt is empty")
        return self


LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}


def _has_letters(text: str) -> bool:
    return bool(_LATIN.search(text) or _CJK.search(text))


def _schema() -> dict:
    """The JSON schema sent as `response_format`: every field required, no extra keys (what strict mode needs)."""
    return PlannedStoryboard.model_json_schema()


def _content_json(content: str) -> str:
    """The JSON inside an answer; servers that ignore `response_format` often wrap it in a ```json fence."""
    if m := re.search(r"```(?:json)?\s*(.*?)```", content, re.DOTALL):
        return m.group(1).strip()
    return content.strip()


def _endpoint_down(settings, why: str) -> PlanError:
    return PlanError(
        f"the planning endpoint at {settings.llm_base_url} did not answer ({why}); "
        "check --llm-base-url or use --planner offline"
    )


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"


def plan_llm(brief: Brief, settings) -> Storyboard:
    """Plan through an OpenAI-compatible chat endpoint with a JSON-schema response format.

    The answer is validated with pydantic here rather than by `client.chat.completions.parse`, because a bad answer
    must be shown back to the model with its validation error (parse raises and drops it), and because compatible
    servers that ignore `response_format` may wrap the JSON in a code fence. Transport failures (connection,
    timeout, 5xx, 429) are retried by the client itself `llm_retries` times; invalid answers are retried here
    `llm_retries` times; then PlanError.
    """
    import openai  # heavy enough to keep off the import path of the offline planner

    n = settings.shot_count()
    total = _total_seconds(settings, n)
    lang = settings.lang or brief.lang
    schema = _schema()
    variables = {
        "shots": n,
        "duration": f"{total:g}",
        "width": settings.width,
        "height": settings.height,
        "orientation": _orientation(settings.width, settings.height),
        "style": settings.style,
        "product": is_product_brief(brief.text),
        "kinds": ", ".join(SHOT_KINDS),
        "motions": ", ".join(MOTIONS),
        "min_duration": MIN_SHOT_SECONDS,
        "language": LANGUAGE_NAMES[lang],
        "schema": json.dumps(schema, ensure_ascii=False),
    }
    messages: list[dict] = [
        {"role": "system", "content": render("planner_system.j2", **variables)},
        {
            "role": "user",
            "content": render("planner_user.j2", brief=brief.text, language=LANGUAGE_NAMES[brief.lang]),
        },
    ]
    # Local servers (vLLM, SGLang, Ollama, llama.cpp) take any key; the client insists on one being set.
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "EMPTY"
    client = openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_retries,
    )
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "storyboard", "schema": schema, "strict": True},
    }
    error = ""
    for attempt in range(1, settings.llm_retries + 2):
        try:
            completion = client.chat.completions.create(
                model=settings.llm_model,
                messages=messages,
                response_format=response_format,
                seed=settings.seed,
                temperature=0.7,
            )
        except openai.APITimeoutError:
            raise _endpoint_down(
                settings, f"no answer within {settings.llm_timeout:g} s, {settings.llm_retries + 1} tries"
            ) from None
        except openai.APIConnectionError as exc:
            raise _endpoint_down(
                settings, f"connection failed: {_first_line(exc.__cause__ or exc, 160)}"
            ) from None
        except openai.AuthenticationError:
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} rejected the API key; set "
                "CD_LLM_API_KEY (or OPENAI_API_KEY) or use --planner offline"
            ) from None
        except openai.NotFoundError as exc:
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} has no model {settings.llm_model!r} "
                f"or no chat route ({_first_line(exc.message, 160)}); check --llm-model and "
                "--llm-base-url"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise _endpoint_down(
                    settings,
                    f"HTTP {exc.status_code} after {settings.llm_retries + 1} tries: "
                    f"{_first_line(exc.message, 160)}",
                ) from None
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} refused the request "
                f"(HTTP {exc.status_code}: {_first_line(exc.message, 200)})"
            ) from None
        if not completion.choices:
            error = "the answer had no choices"
            continue
        message = completion.choices[0].message
        if getattr(message, "refusal", None):
            raise PlanError(f"the planning model refused the brief: {_first_line(message.refusal)}")
        content = message.content or ""
        try:
            planned = PlannedStoryboard.model_validate_json(
                _content_json(content), context={"shots": n, "lang": lang}
            )
        except ValidationError as exc:
            error = _validation_summary(exc)
            log.warning("planner answer %d of %d was invalid: %s", attempt, settings.llm_retries + 1, error)
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": render("planner_repair.j2", error=error)},
            ]
            continue
        return _storyboard_from(planned, settings, lang, total)
    raise PlanError(
        f"the planning model at {settings.llm_base_url} gave no valid storyboard in "
        f"{settings.llm_retries + 1} tries; last error: {error}. Try another --llm-model, raise "
        "--llm-retries, or use --planner offline"
    )


def _validation_summary(exc: ValidationError, limit: int = 8) -> str:
    """The validation errors in a few lines a model (and a person) can act on."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(x) for x in err["loc"]) or "answer"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _storyboard_from(planned: PlannedStoryboard, settings, lang: str, total: float) -> Storyboard:
    """Program ids and positions, durations rescaled to the film's length, nothing else changed."""
    durations = allocate_durations([max(0.1, float(s.duration)) for s in planned.shots], total)
    shots = [
        Shot(
            id=f"s{i:02d}",
            index=i,
            kind=s.kind,
            description=s.description.strip(),
            camera=s.camera.strip(),
            lighting=s.lighting.strip(),
            mood=s.mood.strip(),
            duration=d,
            subtitle=s.subtitle.strip(),
            prompt=s.prompt.strip(),
            negative_prompt=s.negative_prompt.strip(),
            expect_text=(s.expect_text or "").strip() or None,
            motion=s.motion,
        )
        for i, (s, d) in enumerate(zip(planned.shots, durations, strict=True), start=1)
    ]
    title = " ".join(planned.title.split())[:80] or "Untitled"
    return Storyboard(
        title=title,
        lang=lang,
        style=settings.style,
        width=settings.width,
        height=settings.height,
        planner=f"llm:{settings.llm_model}",
        shots=shots,
    )


# --------------------------------------------------------------------------------------------------------------
# Choosing the planner


def _llm_missing(settings) -> str | None:
    """Which flag the LLM planner still needs, or None when it is configured."""
    if not settings.llm_base_url:
        return "--llm-base-url (or CD_LLM_BASE_URL)"
    if not settings.llm_model:
        return "--llm-model (or CD_LLM_MODEL)"
    return None


def planner_description(settings) -> str:
    """One plain line for the startup banner: which planner plans and why. Never shows the API key."""
    missing = _llm_missing(settings)
    where = f"{settings.llm_model} at {settings.llm_base_url}"
    if settings.planner == "offline":
        return "planner: offline (deterministic rules; --planner offline)"
    if settings.planner == "llm":
        if missing:
            return f"planner: llm, but not configured: set {missing}"
        return f"planner: llm ({where}; --planner llm, fails if the endpoint does not answer)"
    if missing:
        return f"planner: offline (--planner auto and no endpoint configured: {missing} not set)"
    return f"planner: llm ({where}; --planner auto, falls back to offline if it does not answer)"


def plan_storyboard(brief: Brief, settings, notes: list[str] | None = None) -> Storyboard:
    """Plan the storyboard with the backend the settings choose.

    `notes`, when given, receives one line per thing the caller should tell the person (a fallback to the offline
    planner under `--planner auto`, subtitles kept in the brief's language); each is also logged.
    """
    missing = _llm_missing(settings)
    if settings.planner == "offline":
        return plan_offline(brief, settings, notes)
    if settings.planner == "llm":
        if missing:
            raise PlanError(f"--planner llm needs a chat endpoint: set {missing}, or use --planner offline")
        return plan_llm(brief, settings)
    if missing:
        reason = f"planner auto: no chat endpoint configured ({missing} not set), planning offline"
    else:
        try:
            return plan_llm(brief, settings)
        except PlanError as exc:
            reason = f"planner auto: {exc}; planning offline instead"
    log.warning(reason)
    if notes is not None:
        notes.append(reason)
    return plan_offline(brief, settings, notes)
