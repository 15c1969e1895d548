"""The chat parser's words: shot sizes, times of day, moods, camera moves, style words, platforms, languages.

Each table row is (value, English phrases, Chinese phrases), the more specific phrase first; English phrases
match as whole words, Chinese ones as substrings. `agent/chat_parser.py` reads them.
"""

from __future__ import annotations

import re

KINDS = [  # (kind, English phrases, Chinese phrases): the more specific first
    (
        "detail",
        ("extreme close-up", "extreme closeup", "ecu", "macro", "detail shot", "detail"),
        ("大特写", "微距", "细节"),
    ),
    ("close-up", ("close-up", "closeup", "close up", "tight shot"), ("特写", "近景", "近距离")),
    ("establishing", ("establishing shot", "establishing", "aerial"), ("远景", "大全景", "航拍", "鸟瞰")),
    ("wide", ("wide shot", "wide angle", "long shot", "wide"), ("全景", "广角")),
    ("medium", ("medium shot", "mid shot", "medium"), ("中景",)),
    ("insert", ("insert shot", "insert"), ("插入镜头",)),
    ("hero", ("hero shot", "hero"), ("主视觉", "英雄镜头")),
    ("over-the-shoulder", ("over-the-shoulder", "over the shoulder", "ots"), ("过肩",)),
]
LOOK_WORDS = [  # words that name a time of day or light; the look itself comes from the planner's table
    (
        "night",
        ("at night", "night-time", "nighttime", "night", "midnight", "neon"),
        ("夜景", "夜晚", "晚上", "夜里", "深夜", "夜"),
    ),
    (
        "dawn",
        ("at dawn", "sunrise", "dawn", "early morning", "morning"),
        ("清晨", "日出", "黎明", "早上", "早晨"),
    ),
    ("sunset", ("at sunset", "sunset", "dusk", "golden hour", "evening"), ("黄昏", "日落", "傍晚", "夕阳")),
    ("rain", ("in the rain", "rainy", "raining", "rain"), ("雨天", "下雨", "雨中", "雨")),
    ("snow", ("snowy", "snowing", "snow", "winter"), ("雪景", "下雪", "雪")),
    ("day", ("daytime", "during the day", "in daylight", "daylight", "noon"), ("白天", "日景", "中午")),
]
RELATIVE_LIGHT = [  # a change of light that needs to know which shot
    (
        "darker, low-key lighting, deeper shadows",
        ("darker", "dimmer", "moodier light"),
        ("暗一点", "更暗", "暗一些", "调暗"),
    ),
    (
        "brighter, high-key lighting",
        ("brighter", "lighter", "more light"),
        ("亮一点", "更亮", "亮一些", "调亮"),
    ),
]
MOODS = [
    ("dramatic, intense", ("dramatic", "intense", "epic"), ("戏剧", "震撼", "史诗")),
    ("romantic, tender", ("romantic", "tender"), ("浪漫", "温柔")),
    ("tense, urgent", ("tense", "suspenseful", "scary"), ("紧张", "悬疑")),
    ("joyful, playful", ("happy", "happier", "joyful", "playful", "fun"), ("欢快", "开心", "活泼", "快乐")),
    ("melancholic, quiet", ("sad", "sadder", "melancholic", "melancholy"), ("悲伤", "忧伤", "伤感")),
    ("mysterious", ("mysterious", "mystery"), ("神秘",)),
    ("calm, peaceful", ("calm", "calmer", "peaceful", "serene"), ("平静", "安静", "宁静")),
]
MOTIONS = [
    ("push-in", ("push in", "push-in", "zoom in", "dolly in", "move in"), ("推近", "推镜", "推进", "拉近")),
    ("pull-out", ("pull out", "pull back", "pull-out", "zoom out", "dolly out"), ("拉远", "拉开", "后拉")),
    ("pan-left", ("pan left", "pans left"), ("左摇", "向左摇")),
    ("pan-right", ("pan right", "pans right", "pan"), ("右摇", "向右摇", "摇镜")),
    (
        "static",
        ("static", "locked off", "locked-off", "still camera", "tripod"),
        ("固定镜头", "固定机位", "静止"),
    ),
    ("drift", ("handheld", "hand-held", "drift"), ("手持",)),
]
STYLES = [
    ("warm color grade", ("warmer", "warm tones", "warm"), ("温暖", "暖一点", "暖色", "更暖")),
    ("cool color grade", ("cooler", "colder", "cool tones"), ("冷色", "冷一点", "更冷")),
    (
        "cinematic, anamorphic look",
        ("cinematic", "more like a movie", "filmic"),
        ("电影感", "电影质感", "大片"),
    ),
    ("35mm film grain", ("film grain", "shot on film", "analog"), ("胶片",)),
    ("vintage film look", ("vintage", "retro", "nostalgic look"), ("复古", "怀旧")),
    ("dreamy, soft glow", ("dreamy", "dreamlike", "ethereal"), ("梦幻",)),
    ("minimalist", ("minimal", "minimalist", "clean look"), ("极简", "简约")),
    ("film noir, black and white", ("noir", "black and white", "black-and-white", "monochrome"), ("黑白",)),
    ("pastel palette", ("pastel",), ("马卡龙", "粉彩")),
    ("high contrast", ("high contrast", "punchier", "more contrast"), ("高对比", "对比强")),
    ("moody, low-key", ("moodier", "moody"), ("氛围感",)),
]
PLATFORMS = [  # (preset, words); 'shorts' before 'youtube'
    ("shorts", ("youtube shorts", "yt shorts", "shorts")),
    ("reels", ("instagram reels", "reels")),
    ("tiktok", ("tiktok", "tik tok")),
    ("douyin", ("douyin", "抖音")),
    ("instagram", ("instagram", "insta", "ig", "ins")),
    ("xiaohongshu", ("xiaohongshu", "rednote", "little red book", "小红书")),
    ("youtube", ("youtube", "油管", "b站", "bilibili")),
    ("9:16", ("vertical", "portrait", "竖屏", "竖版", "竖的")),
    ("1:1", ("square", "方形", "正方形", "方屏")),
    ("16:9", ("horizontal", "landscape", "widescreen", "横屏", "横版", "宽屏")),
]
LANGS = [
    (
        "zh",
        ("in chinese", "chinese subtitles", "chinese lines", "mandarin"),
        ("中文字幕", "改成中文", "用中文", "中文"),
    ),
    (
        "en",
        ("in english", "english subtitles", "english lines"),
        ("英文字幕", "改成英文", "用英文", "英文", "英语"),
    ),
]
FILLER_EN = set(
    "a an the it its to into make change set turn be is are should please pls now then also and with just more "
    "very really bit slightly instead so shot shots this that of for me let lets let's can you could would "
    "like want i we our looks look feel feeling version at in on one".split()
)

HELP = {
    "en": "I can change a shot ('make shot 3 a close-up at night'), add, remove, move or swap shots, set the "
    "length, platform, style, slogan or a shot's line, use a photo ('use ./kettle.png'), undo, show the storyboard, "
    "and 'go' to shoot; after the film: 'redo shot 2 with more rain', 'deliver for instagram', 'show shot 3's takes'.",
    "zh": "我可以修改镜头（“第三个镜头改成夜景特写”）、增加/删除/移动/交换镜头、设置时长、平台、风格、广告语或字幕、"
    "使用参考图（“用这张图 ./kettle.png”）、撤销、查看分镜，说“开拍”开始拍摄；拍完后可以“重拍第二个镜头，雨大一点”、"
    "“导出抖音版”、“看第三个镜头的镜次”。",
}

EN_NUMBERS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}

EN_ORDINALS = {
    w: i
    for i, w in enumerate(
        "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
        "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split()
    )
}

_ZH_NUM = "零〇一二两三四五六七八九十百"

NUM = rf"(?:\d+|[{_ZH_NUM}]+|{'|'.join(sorted(EN_NUMBERS, key=len, reverse=True))})"

ORD = rf"(?:\d+(?:st|nd|rd|th)|{'|'.join(sorted(EN_ORDINALS, key=len, reverse=True))})"

QUOTED = re.compile(
    r"[\"“”「『‘]([^\"“”「」『』‘’]{1,200})[\"“”」』’]|(?<![A-Za-z])'([^']{1,200})'(?![A-Za-z])"
)

IMAGE_PATH = re.compile(
    r"(?P<p>(?:~|\.{1,2})?[/\\]?[^\s\"'“”‘’:：,，]*\.(?:png|jpe?g|webp|bmp|gif|tiff?))(?![\w])", re.I
)

SECONDS = re.compile(
    rf"(?P<n>\d+(?:\.\d+)?|{NUM})\s*(?:-|\s)?(?:s|sec|secs|second|seconds|秒钟?)(?![a-z])", re.I
)

MINUTES = re.compile(
    r"半分钟|half a minute|(?P<n>\d+|一|两|one|a)\s*(?:-|\s)?(?:minutes?|min|分钟)(?![a-z])", re.I
)

UNDO = re.compile(
    r"^(?:undo(?: that| it| the last(?: change)?)?|revert(?: that| it)?|go back|take (?:that|it) back|"
    r"never ?mind|cancel (?:that|the last change)|put it back|撤销|撤回|回退|还原|恢复上一步|取消(?:刚才|上一步)的?(?:修改)?|退回上一步)"
    r"(?:\s*(?:please|吧|一下|上一步|刚才的修改))?[\s.!。！]*$",
    re.I,
)

APPROVE = re.compile(
    r"^(?:ok(?:ay)?[, ]*)?(?:yes[, ]*)?(?:go(?: ahead)?|approve[ds]?(?: it)?|approved|shoot(?: it| the film)?|"
    r"start(?: shooting| the shoot)?|action|roll(?: camera)?|let'?s (?:go|shoot)|looks good(?:[, ]*(?:go|shoot it))?|"
    r"lgtm|make (?:it|the film)|开拍|开始拍(?:摄)?|拍吧|拍摄吧|通过|批准|确认(?:开拍)?|就这样(?:拍)?|可以(?:了)?[,，]?\s*开拍|没问题[,，]?\s*开拍|同意)"
    r"(?:\s*(?:please|now|吧|了))?[\s.!。！]*$",
    re.I,
)

STATUS = re.compile(
    r"^(?:status|progress|how(?:'s| is) it going|how far along|where are we|is it (?:done|ready|finished)|"
    r"are we done|any news|进度|状态|拍到哪(?:了|里了)?|好了(?:吗|没)|怎么样了|进展(?:如何)?|完成了吗)[\s?？.!。]*$",
    re.I,
)

SHOW = re.compile(
    r"\b(?:show|list|see|display|print|view|recap)\b.*\b(?:storyboard|board|shots|shot list|plan|sheet)\b|"
    r"^(?:storyboard|shots|shot list)\??$|(?:看看|看一下|显示|查看|给我看)(?:一下)?(?:分镜|故事板|镜头表|镜头列表|所有镜头)|^分镜(?:表)?[?？]?$",
    re.I,
)

START_WORDS = (
    "the start",
    "the beginning",
    "the front",
    "the top",
    "first place",
    "开头",
    "最前面",
    "最前",
    "第一位",
    "开始",
)

END_WORDS = ("the end", "the back", "the bottom", "last place", "结尾", "最后面", "最后", "末尾")

ADD_EN = re.compile(r"\b(?:add|insert|include|put in|append)\b", re.I)

ADD_ZH = re.compile(r"(?:加一?个|加上|添加|增加|插入|补一?个|再加|新增)")

EVERY = (
    "every shot",
    "all shots",
    "all the shots",
    "each shot",
    "all of them",
    "所有镜头",
    "每个镜头",
    "全部镜头",
    "所有的镜头",
    "每一个镜头",
)

DESCRIBE_EN = re.compile(r"\b(?:shows?|showing|should show|depicts?|about|is of|be of)\b\s+(?P<d>.+)$", re.I)

DESCRIBE_ZH = re.compile(r"(?:改成|换成|改为|变成|拍|内容是|画面是|画面改成)[:：]?\s*(?P<d>.+)$")
