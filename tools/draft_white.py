"""Draft product shots on white: the subject alone on exact (255, 255, 255) with a contact shadow.

A prompt that asks for a pure white background (a marketplace's main image: "isolated on a pure white
background", "白底图") gets this instead of a scene. The draft stands for what a real model is asked to make, so
the critics can judge it by their own rules (border at 255, the product's fill, exposure) instead of failing
every draft main for a scene the prompt never asked for:

- the silhouette of the subject's kind (tools/silhouettes.py), centred, filling `FILL` of the frame;
- its body in the product's colour when the prompt names one ("black", "红色"), else a neutral grey;
- a soft contact shadow where it stands (tools/composite.py's), and nothing else: no backdrop, no vignette,
  no text.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from tools.film import Shot
from tools.scene_look import mix
from tools.silhouettes import draw_subject, subject_kind

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
FILL = 0.8  # the subject's box over the frame's limiting side; the caller re-frames to a platform's own fill
BASE = 0.88  # where the subject's base stands (share of the height), leaving room for its shadow

# The phrases that ask for the product on white. "A white background wall" in a film's shot is not one of them.
WHITE_ASKED = re.compile(
    r"\b(?:pure|plain|solid|seamless|clean)\s+white\s+(?:background|backdrop|sweep)\b"
    r"|\bisolated\s+on\s+(?:an?\s+)?(?:pure\s+|plain\s+)?white\b"
    r"|\(\s*255\s*,\s*255\s*,\s*255\s*\)"
    r"|白底|纯白(?:色)?(?:背景|底)|白色背景",
    re.IGNORECASE,
)
# Colour words (English whole words; Chinese as 色 words, so that 蓝牙 "Bluetooth" is not blue) and the body
# colour a draft gives them. Mid-toned where the colour allows, so the ink outline and the highlight still read.
COLOUR_WORDS: dict[str, tuple[str, RGB]] = {
    "black": ("black charcoal jet 黑色", (38, 38, 42)),
    "white": ("white ivory cream 白色 象牙色 米白色", (232, 230, 224)),
    "clear": ("clear transparent frosted 透明", (206, 218, 226)),
    "grey": ("grey gray graphite slate 灰色", (128, 130, 134)),
    "silver": ("silver chrome steel 银色", (176, 180, 186)),
    "gold": ("gold golden brass 金色", (196, 160, 72)),
    "red": ("red crimson scarlet burgundy 红色", (186, 42, 44)),
    "pink": ("pink rose blush 粉色 粉红色", (226, 140, 160)),
    "orange": ("orange coral amber 橙色 橘色 琥珀色", (214, 120, 40)),
    "yellow": ("yellow mustard 黄色", (226, 196, 56)),
    "green": ("green olive sage mint 绿色", (64, 130, 80)),
    "blue": ("blue navy cobalt teal 蓝色", (44, 84, 160)),
    "purple": ("purple violet lavender 紫色", (118, 74, 150)),
    "beige": ("beige sand khaki tan oatmeal 米色 卡其色 沙色", (210, 190, 152)),
    "brown": ("brown walnut chocolate coffee wood natural 棕色 褐色 咖啡色 原木色 木色", (128, 88, 56)),
}
NEUTRAL: RGB = (86, 92, 102)
NO_SHADOW = re.compile(r"\bno (?:drop |contact |cast )?shadows?\b|无阴影|不要阴影", re.IGNORECASE)


def asks_white(prompt: str) -> bool:
    """True when the prompt asks for the product alone on a pure white background."""
    return bool(WHITE_ASKED.search(prompt))


def product_colour(prompt: str) -> RGB | None:
    """The body colour named first in the prompt, the white-background phrase itself left out; else None."""
    text = WHITE_ASKED.sub(" ", prompt).lower()
    found: list[tuple[int, RGB]] = []
    for vocab, rgb in COLOUR_WORDS.values():
        for word in vocab.split():
            if word.isascii():
                m = re.search(rf"\b{re.escape(word)}\b", text)
            else:
                m = re.search(re.escape(word), text)
            if m:
                found.append((m.start(), rgb))
    return min(found)[1] if found else None


def render_white(
    *, width: int, height: int, prompt: str, shot: Shot | None = None
) -> tuple[Image.Image, dict]:
    """The subject on exact white with its contact shadow; returns the image and what was drawn."""
    from tools.composite import contact_shadow

    words = f"{shot.description} {prompt}" if shot else prompt
    what = subject_kind(shot.subject_kind if shot else None, words, "hero")
    body = product_colour(prompt) or NEUTRAL
    pale = sum(body) >= 600  # a white product: its shading and outline, not its body, set it off the white
    light = mix(body, (120, 120, 126), 0.4) if pale else mix(body, WHITE, 0.45)
    ink = (84, 86, 92) if pale else mix(body, (0, 0, 0), 0.7)
    sprite = draw_subject(what, round(height * FILL), body, light, ink)
    if sprite.width > width * FILL:  # a wide subject (a car, a laptop): drawn again to fit the width
        sprite = draw_subject(what, round(height * FILL * width * FILL / sprite.width), body, light, ink)
    x0 = (width - sprite.width) // 2
    y0 = max(0, min((height - sprite.height) // 2, round(height * BASE) - sprite.height))
    box = (x0, y0, x0 + sprite.width, y0 + sprite.height)
    dark = contact_shadow((width, height), sprite.getchannel("A"), box, strength=0.35)
    if NO_SHADOW.search(prompt):  # a main that must be cut out on pure white
        dark = np.zeros_like(dark)
    ground = np.full((height, width, 3), 255.0, np.float32) * (1.0 - dark[..., None])
    img = Image.fromarray(np.clip(np.rint(ground), 0, 255).astype(np.uint8)).convert("RGBA")
    img.alpha_composite(sprite, dest=(x0, y0))
    params = {
        "kind": "hero",
        "look": "white background",
        "subject": what,
        "drawn": what,
        "subject_box": list(box),
        "body": list(body),
    }
    return img.convert("RGB"), params
