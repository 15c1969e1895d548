"""The scene's look for a draft panel: interior or exterior, time of day and weather, read from a scene heading
("INT. SUBWAY CAR – NIGHT") and the shot's words (English and Chinese), and the colours that look gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RGB = tuple[int, int, int]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """The colour a fraction `t` of the way from `a` to `b`."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


# The scene's look. Latin words match whole words; Chinese ones as substrings.
TIME_WORDS: dict[str, str] = {
    "night": "night nighttime midnight moonlight moonlit neon evening 夜 晚上 深夜 夜晚 霓虹",
    "dawn": "dawn sunrise daybreak first-light 黎明 清晨 日出 破晓",
    "dusk": "dusk sunset twilight golden-hour 黄昏 日落 夕阳 傍晚",
}
WEATHER_WORDS: dict[str, str] = {
    "rain": "rain rainy raining drizzle storm downpour wet 雨 下雨 暴雨",
    "snow": "snow snowy snowing blizzard 雪 下雪",
    "fog": "fog foggy mist misty haze hazy 雾 薄雾",
}
INTERIOR_WORDS = ("interior indoor indoors inside room kitchen office bedroom living cafe café bar studio "
                  "subway train carriage bus lobby shop store desk table window 室内 房间 厨房 办公室 卧室 客厅 "
                  "咖啡馆 车厢 地铁 店 桌")  # fmt: skip
EXTERIOR_WORDS = ("exterior outdoor outdoors outside street city skyline rooftop mountain mountains trail "
                  "beach sea ocean park forest field sky road 户外 室外 街 城市 山 海 公园 森林 天空 屋顶 路")  # fmt: skip
CARRIAGE_WORDS = "subway train carriage metro bus tram 地铁 车厢 列车 公交"
# A product photographer's studio: a seamless paper sweep or a backdrop, not a room. "studio" alone is not
# one of them (a recording studio, an artist's studio are rooms).
SWEEP_WORDS = "seamless backdrop cyclorama plinth 无缝 影棚 背景布 纯色背景"
# The phrase a catalogue prompt names its brand palette in: "brand colours #E4002B red, #FFFFFF white".
BRAND_PHRASE = re.compile(r"\bbrand colou?rs?\b([^.;]*)", re.IGNORECASE)
HEX = re.compile(r"#([0-9a-fA-F]{6})\b")


def _count(text: str, vocab: str) -> int:
    n = 0
    for w in vocab.split():
        if re.search(r"[\u2e80-\u9fff]", w):
            n += text.count(w)
        else:
            n += len(re.findall(rf"\b{re.escape(w.replace('-', ' '))}\b", text))
    return n


@dataclass(frozen=True)
class Look:
    """Where and when the shot happens, as far as the panel's light is concerned."""

    place: str  # exterior, interior, carriage (a train or bus inside), studio (a hero's dark stage), sweep
    # (a product photographer's seamless backdrop)
    time: str  # day, dawn, dusk, night
    weather: str  # clear, rain, snow, fog


def scene_look(scene: str, words: str, kind: str) -> Look:
    """The look from a scene heading ("INT. SUBWAY CAR – NIGHT") and the shot's lighting and description words.

    The heading wins where it speaks (INT./EXT., its time of day); the words decide the rest. A hero, insert or
    detail shot with no place in its words is a studio packshot. Words of a seamless backdrop (SWEEP_WORDS)
    with no INT./EXT. heading make it a sweep, whatever else the words name.
    """
    head = scene.lower()
    text = f"{head} {words}".lower()
    times = {t: _count(head, v) * 10 + _count(text, v) for t, v in TIME_WORDS.items()}
    time = max(times, key=lambda t: times[t]) if max(times.values()) else "day"
    if re.search(r"\bday\b|白天|日$", head) and not any(_count(head, v) for v in TIME_WORDS.values()):
        time = "day"
    weathers = {k: _count(text, v) for k, v in WEATHER_WORDS.items()}
    weather = max(weathers, key=lambda k: weathers[k]) if max(weathers.values()) else "clear"
    inside, outside = _count(text, INTERIOR_WORDS), _count(text, EXTERIOR_WORDS)
    if re.match(r"\s*(int\.|int\b|内景)", head):
        inside, outside = 1, 0
    elif re.match(r"\s*(ext\.|ext\b|外景)", head):
        inside, outside = 0, 1
    if _count(text, SWEEP_WORDS) and not re.match(r"\s*(int\.|int\b|内景|ext\.|ext\b|外景)", head):
        place = "sweep"
    elif inside > outside:
        place = "carriage" if _count(text, CARRIAGE_WORDS) else "interior"
    elif outside or kind in ("establishing", "wide"):
        place = "exterior"
    elif kind in ("hero", "insert", "detail") or "studio" in text:
        place = "studio"
    else:
        place = "exterior"
    return Look(place, time, weather)


def _night(c: RGB, keep: float, blue: int) -> RGB:
    return (round(c[0] * keep), round(c[1] * keep + blue * 0.3), round(c[2] * keep + blue))


def look_colours(base: tuple[RGB, ...], look: Look) -> tuple[RGB, ...]:
    """(sky top, sky bottom, ground, subject, accent) for the look: night darkens and cools everything and
    turns the accent into lamplight; dawn and dusk warm the horizon; rain and fog grey it down."""
    sky_top, sky_bottom, ground, subject, accent = base
    if look.time == "night":
        # Darkened and shifted to blue rather than replaced, so a reference's hue survives the night.
        sky_top, sky_bottom = _night(sky_top, 0.2, 18), _night(sky_bottom, 0.38, 26)
        ground, subject = _night(ground, 0.3, 10), mix(subject, (70, 80, 110), 0.5)
        accent = (255, 208, 130)
    elif look.time == "dawn":
        sky_top, sky_bottom = mix(sky_top, (84, 96, 156), 0.6), mix(sky_bottom, (250, 184, 140), 0.65)
        accent = (255, 226, 170)
    elif look.time == "dusk":
        sky_top, sky_bottom = mix(sky_top, (70, 52, 116), 0.6), mix(sky_bottom, (246, 146, 86), 0.65)
        ground, accent = mix(ground, (60, 40, 50), 0.4), (255, 190, 110)
    if look.weather in ("rain", "fog", "snow"):
        grey = (150, 156, 164) if look.time != "night" else (40, 44, 56)
        amount = 0.45 if look.weather == "rain" else 0.6
        sky_top, sky_bottom = mix(sky_top, grey, amount), mix(sky_bottom, grey, amount)
        ground = mix(ground, grey, amount * 0.5)
    return sky_top, sky_bottom, ground, subject, accent


def brand_palette(prompt: str) -> list[RGB]:
    """The #RRGGBB colours of the prompt's "brand colours ..." phrase, in order; [] when it has none."""
    m = BRAND_PHRASE.search(prompt)
    if not m:
        return []
    return [tuple(int(h[i : i + 2], 16) for i in (0, 2, 4)) for h in HEX.findall(m.group(1))]  # type: ignore[misc]


def _lightness(c: RGB) -> float:
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def palette_colours(palette: list[RGB], subject: RGB) -> tuple[RGB, ...]:
    """(sky top, sky bottom, ground, subject, accent) in a brand's colours, the subject in its own.

    The set is one brand colour, the one nearest mid-grey (so the picture is neither under- nor over-exposed to
    the technical critic), in shades a few percent apart: a look's gradients and mixes between its colours then
    stay near it, where a mix of two brand colours would be neither. The props and the light (the accent) take
    the most saturated of the others. The brand-colour critic then measures these very colours.
    """
    by_mid = sorted(palette, key=lambda c: abs(_lightness(c) - 150))
    wall, others = by_mid[0], by_mid[1:]
    accent = max(others, key=lambda c: max(c) - min(c)) if others else mix(wall, (0, 0, 0), 0.35)
    return mix(wall, (0, 0, 0), 0.05), wall, mix(wall, (0, 0, 0), 0.1), subject, accent
