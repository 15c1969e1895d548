"""The offline chat interpreter: one message in English or Chinese → one director's operation and its arguments.

Deterministic rules over the words people use: shot numbers as digits, words, ordinals and Chinese numerals
(第三个, 三号镜头, 最后一个), the shot grammar's sizes, times of day, camera moves, platforms, lengths, style words.
A request that names a change but not which shot gets a question; anything else it cannot place gets a short
reply saying what it can do. It never guesses a change it is not sure of: a question costs a turn, a wrong
change costs the person's trust.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from agent.chat_numbers import _cut, number, shot_refs
from agent.chat_words import (
    ADD_EN,
    ADD_ZH,
    APPROVE,
    DESCRIBE_EN,
    DESCRIBE_ZH,
    EN_ORDINALS,
    END_WORDS,
    EVERY,
    FILLER_EN,
    HELP,
    IMAGE_PATH,
    KINDS,
    LANGS,
    LOOK_WORDS,
    MINUTES,
    MOODS,
    MOTIONS,
    PLATFORMS,
    QUOTED,
    RELATIVE_LIGHT,
    SECONDS,
    SHOW,
    START_WORDS,
    STATUS,
    STYLES,
    UNDO,
)


@dataclass
class Parsed:
    """The interpretation of one message: an operation with arguments, or a question, or a refusal."""

    op: str | None = None
    args: dict = field(default_factory=dict)
    question: str | None = None
    refusal: str | None = None


_CJK = re.compile(r"[\u4e00-\u9fff]")
EN_ORDINALS |= {"opening": 1, "final": -1, "last": -1, "closing": -1}


def _find(text: str, low: str, table) -> list[tuple[str, tuple[int, int]]]:
    """Every (value, span) of a table's phrases in the message: English as words, Chinese as substrings."""
    hits, taken = [], []
    for row in table:
        value, phrases = row[0], [*row[1], *(row[2] if len(row) > 2 else ())]
        for phrase in sorted(phrases, key=len, reverse=True):
            pattern = (
                rf"(?<![A-Za-z0-9-]){re.escape(phrase)}(?![A-Za-z0-9-])"
                if phrase.isascii()
                else re.escape(phrase)
            )
            for m in re.finditer(pattern, low if phrase.isascii() else text):
                if not any(a < m.end() and m.start() < b for a, b in taken):
                    hits.append((value, m.span()))
                    taken.append(m.span())
    return sorted(hits, key=lambda h: h[1][0])


def _first(text, low, table) -> str | None:
    hits = _find(text, low, table)
    return hits[0][0] if hits else None


def _has(low: str, *words: str) -> bool:
    return any(
        re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", low) if w.isascii() else w in low for w in words
    )


def _quoted(text: str) -> str | None:
    m = QUOTED.search(text)
    return next(g for g in m.groups() if g).strip() if m else None


def _seconds(text: str) -> float | None:
    if m := MINUTES.search(text):
        if not m["n"]:
            return 30.0
        return 60.0 * (number(m["n"]) or 1 if m["n"].lower() not in ("a",) else 1)
    if m := SECONDS.search(text):
        try:
            return float(m["n"])
        except ValueError:
            value = number(m["n"])
            return float(value) if value else None
    return None


def _lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def _tail(text: str, *leads: str) -> str | None:
    """What follows the first of `leads` (a note, a description), trimmed of punctuation."""
    for lead in leads:
        pattern = (
            rf"(?<![\w]){re.escape(lead)}(?![\w])" if lead.isascii() and lead.isalpha() else re.escape(lead)
        )
        if m := re.search(pattern, text, re.I):
            rest = text[m.end() :].strip(" ,，:：。.!！")
            if rest:
                return rest
    return None


def _question(lang: str, en: str, zh: str) -> Parsed:
    return Parsed(question=zh if lang == "zh" else en)


# --- whole-message commands -----------------------------------------------------------------------------------


def parse(message: str, n_shots: int) -> Parsed:
    """Interpret one chat message against a storyboard of `n_shots` shots."""
    text = unicodedata.normalize("NFKC", message or "").strip()
    lang = _lang(text)
    if not text:
        return _question("en", "Say what to change, e.g. 'make shot 3 a close-up at night'.", "")
    if len(text) > 2000:
        return Parsed(refusal="That is too long for one request: say one change at a time. " + HELP[lang])
    low = text.lower()
    for pattern, op in ((UNDO, "undo"), (APPROVE, "approve"), (STATUS, "status")):
        if pattern.match(low):
            return Parsed(op=op)
    refs = shot_refs(text, n_shots)
    numbers = [r[0] for r in refs]
    for rule in (_takes, _redo, _deliver, _reference, _line, _swap, _move, _add, _remove, _revise, _film):
        if (parsed := rule(text, low, refs, numbers, n_shots, lang)) is not None:
            return parsed
    if SHOW.search(low):
        return Parsed(op="show")
    return Parsed(refusal=("我没听懂。" if lang == "zh" else "I did not understand that. ") + HELP[lang])


# --- rules: each returns a Parsed when the message is its kind, else None ---------------------------------------


def _one_shot(numbers, lang, what_en: str, what_zh: str) -> Parsed | int:
    if len(numbers) == 1:
        return numbers[0]
    if not numbers:
        return _question(
            lang, f"Which shot should I {what_en}? Give its number.", f"要{what_zh}哪个镜头？请说镜头编号。"
        )
    return _question(
        lang,
        f"Which one shot should I {what_en}? You named {len(numbers)}.",
        f"要{what_zh}哪一个镜头？你提到了{len(numbers)}个。",
    )


def _takes(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "takes", "take", "why was", "why did you keep", "which take")
        or _has(text, "镜次", "版本", "为什么选", "保留了哪")
    ):
        return None
    if _has(low, "retake", "take out", "take away", "take that back"):
        return None
    shot = _one_shot(numbers, lang, "show the takes of", "查看")
    return Parsed(op="takes", args={"shot": shot}) if isinstance(shot, int) else shot


def _redo(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "redo", "reshoot", "re-shoot", "retake", "re-render", "rerender", "shoot again")
        or _has(text, "重拍", "重做", "重新拍", "再拍")
    ):
        return None
    shot = _one_shot(numbers, lang, "redo", "重拍")
    if not isinstance(shot, int):
        return shot
    rest = _cut(text, [(a, b) for _, a, b in refs])
    note = _tail(
        rest,
        "with",
        "so that",
        "so",
        "to have",
        "and make it",
        "and make",
        "but",
        "making it",
        ":",
        "，",
        ",",
        "：",
        "要",
        "让",
        "把",
    )
    return Parsed(op="redo", args={"shot": shot, "note": (note or "").strip(" .。")})


def _deliver(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "deliver", "export", "delivery", "version for", "cut for", "render out")
        or _has(text, "交付", "导出", "出一版", "出一个", "输出")
    ):
        return None
    platforms = [p for p, _ in _find(text, low, PLATFORMS)]
    if not platforms:
        return _question(
            lang,
            "Deliver for which platform (tiktok, instagram, youtube, xiaohongshu, or a ratio like 9:16)?",
            "交付哪个平台？（抖音、小红书、Instagram、YouTube，或 9:16 这样的比例）",
        )
    return Parsed(op="deliver", args={"platform": platforms[0]})


def _reference(text, low, refs, numbers, n, lang):
    path = IMAGE_PATH.search(text)
    wants = _has(low, "photo", "picture", "image", "reference", "this pic") or _has(
        text, "照片", "图片", "参考图", "这张图", "产品图"
    )
    if path:
        return Parsed(op="set_film", args={"reference": path["p"]})
    if wants and _has(low, "use", "here is", "here's", "this") or wants and _has(text, "用", "这张", "参考"):
        return _question(
            lang,
            "Which image file? Give its path, e.g. 'use ./kettle.png'.",
            "哪张图片？请给出文件路径，例如“用 ./kettle.png”。",
        )
    return None


def _voiceover(text, low, refs, numbers, n, lang):
    """'shot 3 voiceover: Forty hours of quiet' / '第3个镜头旁白改成…': the line the voice speaks."""
    if not (
        _has(low, "voiceover", "voice-over", "voice over", "narration", "narrator", "v.o.", "vo")
        or _has(text, "旁白", "配音", "解说", "画外音")
    ):
        return None
    clear = _has(low, "no voiceover", "no voice-over", "no narration", "remove", "delete", "clear", "drop")
    clear = clear or _has(text, "去掉", "删掉", "删除", "不要")
    quote = _quoted(text)
    if quote is None and not clear:
        rest = _cut(text, [(a, b) for _, a, b in refs])
        quote = _tail(rest, ":", "：", "to", "says", "say", "is", "改成", "改为", "换成", "为", "是")
        if quote and (end := text.rstrip()[-1:]) in ".!?。！？" and not quote.endswith(end):
            quote += end  # a spoken line keeps its full stop: the voice reads it as the end of a sentence
        if quote and len(quote) > 300:
            quote = None
    return _shot_text(
        "set_voiceover", numbers, lang, quote, clear and not quote,
        ("give that voice-over to", "把旁白给"),
        ("What should the voice-over say over shot {shot}? Put the line in quotes.",
         "第{shot}个镜头的旁白是什么？请用引号写出来。"),
    )  # fmt: skip


def _line(text, low, refs, numbers, n, lang):
    if (spoken := _voiceover(text, low, refs, numbers, n, lang)) is not None:
        return spoken  # the voice-over's line, not the subtitle
    slogan = _has(low, "slogan", "tagline", "end line", "strapline", "claim") or _has(
        text, "广告语", "口号", "标语", "slogan"
    )
    line = _has(low, "line", "subtitle", "caption", "says", "say", "text") or _has(
        text, "字幕", "台词", "文案", "文字"
    )
    if not (slogan or line):
        return None
    quote, clear = _line_text(text, low, refs)
    if slogan and not numbers:
        if not quote:
            return _question(
                lang,
                "What is the slogan? Put it in quotes: the slogan is 'Slow mornings'.",
                "广告语是什么？请用引号写出来：广告语是“慢享清晨”。",
            )
        return Parsed(op="set_line", args={"text": quote})
    return _shot_text(
        "set_line", numbers, lang, quote, clear,
        ("give that line to", "设置字幕给"),
        ("What should shot {shot} say? Put the line in quotes.", "第{shot}个镜头的字幕是什么？请用引号写出来。"),
    )  # fmt: skip


def _shot_text(op, numbers, lang, quote, clear, what: tuple[str, str], ask: tuple[str, str]):
    """`op` on the one shot the message names: its text set to the quote, or cleared; else a question (which
    shot, or what it should say)."""
    shot = _one_shot(numbers, lang, *what)
    if not isinstance(shot, int):
        return shot
    if clear:
        return Parsed(op=op, args={"shot": shot, "text": ""})
    if not quote:
        return _question(lang, *(q.format(shot=shot) for q in ask))
    return Parsed(op=op, args={"shot": shot, "text": quote})


def _line_text(text, low, refs) -> tuple[str | None, bool]:
    """The line the message gives (quoted, or the words after "is", "to", "改成" ...), and whether it asks to
    clear the line instead."""
    quote = _quoted(text)
    clear = _has(
        low,
        "no subtitle",
        "no line",
        "remove the line",
        "remove the subtitle",
        "without a line",
        "delete the subtitle",
        "clear",
    ) or _has(text, "去掉字幕", "删掉字幕", "不要字幕", "删除字幕", "去掉台词")
    if quote is None and not clear:
        quote = _tail(
            _cut(text, [(a, b) for _, a, b in refs]),
            "is",
            "to",
            "says",
            "say",
            "reads",
            ":",
            "：",
            "是",
            "改成",
            "改为",
            "为",
        )
        if quote and (len(quote) > 120 or not quote.strip()):
            quote = None
    return quote, clear


def _swap(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "swap", "switch", "exchange", "trade places", "flip")
        or _has(text, "交换", "互换", "对调", "调换")
    ):
        return None
    if len(numbers) != 2:
        return _question(
            lang,
            "Which two shots should I swap? e.g. 'swap shots 2 and 4'.",
            "交换哪两个镜头？例如“交换第二和第四个镜头”。",
        )
    return Parsed(op="swap_shots", args={"a": numbers[0], "b": numbers[1]})


def _position(text, low, refs, n) -> tuple[str, int] | None:
    """Where a shot goes: ('at', k) for position k, ('after', k) or ('before', k)."""
    if _has(low, *START_WORDS[:5]) or _has(text, *START_WORDS[5:]):
        return "at", 1
    for value, a, b in refs:
        before = text[max(0, a - 12) : a].lower()
        after = text[b : b + 6]
        if re.search(r"(?:after|following|behind)\s*$", before) or re.match(r"\s*(?:之?后面?|后边)", after):
            return "after", value
        if re.search(r"before\s*$", before) or re.match(r"\s*(?:之?前面?|前边)", after):
            return "before", value
    if _has(low, *END_WORDS[:4]) or _has(text, *END_WORDS[4:]):
        return "at", n
    return None


def _move(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "move", "put", "place", "bring")
        and numbers
        or _has(text, "移到", "挪到", "放到", "移动", "调到")
    ):
        return None
    if _has(low, "add", "insert", "new shot") or _has(text, "加", "添", "插入"):
        return None
    if not numbers:
        return _question(lang, "Which shot should I move, and where?", "移动哪个镜头？移到哪里？")
    shot = numbers[0]
    where = _position(text, low, refs[1:], n)
    if where is None and re.search(r"\b(?:first|to the front)\s*[.!]*$", low):
        where = ("at", 1)
    if where is None and re.search(r"\b(?:last)\s*[.!]*$", low):
        where = ("at", n)
    if where is None and len(numbers) == 2:
        target = text[refs[1][1] - 8 : refs[1][1]].lower()
        if re.search(r"(?:to|into|as|be)\s*(?:the\s*)?(?:position\s*)?$|到$|成$|为$", target):
            where = ("at", numbers[1])
    if where is None:
        return _question(
            lang,
            f"Where should shot {shot} go? e.g. 'to the start', 'after shot 2'.",
            f"第{shot}个镜头移到哪里？例如“移到开头”“放到第二个镜头后面”。",
        )
    how, k = where
    to = k if how == "at" else k + 1 if how == "after" else k
    if how != "at" and k < shot:
        to = k + 1 if how == "after" else k
    elif how != "at":
        to = k if how == "after" else k - 1
    return Parsed(op="move_shot", args={"shot": shot, "to": max(1, min(n, to))})


def _add(text, low, refs, numbers, n, lang):
    if not (ADD_EN.search(low) or ADD_ZH.search(text)):
        return None
    if _has(low, "subtitle", "line", "caption") or _has(text, "字幕", "台词"):
        return None
    where = _position(text, low, refs, n)
    spans = [(a, b) for _, a, b in refs]
    args: dict = {}
    if where:
        how, k = where
        if how == "at" and k == 1:
            args["after"] = 0
        elif how == "at":
            pass  # at the end
        else:
            args[how] = k
    elif refs:
        return _question(
            lang, "Should the new shot go before or after that shot?", "新镜头放在那个镜头之前还是之后？"
        )
    verbless = ADD_EN.sub(" ", text)  # "insert a close-up": the verb is not the shot size
    kind = _first(verbless, verbless.lower(), KINDS)
    rest = _cut(text, spans)
    rest = re.sub(
        r"(?i)\b(?:add|insert|include|put in|append|a|an|new|another|shot|scene|please|right|just|at|to|in|"
        r"after|before|following|the start|the beginning|the end|the front|the back|of|showing|that shows|with|"
        r"where|which shows)\b",
        " ",
        rest,
    )
    rest = re.sub(
        r"(?:在|加一?个|加上|添加|增加|插入|补一?个|再加|新增|一个|镜头|分镜|之?后面?|之?前面?|开头|最前面|结尾|最后面?|放在|的)",
        " ",
        rest,
    )
    for _, (a, b) in sorted(_find(rest, rest.lower(), KINDS), key=lambda h: -h[1][0]):
        rest = rest[:a] + " " + rest[b:]
    description = " ".join(rest.split()).strip(" ,，:：。.")
    if not description:
        return _question(
            lang,
            "What should the new shot show? e.g. 'add a shot of the logo after shot 2'.",
            "新镜头拍什么？例如“在第二个镜头后加一个logo特写”。",
        )
    if kind:
        args["kind"] = kind
    return Parsed(op="add_shot", args={"description": description, **args})


def _remove(text, low, refs, numbers, n, lang):
    if not (
        _has(low, "remove", "delete", "drop", "cut", "get rid of", "lose", "take out", "kill")
        or _has(text, "删掉", "删除", "去掉", "去除", "拿掉", "不要", "删")
    ):
        return None
    if not numbers:
        return _question(lang, "Which shot should I remove? Give its number.", "删除哪个镜头？请说镜头编号。")
    if len(numbers) > 1:
        return _question(
            lang, "I remove one shot at a time: which one first?", "一次删除一个镜头：先删哪个？"
        )
    return Parsed(op="remove_shot", args={"shot": numbers[0]})


def _changes(text: str, low: str, spans) -> tuple[dict, list[tuple[int, int]]]:
    """The per-shot changes a message names (kind, look, mood, motion, duration), with the spans they used."""
    args: dict = {}
    used: list[tuple[int, int]] = []
    for key, table in (("kind", KINDS), ("look", LOOK_WORDS), ("mood", MOODS), ("motion", MOTIONS)):
        hits = [h for h in _find(text, low, table) if not any(a <= h[1][0] < b for a, b in spans)]
        if hits:
            args[key] = hits[0][0]
            used += [h[1] for h in hits]
    relative = _find(text, low, RELATIVE_LIGHT)
    if relative:
        args["lighting"] = relative[0][0]
        used += [h[1] for h in relative]
    if seconds := _seconds(text):
        args["duration"] = seconds
        used += [m.span() for m in SECONDS.finditer(text)] + [m.span() for m in MINUTES.finditer(text)]
    return args, used


def _content(words: str) -> bool:
    """True when `words` still say something once the change words and fillers are taken out."""
    for table in (KINDS, LOOK_WORDS, MOODS, MOTIONS, RELATIVE_LIGHT):
        for _, (a, b) in sorted(_find(words, words.lower(), table), key=lambda h: -h[1][0]):
            words = words[:a] + " " + words[b:]
    words = re.sub(r"(?:一个|镜头|画面|的|一点|一些|更|用|改成|换成)", " ", words)
    content = [w for w in re.findall(r"[A-Za-z']+", words) if w.lower() not in FILLER_EN]
    return len(content) >= 2 or len(_CJK.findall(words)) >= 3


def _description(text: str, spans) -> str | None:
    """What the shot should show now, when the message says it ('shot 5 shows ...', '第四个镜头拍...')."""
    rest = _cut(text, spans)
    m = DESCRIBE_EN.search(rest) or DESCRIBE_ZH.search(rest)
    if not m:
        return None
    words = m["d"].strip(" ,，:：。.!")
    return words if _content(words) else None


def _revise(text, low, refs, numbers, n, lang):
    every = _has(low, *EVERY[:5]) or _has(text, *EVERY[5:])
    if not numbers and not every:
        return None
    spans = [(a, b) for _, a, b in refs]
    args, _ = _changes(text, low, spans)
    if description := _description(text, spans):
        args["description"] = description
    if not args:
        if every:
            return None
        return _question(
            lang,
            f"What should change in shot {numbers[0]}? e.g. 'make it a close-up at night'.",
            f"第{numbers[0]}个镜头要怎么改？例如“改成夜景特写”。",
        )
    shots = list(range(1, n + 1)) if every else sorted(set(numbers))
    return Parsed(op="revise_shot", args={"shots": shots, **args})


def _film(text, low, refs, numbers, n, lang):
    args: dict = {}
    platforms = [p for p, _ in _find(text, low, PLATFORMS)]
    named = [p for p in platforms if ":" not in p]
    if ratio := re.search(r"(?<![\d:])(\d{1,2}:\d{1,2})(?![\d:])", text):
        platforms.append(ratio[1])
    if platforms:
        args["platforms"] = list(dict.fromkeys(named or platforms))
    styles = [s for s, _ in _find(text, low, STYLES)]
    if styles:
        args["style"] = ", ".join(dict.fromkeys(styles))
    lang_to = _first(text, low, LANGS)
    if lang_to and _has(low, "subtitle", "subtitles", "lines", "language", "in chinese", "in english") | _has(
        text, "字幕", "语言", "改成中文", "改成英文", "用中文", "用英文"
    ):
        args["lang"] = lang_to
    if seconds := _seconds(text):
        args["duration"] = seconds
    if args:
        return Parsed(op="set_film", args=args)
    per_shot, _ = _changes(text, low, [])
    vague = _has(
        low, "lighting", "the light", "framing", "camera angle", "the colors", "the colours"
    ) or _has(text, "灯光", "光线", "构图", "机位")
    if (per_shot or vague) and n > 1:
        return _question(
            lang,
            f"Which shot? Say its number (1 to {n}), or 'every shot'.",
            f"哪个镜头？请说编号（1到{n}），或者“所有镜头”。",
        )
    if per_shot:
        return Parsed(op="revise_shot", args={"shots": [1], **per_shot})
    return None
