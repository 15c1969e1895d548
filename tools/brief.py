"""Reading the brief: decode and validate it (`read_brief`), and read what its words ask for
(`read_brief_settings`): the film's length, platforms, format, language, the product and its kind, and the copy
(slogans, price, call to action, claims).

    brief = read_brief(text, source="brief.md")     # BriefError on empty, oversized or binary input
    brief.reading.duration, brief.reading.platforms  # 15.0, ["instagram", "tiktok"]

The reading is by rules, for English and Chinese. A sentence that only speaks about the deliverable ("A
12-second Xiaohongshu clip for a handmade ceramic coffee mug") is meta: `is_meta_sentence` says so, and the
planner never films or subtitles it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Literal

from tools.film import Brief, BriefReading
from tools.subject_words import PRODUCT_KINDS, first_product_word, subject_hits

__all__ = [
    "MAX_BRIEF_CHARS",
    "PLATFORM_NAMES",
    "BriefError",
    "detect_lang",
    "Subject",
    "find_claims",
    "find_subject",
    "has_cue",
    "is_meta_sentence",
    "read_brief",
    "read_brief_settings",
]

MAX_BRIEF_CHARS = 20_000
# Share of junk characters (controls, unassigned code points, U+FFFD) above which input is called binary.
MAX_JUNK_SHARE = 0.05
# The platform presets of the run settings (agent/settings.py PLATFORMS); tools/ does not import agent/.
PLATFORM_NAMES = ("instagram", "tiktok", "douyin", "reels", "shorts", "youtube", "xiaohongshu")

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
LATIN = re.compile(r"[A-Za-z]")


class BriefError(ValueError):
    """The brief cannot be used; the message says what is wrong and what to do."""


def detect_lang(text: str) -> Literal["en", "zh"]:
    """`zh` when CJK ideographs are at least a quarter of the letters, else `en`.

    One ideograph carries about as much as an English word of ~4 letters, so a quarter keeps an English brief that
    names a Chinese brand English and a Chinese brief that names an English product Chinese.
    """
    cjk = len(CJK.findall(text))
    latin = len(LATIN.findall(text))
    return "zh" if cjk and cjk / (cjk + latin) >= 0.25 else "en"


def _is_junk(ch: str) -> bool:
    if ch in "\n\t\r":
        return False
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")


def read_brief(raw: bytes | str, source: str = "argument") -> Brief:
    """Validate and decode a brief, and read it: empty, too long or binary input raises BriefError.

    Accepts bytes (decoded as UTF-8, a byte-order mark is dropped) or str. Line endings become `\\n`; stray
    control characters in otherwise good text are removed because they would end up in subtitles and prompts.
    The returned brief's `reading` holds what `read_brief_settings` found.
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
    return Brief(text=text, lang=detect_lang(text), source=source, reading=read_brief_settings(text))


# --------------------------------------------------------------------------------------------------------------
# Cue words

# What the crew is asked to make. A sentence with one of these and a length, platform or format is about the
# deliverable, not the film's content.
DELIVERABLE_CUES = (
    "film", "video", "clip", "spot", "ad", "advert", "commercial", "teaser", "trailer", "promo", "short film",
    "storyboard", "animatic", "piece", "cut", "reel",
    "短片", "视频", "广告", "宣传片", "片子", "影片", "预告",
)  # fmt: skip
PRODUCT_CUES = (
    "product", "launch", "brand", "commercial", "advert", "ad", "campaign", "catalog", "packag", "price",
    "产品", "新品", "发布", "广告", "品牌", "包装", "售价", "价格",
)  # fmt: skip
SLOGAN_CUES = ("slogan", "tagline", "motto", "strapline", "口号", "标语", "广告语", "slogan")
TEXT_CUES = SLOGAN_CUES + (
    "text", "title", "caption", "sign", "reads", "logo", "words", "headline", "super", "card",
    "文字", "字样", "写着", "标题", "字幕",
)  # fmt: skip
SPEECH_CUES = (
    "said",
    "says",
    "asks",
    "asked",
    "replied",
    "whisper",
    "shout",
    "tells",
    "说",
    "问",
    "喊",
    "道",
)
CTA_CUES = ("call to action", "cta", "行动号召")


@cache
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    """English cues match at a word start (so 'celebrat' finds 'celebration'), Chinese cues anywhere."""
    return re.compile("|".join(rf"\b{re.escape(c)}" if c.isascii() else re.escape(c) for c in cues))


def has_cue(text: str, cues: tuple[str, ...]) -> bool:
    return bool(_cue_pattern(cues).search(text.lower()))


# --------------------------------------------------------------------------------------------------------------
# Length, platforms, format

# Chinese numerals; the chat's shot numbers (agent/chat_numbers.py) read the same table.
ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUM = r"\d+(?:\.\d+)?"
_EN_SECONDS = re.compile(rf"\b({_NUM})\s*-?\s*(?:seconds?|secs?|s)\b", re.IGNORECASE)
_EN_MINUTES = re.compile(rf"\b({_NUM}|one|two|a)\s*-?\s*(?:minutes?|mins?)\b", re.IGNORECASE)
_EN_HALF = re.compile(r"\bhalf[- ]a[- ]minute\b|\bhalf[- ]minute\b|\b30[- ]second\b", re.IGNORECASE)
_ZH_SECONDS = re.compile(r"([\d.]+|[零一二两三四五六七八九十]+)\s*秒")
_ZH_MINUTES = re.compile(r"(半|[\d.]+|[一二两三四五]+)\s*分钟")
# "MAYA (30s, tired nurse)": an age in a character description is not the film's length.
_AGE = re.compile(r"\(\s*\d0s\b|\b(?:in (?:her|his|their) )\d0s\b", re.IGNORECASE)


def _zh_number(text: str) -> float:
    if re.fullmatch(_NUM, text):
        return float(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return float(
            ZH_DIGITS.get(tens, 1) * 10 + ZH_DIGITS.get(ones, 0) if ones else ZH_DIGITS.get(tens, 1) * 10
        )
    return float(sum(ZH_DIGITS[c] * 10**i for i, c in enumerate(reversed(text)) if c in ZH_DIGITS))


_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?。！？；;])\s+|(?<=[.!?][”’\"'」』])\s+(?=[A-Z0-9\u4e00-\u9fff])|(?<=[。！？；])|\n+"
)


def mask_quotes(text: str) -> str:
    """`text` with the sentence marks inside each quotation hidden (same length), so a quoted slogan of two
    sentences ('Hear less. Feel more.') stays in the sentence that gives it. A quote's own last mark is kept:
    the sentence may end there."""
    out = list(text)
    for m in QUOTED.finditer(text):
        inner = m.group(0)[1:-1]
        last = len(inner.rstrip(".!?。！？；;"))
        for i, ch in enumerate(inner[:last]):
            if ch in ".!?。！？；;":
                out[m.start() + 1 + i] = "\u2063"  # invisible separator: no pattern here takes it as a mark
    return "".join(out)


def _sentences(text: str) -> list[str]:
    masked = mask_quotes(text)
    out, start = [], 0
    for m in _SENTENCE_BREAK.finditer(masked):
        out.append(text[start : m.start()])
        start = m.end()
    out.append(text[start:])
    return [s for s in out if s.strip()]


def find_duration(text: str) -> float | None:
    """The film's length in seconds from a sentence that speaks about the deliverable, or None."""
    for sentence in _sentences(text):
        if not (
            has_cue(sentence, DELIVERABLE_CUES) or re.search(r"length|duration|long\b|时长|长度", sentence)
        ):
            continue
        clean = _AGE.sub(" ", sentence)
        found: list[tuple[int, float]] = []
        if m := _EN_HALF.search(clean):
            found.append((m.start(), 30.0))
        for m in _EN_SECONDS.finditer(clean):
            found.append((m.start(), float(m.group(1))))
        for m in _EN_MINUTES.finditer(clean):
            word = m.group(1).lower()
            found.append((m.start(), 60.0 * ({"one": 1, "a": 1, "two": 2}.get(word) or float(word))))
        for m in _ZH_SECONDS.finditer(clean):
            found.append((m.start(), _zh_number(m.group(1))))
        for m in _ZH_MINUTES.finditer(clean):
            found.append((m.start(), 30.0 if m.group(1) == "半" else 60.0 * _zh_number(m.group(1))))
        found = [(at, s) for at, s in found if 1 <= s <= 600]
        if found:
            return min(found)[1]
    return None


# (platform preset, pattern); "Instagram Reels" is reels, "YouTube Shorts" is shorts, not instagram or youtube.
_PLATFORM_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reels", re.compile(r"\b(?:instagram\s+)?reels\b", re.IGNORECASE)),
    ("shorts", re.compile(r"\byoutube\s+shorts\b|\bShorts\b", re.IGNORECASE)),
    ("instagram", re.compile(r"\binstagram\b(?!\s+reels)|\bIG\b|\bins\b", re.IGNORECASE)),
    ("tiktok", re.compile(r"\btik\s?tok\b", re.IGNORECASE)),
    ("douyin", re.compile(r"抖音|\bdouyin\b", re.IGNORECASE)),
    ("xiaohongshu", re.compile(r"小红书|\bxiaohongshu\b|\bred ?note\b", re.IGNORECASE)),
    ("youtube", re.compile(r"\byoutube\b(?!\s+shorts)|油管", re.IGNORECASE)),
)


def find_platforms(text: str) -> list[str]:
    """Platform presets the brief names, in the order it first names them."""
    first: dict[str, int] = {}
    for name, pattern in _PLATFORM_PATTERNS:
        for m in pattern.finditer(text):
            if name == "shorts" and not m.group(0).lower().startswith("youtube") and m.group(0) != "Shorts":
                continue  # "running shorts" are clothes
            first[name] = min(first.get(name, m.start()), m.start())
    return sorted(first, key=first.__getitem__)


_RATIO = re.compile(r"(?<![\d:])(16|9|1|4|3|21)\s*[:：]\s*(9|16|1|5|4|3)(?![\d:])")
_ASPECT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("9:16", ("vertical", "portrait format", "portrait mode", "竖屏", "竖版", "竖向")),
    ("1:1", ("square", "方形", "正方形")),
    ("16:9", ("horizontal", "widescreen", "landscape format", "landscape mode", "横屏", "横版")),
)
_VALID_RATIOS = {"16:9", "9:16", "1:1", "4:5", "3:4", "4:3", "21:9"}


def find_aspect(text: str) -> str | None:
    """The aspect ratio the brief names (a ratio, or a word such as square, vertical, 竖屏), or None."""
    for m in _RATIO.finditer(text):
        if (ratio := f"{m.group(1)}:{m.group(2)}") in _VALID_RATIOS:
            return ratio
    for sentence in _sentences(text):
        if not (has_cue(sentence, DELIVERABLE_CUES) or has_cue(sentence, ("format", "格式", "画幅"))):
            continue
        for ratio, cues in _ASPECT_WORDS:
            if has_cue(sentence, cues) and "times square" not in sentence.lower():
                return ratio
    return None


# --------------------------------------------------------------------------------------------------------------
# Product, subject and copy

QUOTED = re.compile(
    r"“([^”]{1,80})”|\"([^\"]{1,80})\"|「([^」]{1,80})」|『([^』]{1,80})』|‘([^’]{1,80})’|(?<!\w)'([^']{2,80})'(?!\w)"
)
PRICE = re.compile(
    r"[¥￥$€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:元|块|RMB|USD|EUR|dollars|yuan)|(?:RMB|USD)\s?\d[\d,]*"
)
_MEASURE = re.compile(
    r"(?:\d+(?:\.\d+)?|[一二两三四五六七八九十百]+)\s*-?\s*(?:hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?"
    r"|mAh|ml|litres?|liters?|oz|grams?|g|kg|mm|cm|metres?|meters?|m|%|percent|x|degrees?|°C?"
    r"|小时|天|周|个月|年|分钟|毫升|克|公斤|米|倍|度)(?![A-Za-z])",
    re.IGNORECASE,
)
_CLAIM_LEAD = re.compile(
    r"^(?:and|with|that|which|featuring|boasting|offering|it|its|our|the|a|an|show(?:s|ing)?|claims?|"
    r"features?|new|up to|also)\s+",
    re.IGNORECASE,
)
_EN_CTA = re.compile(
    r"\b(?:pre-?order|order|shop|buy|get yours|get it|try it|download|visit|sign up|book|subscribe|"
    r"find (?:it|us)|available)\b[^.!?\n\"“”]{0,40}?(?:\bnow\b|\btoday\b|\bonline\b|\bat [\w.-]+\.\w+|\.com)",
    re.IGNORECASE,
)
_ZH_CTA = re.compile(r"(?:立即|马上|现在|赶快|快来|点击|扫码)[\u4e00-\u9fff]{1,6}")


def _quotes(sentence: str) -> list[str]:
    return [next(g for g in m.groups() if g).strip() for m in QUOTED.finditer(sentence)]


def find_slogans(text: str) -> list[str]:
    """Quoted words the brief asks to show (slogans, taglines, on-screen text), and 'Slogan: …' lines."""
    out: list[str] = []
    for sentence in _sentences(text):
        is_copy = has_cue(sentence, TEXT_CUES)
        for quote in _quotes(sentence):
            short = len(quote.split()) <= 8 if not CJK.search(quote) else len(quote) <= 16
            spoken = has_cue(sentence, SPEECH_CUES) and not is_copy
            if (is_copy or short) and not spoken and quote not in out and not has_cue(quote, CTA_CUES):
                out.append(quote)
        if not _quotes(sentence) and (
            m := re.search(
                r"(?:slogan|tagline|口号|标语|广告语)\s*(?:is)?\s*[:：]\s*([^.。!！\n]{2,60}[.。!！]?)",
                sentence,
                re.I,
            )
        ):
            out.append(m.group(1).strip())
    return out


def find_price(text: str) -> str | None:
    return m.group(0).strip() if (m := PRICE.search(text)) else None


def find_cta(text: str) -> str | None:
    """The call to action: a quoted or labelled one ('call to action: Order now'), else an imperative
    'Order now' / 'Shop at mugs.com' / '立即购买'."""
    for sentence in _sentences(text):
        if has_cue(sentence, CTA_CUES):
            if quotes := _quotes(sentence):
                return quotes[-1]
            if m := re.search(r"(?:call to action|cta|行动号召)\s*(?:is)?\s*[:：]\s*(.+)", sentence, re.I):
                return m.group(1).strip().rstrip(".。")
    for sentence in _sentences(text):
        if m := _EN_CTA.search(sentence):
            cta = sentence[m.start() :].strip(' .!。"”')[:60]
            return cta[:1].upper() + cta[1:]
    if m := _ZH_CTA.search(text):
        return m.group(0)
    return None


def find_claims(text: str) -> list[str]:
    """Product claims with a measure: '40-hour battery', 'keeps drinks cold for 24 hours', '续航40小时'."""
    out: list[str] = []
    for sentence in _sentences(text):
        if is_meta_sentence(sentence):
            continue
        for clause in re.split(r"[,，;；:：、()（）]|\s[—–-]\s|—|\band\b|\.\s|\.$", sentence):
            clause = clause.strip(" .。!！?？")
            if not _MEASURE.search(clause) or PRICE.search(clause) or _EN_SECONDS.search(clause):
                continue
            for quote in _quotes(clause):
                clause = quote
            while (stripped := _CLAIM_LEAD.sub("", clause)) != clause:
                clause = stripped
            if 2 < len(clause) <= 60 and clause not in out:
                out.append(clause.strip("“”\"'「」 "))
    return out


_EN_PRODUCT = re.compile(
    r"\b(?:for|of|introducing|launching|featuring|showcasing|about)\s+(?:(?:the|our|a|an|new|its|my|their)\s+)*"
    r"([^,.;:!?\n]{3,60})",
    re.IGNORECASE,
)
_ZH_PRODUCT = (
    re.compile(r"(?:为|给)(?:我们的|我们|一款|这款|新款的)?(.{2,16}?)(?:拍|做|制作|打造|设计|写)"),
    re.compile(r"(?:关于|介绍)(?:一款|这款)?(.{2,14}?)的"),
    re.compile(
        r"(?:一款|这款)(.{2,14}?)的(?:[\d一二三四五六七八九十]+秒的?)?(?:\w{0,4})(?:广告|短片|视频|宣传片)"
    ),
)
_META_WORD = re.compile(
    r"\b(?:instagram|tiktok|douyin|youtube|reels|shorts|xiaohongshu|vertical|horizontal|square|platforms?|"
    r"\d+(?:-second)?s?|seconds?|format|film|video|clip|spot|ad|teaser|launch)\b",
    re.IGNORECASE,
)


def find_product(text: str, product_brief: bool) -> str | None:
    """The product a brief is about ('wireless noise-cancelling headphones', '新款降噪耳机'), or None."""
    if not product_brief:
        return None
    for m in _EN_PRODUCT.finditer(text):
        phrase = re.split(r"\s+(?:for|on|in|with|to|that|which|called|named)\s+|\s[—–-]\s", m.group(1))[
            0
        ].strip()
        if phrase and _META_WORD.sub("", phrase).strip(" -") and not re.match(r"\d", phrase):
            if not re.fullmatch(
                r"(?:instagram|tiktok|youtube|reels|shorts|douyin|xiaohongshu)(?:\s.*)?", phrase, re.I
            ):
                return phrase
    for pattern in _ZH_PRODUCT:
        if m := pattern.search(text):
            return m.group(1)
    return None


@dataclass(frozen=True)
class Subject:
    """What a film that is about one thing shows: the thing ('paper boat'), where it is ('rainy street'), and the
    word that joins them ('on'); `phrase` is the brief's own words for both ('a paper boat on a rainy street')."""

    subject: str
    setting: str | None
    joiner: str
    phrase: str


_EN_ABOUT = re.compile(
    r"\b(?:about|of|showing|featuring|following|starring|depicting|on)\s+(.{3,90}?)\s*[.!?]*$|[:：—]\s*(.{3,90}?)\s*[.!?。！？]*$",
    re.IGNORECASE,
)
_EN_PLACE = re.compile(
    r"\s+(on|in|at|under|by|through|along|across|beside|near|inside|outside|among|over|against|during|"
    r"floating on|drifting down|drifting on|sailing on)\s+",
    re.IGNORECASE,
)
_EN_DETERMINER = re.compile(r"^(?:(?:a|an|the|one|some|our|my|their|his|her|this|that)\s+)+", re.IGNORECASE)
_ZH_ABOUT = re.compile(r".*(?:讲述|讲|关于|记录|展现|描绘|拍摄|拍|呈现|[:：])\s*(.{2,30}?)[。！？.!]*$")
_ZH_MEASURE = re.compile(r"^(?:[一两几]?(?:只|个|艘|条|位|名|辆|棵|座|朵|把|台|部|杯|片|群|对|张|本))")
_ZH_PLACE_END = re.compile(r"(?<=..)[上里中下内]$")


def find_subject(text: str) -> Subject | None:
    """The one thing a film is about when the brief says it in its meta sentence ('a 6-second film about a paper
    boat on a rainy street', '一部6秒的短片，讲雨中街道上的一只纸船'), or None. The words that ask for the film are
    never the subject: only what follows 'about' / 'of' / a colon, split at a word of place."""
    for sentence in _sentences(text):
        if not is_meta_sentence(sentence):
            continue
        clean = PRICE.sub(" ", sentence).strip()
        if CJK.search(clean):
            if not (m := _ZH_ABOUT.search(clean)):
                continue
            phrase = m.group(1).strip(" ，,")
            place, of, thing = phrase.rpartition("的")
            thing = _ZH_MEASURE.sub("", thing.strip()) if thing.strip() else ""
            place = _ZH_MEASURE.sub("", place.strip()) if of else ""
            if m := re.match(
                r"在(.+)[上里中内下边旁]", place
            ):  # 在雪地里奔跑: the place, not what it does there
                place = m.group(1)
            place = _ZH_PLACE_END.sub("", place)
            if 1 <= len(thing) <= 12 and not is_meta_sentence(thing) and not re.search(r"\d|秒|分钟", thing):
                return Subject(thing, place or None, "", phrase)
            continue
        if not (m := _EN_ABOUT.search(clean)):
            continue
        phrase = (m.group(1) or m.group(2)).strip(" ,")
        head = re.split(r",|\s[—–-]\s|\s+(?:that|which|who|where|as|while|and then)\s+", phrase)[0]
        parts = _EN_PLACE.split(head, maxsplit=1)
        thing = _EN_DETERMINER.sub("", parts[0]).strip()
        place = _EN_DETERMINER.sub("", parts[2]).strip() if len(parts) == 3 else ""
        if (
            thing
            and len(thing.split()) <= 5
            and not _META_WORD.fullmatch(thing)
            and not find_platforms(thing)
            and not re.search(r"\d", thing)
        ):
            joiner = parts[1].lower() if place else ""
            return Subject(thing, place or None, joiner, phrase)
    return None


def find_subject_kind(text: str, people_first: bool = False) -> str | None:
    """The first kind of subject the text names; a story (`people_first`) is about its people before its props."""
    hits = subject_hits(text.lower())
    kinds = sorted(hits, key=lambda k: k != "person") if people_first else hits
    return next(iter(kinds), None)


def _names_a_product(text: str) -> bool:
    return any(kind in PRODUCT_KINDS for kind in subject_hits(text.lower()))


def is_product_brief(text: str) -> bool:
    """True when the brief sells something: product words, a price, or a film asked for about a product noun."""
    return bool(
        has_cue(text, PRODUCT_CUES)
        or PRICE.search(text)
        or (_names_a_product(text) and has_cue(text, DELIVERABLE_CUES))
        or (has_cue(text, DELIVERABLE_CUES) and re.search(r"\bfor (?:the |our )?[A-Z][\w-]+ [a-z]", text))
        or (find_cta(text) and find_claims(text))
    )


def is_meta_sentence(sentence: str) -> bool:
    """A sentence about the deliverable: it names what to make (film, clip, 短片) and its length, platform or
    format ('A 12-second Xiaohongshu clip for a handmade ceramic coffee mug', '15秒的抖音短片')."""
    if not has_cue(sentence, DELIVERABLE_CUES):
        return False
    clean = _AGE.sub(" ", sentence)
    return bool(
        find_platforms(clean)
        or _EN_SECONDS.search(clean)
        or _EN_MINUTES.search(clean)
        or _ZH_SECONDS.search(clean)
        or _ZH_MINUTES.search(clean)
        or find_aspect(clean)
        or re.match(
            r"^\W*(?:make|create|write|shoot|produce|plan|design|give me|we need|i need|拍|做|制作|为|给)",
            clean,
            re.I,
        )
        or re.match(
            r"^\W*(?:an?|the|our)\s+(?:[\w-]+\s+){0,3}(?:film|video|clip|spot|ad|advert|commercial|teaser|trailer|promo)\s+(?:for|about|of)\b",
            clean,
            re.I,
        )
    )


def read_brief_settings(text: str) -> BriefReading:
    """What the brief's words ask for, by rules (English and Chinese). Fields not named stay None or empty."""
    product_brief = is_product_brief(text)
    product = find_product(text, product_brief)
    if product_brief and not product:
        product = first_product_word(text.lower())
    about = None if product_brief else find_subject(text)
    return BriefReading(
        duration=find_duration(text),
        platforms=find_platforms(text),
        aspect=find_aspect(text),
        lang=detect_lang(text),
        product=product or (about.subject if about else None),
        setting=about.setting if about else None,
        subject_kind=find_subject_kind(product or (about.subject if about else text), not product_brief),
        slogans=find_slogans(text),
        price=find_price(text),
        cta=find_cta(text),
        claims=find_claims(text),
    )
