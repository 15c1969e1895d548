"""Draft panels: the offline renderer's storyboard frames, drawn from the shot with no weights and no network.

A panel is an animatic frame: the art fills the frame, and nothing of the shot's metadata is written on it
(`annotate_panel` adds the shot number, kind and caption block for the storyboard sheet). What it draws:

- the scene's look from its words: interior or exterior, day, dawn, dusk or night, rain, snow or fog (an
  INT. night scene has dark walls, a window onto a night sky and practical lamps; no sun);
- the subject at the shot's framing (small in an establishing shot, filling the frame in a close-up): the
  reference photo itself (cut out when it stands on a plain background), else a silhouette of its kind;
- on-image text the shot asks for (a slogan), composited with the project's CJK font so OCR can read it.

The bottom `TITLE_SAFE` of the frame carries no drawn text: the cut burns subtitles there.
"""

from __future__ import annotations

import random
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tools.draft_sweep import draw_sweep
from tools.draft_white import asks_white, product_colour, render_white
from tools.film import Shot
from tools.scene_look import brand_palette, look_colours, mix, palette_colours, scene_look
from tools.silhouettes import draw_subject, reference_sprite, subject_kind

RGB = tuple[int, int, int]
TITLE_SAFE = 0.15  # bottom fraction of the frame kept free of drawn text (burned subtitles go there)
NO_SUBJECT = "none"  # a shot's subject_kind for the place alone: the caller puts the real product in it

# Palettes as (sky top, sky bottom, ground, subject, accent). Kept mid-toned so a panel is never judged
# under- or over-exposed by the technical critic: the mood shows in hue, not in crushed blacks.
PALETTES: dict[str, tuple[RGB, ...]] = {
    "warm": ((236, 160, 92), (250, 214, 150), (128, 84, 60), (70, 42, 36), (255, 236, 190)),
    "cool": ((70, 110, 170), (150, 190, 220), (60, 82, 110), (28, 40, 62), (210, 235, 255)),
    "dark": ((40, 44, 66), (96, 88, 120), (44, 40, 52), (16, 16, 24), (240, 196, 120)),
    "bright": ((150, 205, 240), (236, 244, 250), (200, 210, 200), (60, 72, 90), (255, 200, 80)),
    "vibrant": ((230, 70, 120), (255, 170, 80), (80, 50, 130), (30, 20, 60), (90, 230, 220)),
    "calm": ((150, 180, 175), (220, 228, 214), (130, 150, 130), (50, 66, 64), (250, 240, 220)),
    "premium": ((46, 46, 56), (128, 120, 110), (70, 64, 60), (20, 20, 24), (226, 190, 120)),
    "neutral": ((120, 140, 160), (200, 205, 210), (110, 115, 120), (40, 44, 52), (250, 250, 250)),
}
# Words (English and Chinese) that point at a palette; counted over the shot's mood, lighting and description.
PALETTE_WORDS: dict[str, str] = {  # space-separated
    "warm": "warm golden sunset sunrise dawn amber cozy candle fire 暖 金 夕阳 日落 黄昏 温馨 烛",
    "cool": "cool cold blue night moon winter rain ice steel 冷 蓝 夜 月 雨 冬 清冷",
    "dark": "dark moody noir dramatic low-key shadow mystery tense 暗 阴影 神秘 紧张 戏剧",
    "bright": "bright airy high-key clean fresh daylight morning white 明亮 清新 白天 早晨 干净",
    "vibrant": "vibrant energetic bold neon playful fun dynamic 活力 霓虹 动感 热烈 欢快",
    "calm": "calm soft serene gentle quiet peaceful tranquil 宁静 柔和 安静 平静 舒缓",
    "premium": "premium luxury elegant sleek refined minimal 高级 奢华 优雅 简约 质感",
}
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "establishing": ("establishing", "aerial", "skyline", "全景", "远景"),
    "wide": ("wide", "full shot", "广角"),
    "close-up": ("close-up", "closeup", "close up", "portrait", "特写"),
    "detail": ("detail", "macro", "细节"),
    "insert": ("insert", "hands", "插入"),
    "hero": ("hero", "product", "packshot", "产品"),
    "over-the-shoulder": ("over-the-shoulder", "over the shoulder", "过肩"),
}


def pick_palette(words: str) -> str:
    """The palette whose words occur most often in `words` (ties: the order of PALETTE_WORDS); else neutral."""
    text = words.lower()
    counts = {name: sum(text.count(w) for w in vocab.split()) for name, vocab in PALETTE_WORDS.items()}
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else "neutral"


def guess_kind(prompt: str) -> str:
    """A shot kind from a bare prompt (no storyboard shot): the first kind whose words occur, else medium."""
    text = prompt.lower()
    return next((kind for kind, vocab in KIND_WORDS.items() if any(w in text for w in vocab)), "medium")


def reference_palette(path: str) -> tuple[RGB, ...]:
    """A draft palette (sky top, sky bottom, ground, subject, accent) read from a reference image.

    Sky and ground are the mean colours of the top, middle and bottom bands; subject and accent are the darkest
    and the most saturated of its six main colours. Channels are kept within 24..240, like the built-in
    palettes, so that a very dark or bright reference does not make every panel fail the exposure check.
    """
    with Image.open(path) as im:
        small = im.convert("RGB").resize((48, 48))
    bands = [
        small.crop((0, y0, 48, y1)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        for y0, y1 in ((0, 12), (18, 30), (36, 48))
    ]
    colours = [c for _, c in small.quantize(colors=6).convert("RGB").getcolors(48 * 48) or [(1, bands[1])]]
    subject = min(colours, key=sum)
    accent = max(colours, key=lambda c: max(c) - min(c))

    def clamp(c) -> RGB:
        return tuple(max(24, min(240, v)) for v in c)  # type: ignore[return-value]

    return tuple(clamp(c) for c in (bands[0], bands[1], bands[2], subject, accent))


def _jitter(color: RGB, rng: random.Random, amount: int = 10) -> RGB:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in color)  # type: ignore[return-value]


# --- the background ------------------------------------------------------------------------------------------


def _vgradient(w: int, h: int, top: RGB, bottom: RGB) -> np.ndarray:
    t = np.linspace(0.0, 1.0, max(1, h), dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3))


def _glow(img: Image.Image, cx: float, cy: float, r: float, colour: RGB, strength: float = 0.7) -> None:
    """A soft pool of light (a lamp's, the sun's halo) added over the image around (cx, cy)."""
    w, h = img.size
    x0, y0, x1, y1 = (max(0, int(cx - r)), max(0, int(cy - r)), min(w, int(cx + r)), min(h, int(cy + r)))
    if x1 <= x0 or y1 <= y0:
        return
    # float32 throughout: the halo is an 8-bit picture, and float64 doubles the cost of the largest glows.
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    d = np.sqrt(xx * xx + yy * yy) / np.float32(r)
    a = (np.clip(1 - d, 0, 1) ** 2 * np.float32(strength))[..., None]
    region = np.asarray(img.crop((x0, y0, x1, y1)), np.float32)
    region = region + (np.asarray(colour, np.float32) - region) * a
    img.paste(Image.fromarray(region.astype(np.uint8)), (x0, y0))


def _exterior(img, d, w, h, horizon, rng, c, look) -> None:
    sky_top, sky_bottom, ground, subject, accent = c
    img.paste(Image.fromarray(_vgradient(w, horizon, sky_top, sky_bottom).astype(np.uint8)), (0, 0))
    img.paste(Image.fromarray(_vgradient(w, h - horizon, ground, mix(ground, subject, 0.5)).astype(np.uint8)),
              (0, horizon))  # fmt: skip
    clear = look.weather == "clear"
    if look.time == "night":
        for _ in range(int(w * horizon / 9000) if clear else 0):
            x, y = rng.uniform(0, w), rng.uniform(0, horizon * 0.8)
            d.point((x, y), fill=(230, 230, 255))
        mx, my, mr = w * rng.uniform(0.6, 0.85), horizon * 0.22, min(w, h) * 0.045
        _glow(img, mx, my, mr * 4, (90, 110, 160), 0.5)
        d.ellipse([mx - mr, my - mr, mx + mr, my + mr], fill=(236, 236, 220))
    elif clear:
        low = look.time in ("dawn", "dusk")
        sx = w * rng.uniform(0.2, 0.8)
        sy = horizon * (0.92 if low else rng.uniform(0.22, 0.4))
        sr = min(w, h) * (0.09 if low else 0.05)
        _glow(img, sx, sy, sr * 5, accent, 0.55)
        d.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=mix(accent, (255, 255, 255), 0.5))
    far = mix(sky_bottom, subject, 0.45)
    points = [(0, horizon)]
    x = 0.0
    while x < w:  # distant hills, paler with distance
        x += w * rng.uniform(0.08, 0.2)
        points.append((x, horizon - h * rng.uniform(0.03, 0.1)))
    d.polygon([*points, (w, horizon)], fill=far)
    x = w * rng.uniform(-0.05, 0.05)
    night = look.time == "night"
    while x < w:  # the city's skyline, windows lit at night
        bw, bh = w * rng.uniform(0.035, 0.08), horizon * rng.uniform(0.08, 0.32)
        d.rectangle([x, horizon - bh, x + bw, horizon], fill=mix(far, subject, 0.5))
        if night or look.time == "dusk":
            for wy in np.arange(horizon - bh + 4, horizon - 4, max(4, h / 90)):
                for wx in np.arange(x + 3, x + bw - 3, max(4, w / 160)):
                    if rng.random() < 0.35:
                        d.rectangle([wx, wy, wx + max(1, w / 500), wy + max(1, h / 300)], fill=accent)
        x += bw + w * rng.uniform(0.0, 0.05)
    vx = w * rng.uniform(0.35, 0.65)  # a road to the vanishing point gives the ground depth
    ink = mix(ground, (0, 0, 0), 0.35)
    for dx in (-0.9, -0.35, 0.35, 0.9):
        d.line([(vx, horizon), (vx + dx * w, h)], fill=ink, width=max(1, h // 360))


def _interior(img, d, w, h, floor, rng, c, look) -> None:
    sky_top, sky_bottom, ground, subject, accent = c
    night = look.time == "night"
    wall_top = mix(ground, (14, 12, 18), 0.55) if night else mix(sky_bottom, ground, 0.35)
    wall_bottom = mix(wall_top, accent, 0.12) if night else mix(wall_top, ground, 0.4)
    img.paste(Image.fromarray(_vgradient(w, floor, wall_top, wall_bottom).astype(np.uint8)), (0, 0))
    floor_c = mix(ground, (0, 0, 0), 0.55 if night else 0.15)
    img.paste(Image.fromarray(_vgradient(w, h - floor, floor_c, mix(floor_c, (0, 0, 0), 0.3)).astype(np.uint8)),
              (0, floor))  # fmt: skip
    ink = mix(wall_top, (0, 0, 0), 0.5)
    if look.place == "carriage":
        _carriage(img, d, w, h, floor, rng, c, night, ink)
    else:
        _room(img, d, w, h, floor, rng, c, look, ink, floor_c)


def _carriage(img, d, w, h, floor, rng, c, night, ink) -> None:
    """A train or bus inside: a row of windows, grab poles, the bench seats and (at night) strip lights."""
    sky_top, sky_bottom, _, subject, accent = c
    n = 3
    for i in range(n):  # a row of windows onto the dark tunnel or the city going by
        x0 = w * (0.06 + i * 0.32)
        box = [x0, floor * 0.2, x0 + w * 0.24, floor * 0.62]
        d.rounded_rectangle(box, radius=max(1, h // 40), fill=sky_top if night else sky_bottom, outline=ink,
                            width=max(2, h // 120))  # fmt: skip
        for _ in range(6 if night else 0):
            lx, ly = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
            d.line([(lx, ly), (min(box[2], lx + w * 0.03), ly)], fill=accent, width=max(1, h // 300))
    d.line(
        [(0, floor * 0.12), (w, floor * 0.12)],
        fill=mix(ink, (200, 200, 200), 0.5),
        width=max(2, h // 90),
    )
    for x in (w * 0.37, w * 0.69):  # grab poles
        d.line([(x, 0), (x, h)], fill=mix(ink, (210, 210, 210), 0.6), width=max(2, w // 200))
    d.rectangle([0, floor * 0.74, w, floor], fill=mix(subject, accent, 0.2), outline=ink)  # the bench seats
    for k in range(5 if night else 0):
        _glow(img, w * (k + 0.5) / 5, 0, h * 0.25, accent, 0.35)  # strip lights


def _room(img, d, w, h, floor, rng, c, look, ink, floor_c) -> None:
    """A room: a window onto the sky (lit windows across the street at night, rain on the glass), a lamp at
    dusk or night, floor boards running to the wall."""
    sky_top, sky_bottom, _, _, accent = c
    night = look.time == "night"
    wx0 = w * rng.choice((0.1, 0.58))
    win = [wx0, floor * 0.14, wx0 + w * 0.3, floor * 0.74]
    sky = _vgradient(int(win[2] - win[0]), int(win[3] - win[1]), sky_top, sky_bottom).astype(np.uint8)
    img.paste(Image.fromarray(sky), (int(win[0]), int(win[1])))
    if night:
        for _ in range(24):  # lit windows across the street
            x, y = rng.uniform(win[0], win[2]), rng.uniform((win[1] + win[3]) / 2, win[3])
            d.rectangle([x, y, x + max(2, w / 300), y + max(2, h / 200)], fill=accent)
    else:
        _glow(img, (win[0] + win[2]) / 2, (win[1] + win[3]) / 2, w * 0.35, mix(sky_bottom, (255, 255, 255), 0.5),
              0.35)  # fmt: skip
    frame = max(2, h // 90)
    d.rectangle(win, outline=ink, width=frame)
    d.line([((win[0] + win[2]) / 2, win[1]), ((win[0] + win[2]) / 2, win[3])], fill=ink, width=frame)
    d.line([(win[0], (win[1] + win[3]) / 2), (win[2], (win[1] + win[3]) / 2)], fill=ink, width=frame)
    if look.weather == "rain":
        for _ in range(30):
            x, y = rng.uniform(win[0], win[2]), rng.uniform(win[1], win[3])
            d.line([(x, y), (x - 2, y + h * 0.03)], fill=(200, 210, 230), width=1)
    if night or look.time == "dusk":  # a practical: the lamp the scene is lit by
        lx = w * (0.78 if wx0 < w / 2 else 0.2)
        ly = floor * 0.5
        _glow(img, lx, ly, h * 0.55, accent, 0.55)
        d.line([(lx, ly), (lx, floor)], fill=ink, width=max(2, w // 300))
        d.polygon([(lx - w * 0.04, ly), (lx + w * 0.04, ly), (lx + w * 0.025, ly - h * 0.09),
                   (lx - w * 0.025, ly - h * 0.09)], fill=mix(accent, (255, 255, 255), 0.4))  # fmt: skip
    for k in range(1, 6):  # floor boards running to the wall
        x = w * k / 6
        d.line([(x, floor), (w / 2 + (x - w / 2) * 1.8, h)], fill=mix(floor_c, (0, 0, 0), 0.3), width=1)


def _studio(img, d, w, h, floor, rng, c, look) -> None:
    sky_top, sky_bottom, ground, subject, accent = c
    bg = mix(sky_bottom, ground, 0.3)
    img.paste(Image.fromarray(_vgradient(w, h, mix(bg, (0, 0, 0), 0.45), bg).astype(np.uint8)), (0, 0))
    _glow(img, w * rng.uniform(0.4, 0.6), h * 0.45, max(w, h) * 0.5, mix(bg, (255, 255, 255), 0.4), 0.6)


def _weather(img, d, w, h, rng, look, accent) -> Image.Image:
    if look.weather == "rain":
        for _ in range(int(w * h / 2500)):
            x, y = rng.uniform(-0.1 * w, w), rng.uniform(0, h)
            length = h * rng.uniform(0.02, 0.05)
            d.line([(x, y), (x + length * 0.25, y + length)], fill=(210, 220, 235, 90), width=1)
    elif look.weather == "snow":
        for _ in range(int(w * h / 3000)):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, max(1.5, h / 300))
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 255, 200))
    elif look.weather == "fog":
        haze = Image.new("RGB", img.size, (200, 204, 210) if look.time != "night" else (60, 64, 76))
        img = Image.blend(img, haze, 0.35)
    return img


# --- the subject ---------------------------------------------------------------------------------------------
# Height of the subject as a fraction of the frame's height, and where its base stands.
FRAMING: dict[str, tuple[float, float]] = {  # kind -> (height, base y)
    "establishing": (0.16, 0.7),
    "wide": (0.34, 0.86),
    "medium": (0.56, 0.94),
    "over-the-shoulder": (0.5, 0.92),
    "insert": (0.6, 0.9),
    "hero": (0.56, 0.74),
    "close-up": (0.8, 0.98),
    "detail": (1.15, 1.08),
}


def _fit(sprite: Image.Image, height: float, max_w: float) -> Image.Image:
    scale = min(height / sprite.height, max_w / sprite.width)
    if abs(scale - 1) < 0.03:
        return sprite
    size = (max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale)))
    return sprite.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def place_subject(
    img, w, h, kind, rng, sprite_for, subject_colour, top: float = 0
) -> tuple[int, int, int, int]:
    """Put the subject in the frame at the shot's framing; returns its pixel box.

    `sprite_for(height)` gives the subject as an RGBA sprite about that tall. A contact shadow grounds it; an
    over-the-shoulder shot adds a dark near shoulder on the other side of the frame. The subject stays below
    `top` (the slogan's plate), shrinking if it must.
    """
    frac, base = FRAMING.get(kind, FRAMING["medium"])
    target = min(h * frac * rng.uniform(0.94, 1.06), h * base - top)
    sprite = _fit(sprite_for(round(target)), target, w * (0.9 if frac > 0.7 else 0.6))
    thirds = (1 / 3, 2 / 3) if kind in ("establishing", "wide", "medium", "over-the-shoulder") else (0.5,)
    cx = w * rng.choice(thirds) + w * rng.uniform(-0.03, 0.03)
    x0 = round(min(max(cx - sprite.width / 2, w * 0.02), w * 0.98 - sprite.width))
    if sprite.width > w * 0.96:
        x0 = round((w - sprite.width) / 2)
    y1 = round(h * base)
    y0 = y1 - sprite.height
    shadow = Image.new("L", img.size, 0)
    sw = sprite.width * 0.55
    ImageDraw.Draw(shadow).ellipse([x0 + sprite.width / 2 - sw, y1 - h * 0.02, x0 + sprite.width / 2 + sw,
                                    y1 + h * 0.02], fill=120)  # fmt: skip
    shadow = shadow.filter(ImageFilter.BoxBlur(max(1, h // 80)))
    img.paste((0, 0, 0), (0, 0), shadow)
    img.paste(sprite, (x0, y0), sprite)
    if kind == "over-the-shoulder":
        near = draw_subject(
            "bust", round(h * 0.9), mix(subject_colour, (0, 0, 0), 0.6), (40, 40, 44), (0, 0, 0)
        )
        nx = round(w * 0.9 - near.width / 2) if cx < w / 2 else round(w * 0.1 - near.width / 2)
        img.paste(near, (nx, round(h * 0.35)), near)
    return x0, y0, x0 + sprite.width, y1


# --- on-image text -------------------------------------------------------------------------------------------


def text_layout(w: int, h: int, text: str, kind: str) -> tuple:
    """Where a slogan the shot asks for goes: (font, lines, top, line height, plate box).

    A hero shot or end card carries it as a title in the upper middle; any other shot as a sign in the top
    part. It never enters the bottom title-safe band, where the cut burns subtitles.
    """
    from tools.fonts import pil_font, wrap_text

    base = min(w, h * 1.4)
    size = round(base * (0.09 if kind == "hero" else 0.075))
    lines: list[str] = []
    while size > 8:
        font = pil_font(size, "Bold")
        lines = wrap_text(text, w * 0.8, font.getlength, balance=True)
        if len(lines) <= 2:
            break
        size = round(size * 0.88)
    font = pil_font(size, "Bold")
    line_h = round(size * 1.3)
    block_w = max(font.getlength(ln) for ln in lines) if lines else 0
    top = min(round(h * 0.08), round(h * (1 - TITLE_SAFE) - line_h * len(lines) - size))
    pad = round(size * 0.45)
    box = (
        round((w - block_w) / 2 - pad),
        top - pad,
        round((w + block_w) / 2 + pad),
        top + line_h * len(lines) + pad,
    )
    return font, lines, top, line_h, box


def composite_text(img: Image.Image, layout: tuple) -> None:
    """Draw the slogan laid out by `text_layout` in the project's CJK font, white on a soft dark plate."""
    font, lines, top, line_h, box = layout
    w = img.width
    d = ImageDraw.Draw(img, "RGBA")
    d.rounded_rectangle(box, radius=max(1, (box[3] - box[1]) // 6), fill=(0, 0, 0, 130))
    for i, ln in enumerate(lines):
        x = (w - font.getlength(ln)) / 2
        d.text((x, top + i * line_h), ln, font=font, fill=(255, 255, 255), stroke_width=max(1, font.size // 18),
               stroke_fill=(0, 0, 0))  # fmt: skip


# --- the panel -----------------------------------------------------------------------------------------------


def _vignette(w: int, h: int) -> np.ndarray:
    yy, xx = np.ogrid[0:h, 0:w]
    r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    return (1 - 0.32 * np.clip(r - 0.55, 0, 1) ** 1.5)[..., None].astype(np.float32)


_VIGNETTES: dict[tuple[int, int], np.ndarray] = {}


def render_panel(
    *,
    width: int,
    height: int,
    seed: int,
    prompt: str,
    shot: Shot | None = None,
    reference_images: list[str] | tuple[str, ...] = (),
) -> tuple[Image.Image, dict]:
    """Draw one animatic frame; returns the image and what was drawn (for the take's parameters)."""
    from tools.critics.ocr import requested_text

    w, h = width, height
    if w < 8 or h < 8:
        raise ValueError(f"panel size {w}x{h} is too small; each side must be at least 8 px")
    if asks_white(prompt):  # a product shot on white (a marketplace main) has no scene to draw
        return render_white(width=w, height=h, prompt=prompt, shot=shot)
    rng = random.Random(seed)
    kind = shot.kind if shot else guess_kind(prompt)
    palette_name, colours = _palette(shot, prompt, reference_images)
    palette_name, colours = _product_colours(shot, prompt, palette_name, colours)
    scene = (shot.scene or "") if shot else ""  # the planner's scene heading, when it has one
    look = scene_look(scene, f"{shot.lighting} {shot.description} {prompt}" if shot else prompt, kind)
    colours = tuple(_jitter(c, rng) for c in look_colours(colours, look))
    img = _backdrop(w, h, kind, rng, colours, look)
    given = shot.subject_kind if shot else None  # filled by the planner when it knows it
    bare = given == NO_SUBJECT
    words = f"{shot.description} {prompt}" if shot else prompt
    what = NO_SUBJECT if bare else subject_kind(given, words, kind)
    sprite_for, drawn = (None, NO_SUBJECT) if bare else _sprite(what, kind, look, colours, reference_images)
    text = requested_text(prompt, shot.expect_text if shot else None)
    layout = text_layout(w, h, text, kind) if text else None
    top = layout[4][3] + h * 0.03 if layout else 0
    box = () if bare else place_subject(img, w, h, kind, rng, sprite_for, colours[3], top)
    img = _weather(img, ImageDraw.Draw(img, "RGBA"), w, h, rng, look, colours[4])
    if look.place != "sweep":  # a sweep has its own fall-off from the key light
        if (w, h) not in _VIGNETTES:
            _VIGNETTES[(w, h)] = _vignette(w, h)
        img = Image.fromarray((np.asarray(img, np.float32) * _VIGNETTES[(w, h)]).astype(np.uint8))
    params = {"kind": kind, "palette": palette_name, "look": f"{look.place} {look.time} {look.weather}",
              "subject": what, "drawn": drawn, "subject_box": list(box)}  # fmt: skip
    if layout:
        composite_text(img, layout)
        params["text"], params["text_box"] = text, list(layout[4])
    return img, params


def _palette(shot: Shot | None, prompt: str, reference_images) -> tuple[str, tuple]:
    """The palette from the shot's mood words, or mixed with the reference photo's colours."""
    words = " ".join([shot.mood, shot.lighting, shot.description] if shot else [prompt])
    palette_name = pick_palette(words)
    colours = PALETTES[palette_name]
    if reference_images:
        # Consistency: subject and accent come from the (first) reference, sky and ground are two thirds
        # the reference's and one third the shot's own mood, as a reference-conditioned model keeps identity
        # while the prompt still sets the light.
        ref = reference_palette(reference_images[0])
        colours = (*(mix(r, m, 0.35) for r, m in zip(ref[:3], colours[:3], strict=True)), *ref[3:])
        palette_name = f"reference+{palette_name}"
    return palette_name, colours


def _product_colours(shot: Shot | None, prompt: str, name: str, colours: tuple) -> tuple[str, tuple]:
    """A prompt alone (a catalogue product, no storyboard shot): the subject in the colour its name is given
    in ("Wireless Headphones, red, on ..."), and a "brand colours #RRGGBB ..." phrase sets the scene's colours.
    A film's shot keeps its mood palette: its colour words are the scene's, not one product's."""
    brand = brand_palette(prompt)
    body = product_colour(subject_phrase(prompt)) if shot is None else None
    if brand:
        return f"brand+{name}", palette_colours(brand, body or colours[3])
    if body:
        return name, (*colours[:3], body, colours[4])
    return name, colours


def subject_phrase(prompt: str) -> str:
    """The prompt's product: after its first " of ", up to where the scene starts (" on ", " in ", ...)."""
    text = prompt.split(" of ", 1)[-1]
    return re.split(r"\s(?:on|in|at|against|among|beside|by|with|arranged|worn|showing)\s", text, maxsplit=1)[
        0
    ]


def _backdrop(w: int, h: int, kind: str, rng: random.Random, colours: tuple, look) -> Image.Image:
    """The place the shot is in (exterior, interior, carriage, studio) at the framing's horizon; a hero shot
    gets its pedestal and light cone."""
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img, "RGBA")
    horizon = {"establishing": 0.62, "wide": 0.64, "medium": 0.7, "over-the-shoulder": 0.7}.get(kind, 0.72)
    horizon_y = round(h * (horizon + rng.uniform(-0.03, 0.03)))
    places = {"exterior": _exterior, "interior": _interior, "carriage": _interior, "studio": _studio}
    places["sweep"] = draw_sweep
    places[look.place](img, d, w, h, horizon_y, rng, colours, look)
    if kind == "hero" and look.place != "sweep":  # on a sweep the product stands on the floor, no pedestal
        accent, cx = colours[4], w / 2
        d.polygon([(cx - w * 0.06, 0), (cx + w * 0.06, 0), (cx + w * 0.28, h * 0.75), (cx - w * 0.28, h * 0.75)],
                  fill=(*mix(accent, (255, 255, 255), 0.5), 40))  # fmt: skip
        d.ellipse([cx - w * 0.24, h * 0.7, cx + w * 0.24, h * 0.8], fill=mix(colours[2], (0, 0, 0), 0.3),
                  outline=mix(accent, (0, 0, 0), 0.4), width=max(1, h // 200))  # fmt: skip
    return img


def _sprite(what: str, kind: str, look, colours: tuple, reference_images):
    """How to draw the subject at a height (the reference photo cut out, or the kind's silhouette), and what."""
    if reference_images:
        return (lambda target: reference_sprite(reference_images[0])), "reference"
    subject_colour, accent = colours[3], colours[4]
    night = look.time == "night" or look.place == "carriage"
    fill = mix(subject_colour, (200, 205, 215), 0.25) if night else subject_colour
    light = mix(accent, (255, 255, 255), 0.3)
    ink = mix(subject_colour, (0, 0, 0), 0.75)
    sil = "bust" if what == "person" and kind in ("close-up", "detail") else what
    return (lambda target: draw_subject(sil, target, fill, light, ink)), sil


def annotate_panel(image: Image.Image, shot: Shot | None, take: int = 1, prompt: str = "") -> Image.Image:
    """The panel as the storyboard sheet shows it: header (shot number, kind, duration) and footer
    (description, camera, mood) on translucent bands over a copy of `image`."""
    from tools.fonts import is_cjk, pil_font, wrap_text

    img = image.convert("RGB")
    w, h = img.size
    draw = ImageDraw.Draw(img, "RGBA")
    kind = shot.kind if shot else guess_kind(prompt)
    base = min(w, h * 1.4)  # a tall frame is as narrow as its width; a wide one as short as its height
    pad = max(2, round(base * 0.025))
    # Text stays inside the title-safe area: the camera moves of the animatic crop up to ~5% of each edge.
    pad_x, pad_y = max(pad, round(w * 0.06)), max(pad, round(h * 0.05))
    header = f"SHOT {shot.index:02d} · {kind.upper()}" if shot else f"DRAFT · {kind.upper()}"
    right = f"{shot.duration:g} s · take {take}" if shot else f"take {take}"
    description = shot.description if shot else prompt
    zh = is_cjk(description)
    extra = []
    if shot:
        extra = [
            ("镜头：" if zh else "CAMERA: ") + shot.camera,
            ("氛围：" if zh else "MOOD: ") + shot.mood + (" · " + shot.lighting if shot.lighting else ""),
        ]
    head_font = pil_font(max(6, round(base * 0.062)), "Bold")
    while head_font.size > 6 and head_font.getlength(header) > w - 2 * pad_x:
        head_font = pil_font(head_font.size - 1, "Bold")
    head_h = head_font.size * 1.3 + pad_y + pad
    draw.rectangle([0, 0, w, head_h], fill=(0, 0, 0, 150))
    draw.text((pad_x, pad_y), header, font=head_font, fill=(255, 255, 255))
    small = pil_font(max(6, round(base * 0.027)))
    if small.getlength(right) + head_font.getlength(header) + 2 * pad_x + 2 * pad < w:
        draw.text((w - pad_x - small.getlength(right), pad_y + head_font.size * 0.35), right, font=small,
                  fill=(255, 255, 255, 220))  # fmt: skip
    body = pil_font(max(6, round(base * 0.035)), "Medium")
    lines = wrap_text(description, w - 2 * pad_x, body.getlength)
    extra_lines = [ln for e in extra for ln in wrap_text(e, w - 2 * pad_x, small.getlength)]
    # Keep the footer within 35% of the frame: shorten the description (with an ellipsis) before the rest;
    # on a tiny frame the camera and mood lines go too.
    extra_lines = extra_lines[
        : max(0, int((h * 0.35 - pad - pad_y - body.size * 1.25) // (small.size * 1.25)))
    ]
    room = h * 0.35 - pad - pad_y - len(extra_lines) * small.size * 1.25
    max_desc = max(1, int(room // (body.size * 1.25)))
    if len(lines) > max_desc:
        lines = lines[:max_desc]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) - 1)] + "…"
    foot_h = len(lines) * body.size * 1.25 + len(extra_lines) * small.size * 1.25 + pad + pad_y
    top = max(head_h, h - foot_h)
    draw.rectangle([0, top, w, h], fill=(0, 0, 0, 150))
    y = top + pad
    for ln in lines:
        draw.text((pad_x, y), ln, font=body, fill=(255, 255, 255))
        y += body.size * 1.25
    for ln in extra_lines:
        draw.text((pad_x, y), ln, font=small, fill=(225, 225, 225))
        y += small.size * 1.25
    return img
