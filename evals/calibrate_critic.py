"""Calibrate the offline critics: how many known-bad takes they catch and how many good ones they reject.

    python -m evals.calibrate_critic [--n 12] [--out DIR] [--seed 0]

Builds a deterministic labelled set (good: storyboard-like panels and photo-like scenes, some carrying requested
text in English or Chinese, and camera-move clips; bad: blurred, blank, under- and over-exposed, too small, wrong
aspect, wrong or missing requested text in English and Chinese, frozen and flickering clips), runs
`critique_image` / `critique_clip` with the critics that work offline, and prints per kind the catch rate (bad)
or false-alarm rate (good) as a markdown table, plus a contact sheet of examples in DIR.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZES = [(1280, 720), (720, 1280), (1024, 1024), (960, 1280)]
EN_TEXTS = [
    "SUMMER SALE",
    "$129",
    "NEW ARRIVAL",
    "Quiet Power",
    "OPEN 24H",
    "50% OFF",
    "Sound of Silence",
    "$89.99",
]
ZH_TEXTS = ["限时特价", "¥199", "新品上市", "静享好声音", "买一送一", "¥1299", "夏日清凉", "全场五折"]
WORDS = [
    "harbour",
    "dawn",
    "city",
    "rooftop",
    "lantern",
    "runner",
    "forest",
    "kitchen",
    "studio",
    "coffee",
    "market",
    "skyline",
    "neon",
    "rain",
]
PALETTES = [  # background, accent, ink: light, dark (night), mid-tone and paper-white panels
    ((236, 226, 208), (200, 120, 80), (30, 30, 40)),
    ((18, 22, 40), (80, 110, 200), (235, 235, 240)),
    ((90, 120, 110), (230, 200, 120), (250, 250, 245)),
    ((255, 255, 255), (120, 120, 120), (0, 0, 0)),
    ((60, 40, 70), (220, 90, 120), (245, 230, 235)),
    ((200, 215, 230), (40, 80, 140), (20, 30, 50)),
]


def font_path() -> str:
    """Noto Sans CJK shipped by the `manimgx_fonts_cjk` package: draws English and Chinese alike."""
    import manimgx_fonts_cjk

    return str(Path(manimgx_fonts_cjk.__file__).parent / "NotoSansCJK-VF.otf.ttc")


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


def storyboard_panel(rng: random.Random, size: tuple[int, int], text: str | None = None) -> Image.Image:
    """A storyboard-like panel: flat palette, frame, simple shapes for the composition, the shot's words."""
    w, h = size
    bg, accent, ink = rng.choice(PALETTES)
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    s = min(w, h)
    d.rectangle([s * 0.03, s * 0.03, w - s * 0.03, h - s * 0.03], outline=ink, width=max(2, s // 200))
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.uniform(0.1, 0.7) * w, rng.uniform(0.3, 0.7) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.3) * w, y0 + rng.uniform(0.1, 0.25) * h
        shape = d.ellipse if rng.random() < 0.5 else d.rectangle
        shape([x0, y0, x1, y1], fill=accent, outline=ink, width=max(1, s // 300))
    small = font(max(14, s // 28))
    d.text(
        (s * 0.06, s * 0.06),
        f"SHOT {rng.randint(1, 12):02d}  {rng.choice(['WIDE', 'MEDIUM', 'CLOSE-UP'])}",
        font=small,
        fill=ink,
    )
    desc = " ".join(rng.sample(WORDS, 4))
    d.text((s * 0.06, h - s * 0.16), desc, font=small, fill=ink)
    if text:
        big = font(max(24, s // 12))
        d.text((w * 0.5, h * 0.2), text, font=big, fill=ink, anchor="mm")
    return img


def photo_scene(rng: random.Random, size: tuple[int, int], text: str | None = None) -> Image.Image:
    """A photo-like scene: graded sky, textured ground, soft objects with shading, sensor noise, a sign."""
    w, h = size
    np_rng = np.random.default_rng(rng.randrange(2**32))
    y = np.linspace(0, 1, h)[:, None, None]
    top = np.array([rng.uniform(0.3, 0.9), rng.uniform(0.4, 0.9), rng.uniform(0.6, 1.0)])
    bottom = np.array([rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.5)])
    horizon = rng.uniform(0.45, 0.7)
    sky = top + (1 - top) * 0.3 * (y / horizon)
    ground = bottom * (0.6 + 0.4 * np_rng.random((h, w, 1)) ** 2)
    arr = np.where(y < horizon, sky, ground) * np.ones((h, w, 3))
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    s = min(w, h)
    for _ in range(rng.randint(3, 7)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(horizon * h * 0.8, h), rng.uniform(0.04, 0.15) * s
        col = tuple(rng.randint(20, 230) for _ in range(3))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
        d.ellipse(
            [cx - r * 0.5, cy - r * 0.7, cx + r * 0.2, cy - r * 0.1],
            fill=tuple(min(255, c + 40) for c in col),
        )
    if text:
        f = font(max(24, s // 11))
        box = d.textbbox((w / 2, h * 0.3), text, font=f, anchor="mm")
        pad = s * 0.03
        d.rectangle(
            [box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad],
            fill=(245, 240, 230),
            outline=(40, 30, 20),
            width=3,
        )
        d.text((w / 2, h * 0.3), text, font=f, fill=(180, 20, 30), anchor="mm")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))  # lenses are never perfectly sharp
    noise = np_rng.normal(0, rng.uniform(2, 6), (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def base_image(rng: random.Random, size, text=None) -> Image.Image:
    return (storyboard_panel if rng.random() < 0.5 else photo_scene)(rng, size, text)


def corrupt_text(rng: random.Random, text: str, zh: bool) -> str:
    """A visibly wrong spelling: about half the characters replaced (as a diffusion model garbles text)."""
    pool = (
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"
        if zh
        else "ABCDEFGHKMNPRSTUVWXZ0123456789"
    )
    chars = list(text)
    idx = [i for i, c in enumerate(chars) if not c.isspace()]
    for i in rng.sample(idx, max(1, len(idx) // 2)):
        options = [c for c in pool if c.casefold() != chars[i].casefold()]
        chars[i] = rng.choice(options)
    return "".join(chars)


@dataclass
class Case:
    kind: str
    bad: bool
    path: str
    prompt: str
    width: int
    height: int
    expect_text: str | None = None
    still: str | None = None  # clips only
    motion: str | None = None


def make_image_cases(root: Path, n: int, seed: int) -> list[Case]:
    """The labelled still images: n of each kind."""
    cases: list[Case] = []
    for kind in [
        "good panel",
        "good photo",
        "good text EN",
        "good text ZH",
        "blurred",
        "blank",
        "under-exposed",
        "over-exposed",
        "too small",
        "wrong aspect",
        "wrong text EN",
        "missing text EN",
        "wrong text ZH",
        "missing text ZH",
    ]:
        for k in range(n):
            rng = random.Random(f"{seed}:{kind}:{k}")
            size = rng.choice(SIZES)
            w, h = size
            prompt = f"storyboard shot of a {' '.join(rng.sample(WORDS, 3))}"
            expect = None
            if kind in {"good text EN", "wrong text EN", "missing text EN"}:
                expect = rng.choice(EN_TEXTS)
            if kind in {"good text ZH", "wrong text ZH", "missing text ZH"}:
                expect = rng.choice(ZH_TEXTS)
            img = _case_image(kind, k, rng, size, expect)
            path = root / f"{kind.replace(' ', '_')}-{k:02d}.png"
            img.save(path)
            cases.append(Case(kind, not kind.startswith("good"), str(path), prompt, w, h, expect))
    return cases


def _case_image(
    kind: str, k: int, rng: random.Random, size: tuple[int, int], expect: str | None
) -> Image.Image:
    """One labelled still of `kind`: a good panel, photo or text image, or a base image with the kind's fault."""
    w, h = size
    if kind == "good panel":
        return storyboard_panel(rng, size)
    if kind == "good photo":
        return photo_scene(rng, size)
    if kind.startswith("good text"):
        return base_image(rng, size, expect)
    if kind.startswith("wrong text"):
        return base_image(rng, size, corrupt_text(rng, expect, "ZH" in kind))
    if kind.startswith("missing text"):
        return base_image(rng, size, None)
    img = base_image(rng, size)
    s = min(size)
    if kind == "blurred":
        img = img.filter(ImageFilter.GaussianBlur(s * rng.uniform(0.006, 0.012)))
    elif kind == "blank":
        col = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        noise = np.random.default_rng(k).normal(0, rng.uniform(0, 2), (h, w, 1))
        img = Image.fromarray(np.clip(col + noise, 0, 255).astype(np.uint8))
    elif kind == "under-exposed":
        img = Image.fromarray((np.asarray(img, dtype=np.float32) * rng.uniform(0.1, 0.25)).astype(np.uint8))
    elif kind == "over-exposed":
        a = np.asarray(img, dtype=np.float32) * rng.uniform(1.8, 2.6) + rng.uniform(60, 100)
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    elif kind == "too small":
        img = img.resize((w // 2, h // 2), Image.LANCZOS)
    elif kind == "wrong aspect":
        img = img.resize((h, w) if w != h else (w, round(h * 0.75)), Image.LANCZOS)
    return img


def write_clip(path: Path, still: Image.Image, frames: int, fps: int, mode: str) -> None:
    """Encode a camera move over a still (push-in, pan) or a bad clip (frozen, flicker) as H.264."""
    import imageio_ffmpeg

    w, h = still.size
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", quality=7, macro_block_size=16
    )
    writer.send(None)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        if mode == "push-in":
            z = 1 + 0.12 * t
            cw, ch = w / z, h / z
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            frame = still.resize((w, h), Image.BILINEAR, box=box)
        elif mode == "pan":
            z = 1.1
            cw, ch = w / z, h / z
            x0 = (w - cw) * (0.5 + 0.5 * t) if i else (w - cw) * 0.5
            frame = still.resize((w, h), Image.BILINEAR, box=(x0, (h - ch) / 2, x0 + cw, (h + ch) / 2))
        elif mode == "flicker":
            frame = Image.eval(still, lambda v: min(255, v + 60)) if i % 5 == 2 else still
        else:  # frozen
            frame = still
        writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB"))))
    writer.close()


SHOT_KINDS = ["establishing", "wide", "medium", "close-up", "insert", "hero", "detail", "over-the-shoulder"]
MOODS = [
    "warm sunset",
    "cool night rain",
    "dark moody noir",
    "bright airy morning",
    "vibrant neon",
    "calm soft",
    "premium elegant",
    "plain",
]


def draft_shot(rng: random.Random, k: int, lang: str = "en"):
    """A storyboard shot with varied kind and mood, as the planner writes them."""
    from tools.film import Shot

    desc = "城市清晨，耳机放在桌上" if lang == "zh" else f"a {' '.join(rng.sample(WORDS, 3))} scene"
    mood = rng.choice(MOODS)
    return Shot(
        id=f"s{k + 1:02d}",
        index=k + 1,
        kind=rng.choice(SHOT_KINDS),
        description=desc,
        camera="slow push-in, 35mm",
        lighting=mood,
        mood=mood,
        duration=2.5,
        prompt=f"{desc}, {mood}",
    )


def make_draft_cases(root: Path, n: int, seed: int) -> list[Case]:
    """The project's own offline storyboard panels (tools/generate_image.py DraftBackend): must all pass."""
    from tools.generate_image import DraftBackend, ImageRequest

    cases = []
    for k in range(n):
        rng = random.Random(f"{seed}:draft:{k}")
        w, h = rng.choice(SIZES)
        shot = draft_shot(rng, k, "zh" if k % 3 == 2 else "en")
        path = root / f"good_draft_panel-{k:02d}.png"
        DraftBackend().generate(
            ImageRequest(
                prompt=shot.prompt,
                width=w,
                height=h,
                seed=rng.randrange(2**31),
                output_path=str(path),
                shot=shot,
                take=1,
            )
        )
        cases.append(Case("good draft panel", False, str(path), shot.prompt, w, h))
    return cases


def make_motion_cases(root: Path, n: int, seed: int) -> list[Case]:
    """Clips from the project's offline motion backend (tools/animate.py), every camera move: must all pass."""
    from tools.animate import MOTIONS, AnimateRequest, MotionBackend
    from tools.generate_image import DraftBackend, ImageRequest

    cases = []
    motions = list(MOTIONS)
    for k in range(n):
        rng = random.Random(f"{seed}:motion:{k}")
        shot = draft_shot(rng, k)
        still = root / f"good_motion_clip-{k:02d}.png"
        DraftBackend().generate(
            ImageRequest(prompt=shot.prompt, width=320, height=192, seed=k, output_path=str(still), shot=shot)
        )
        motion = motions[k % len(motions)]
        clip = still.with_suffix(".mp4")
        MotionBackend().animate(
            AnimateRequest(
                image_path=str(still),
                output_path=str(clip),
                duration=2.0,
                fps=12,
                width=320,
                height=192,
                motion=motion,
                seed=k,
            )
        )
        cases.append(
            Case("good motion clip", False, str(clip), "", 320, 192, still=str(still), motion=motion)
        )
    return cases


def make_clip_cases(root: Path, n: int, seed: int) -> list[Case]:
    """The labelled clips: camera moves over stills (good) and frozen or flickering clips (bad)."""
    cases = []
    for kind, mode in [
        ("good clip push-in", "push-in"),
        ("good clip pan", "pan"),
        ("frozen clip", "frozen"),
        ("flicker clip", "flicker"),
    ]:
        for k in range(n):
            rng = random.Random(f"{seed}:{kind}:{k}")
            still = base_image(rng, (320, 192))
            still_path = root / f"{kind.replace(' ', '_')}-{k:02d}.png"
            still.save(still_path)
            clip_path = still_path.with_suffix(".mp4")
            write_clip(clip_path, still, frames=36, fps=12, mode=mode)
            cases.append(
                Case(
                    kind,
                    not kind.startswith("good"),
                    str(clip_path),
                    "",
                    320,
                    192,
                    still=str(still_path),
                    motion="push-in",
                )
            )
    return cases


def contact_sheet(cases: list[Case], verdicts: dict[str, str], out: Path, per_kind: int = 2) -> None:
    """One row of examples per kind with the critic's grade under each."""
    kinds = list(dict.fromkeys(c.kind for c in cases))
    tw, th = 200, 130
    sheet = Image.new("RGB", (160 + per_kind * (tw + 10), len(kinds) * (th + 24) + 10), "white")
    d = ImageDraw.Draw(sheet)
    f = font(13)
    for r, kind in enumerate(kinds):
        y = 10 + r * (th + 24)
        d.text((8, y + th / 2), kind, font=f, fill="black")
        for c_i, case in enumerate([c for c in cases if c.kind == kind][:per_kind]):
            im = Image.open(case.still or case.path).convert("RGB")
            im.thumbnail((tw, th))
            x = 160 + c_i * (tw + 10)
            sheet.paste(im, (x, y))
            d.text(
                (x, y + th + 2),
                verdicts[case.path],
                font=f,
                fill="darkred" if "C" in verdicts[case.path] else "darkgreen",
            )
    sheet.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="examples per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", default=None, help="folder for the labelled set and contact sheet (default: temporary)"
    )
    ap.add_argument("--verbose", action="store_true", help="print every miss with its scores")
    args = ap.parse_args(argv)

    from tools.critique import CritiqueConfig, CritiqueRequest, critique_clip, critique_image

    root = Path(args.out or tempfile.mkdtemp(prefix="calibrate-critic-"))
    root.mkdir(parents=True, exist_ok=True)
    # Only the offline critics: no CLIP weights, no VLM endpoint, whatever the environment says.
    settings = CritiqueConfig(clip_model="none")
    t0 = time.perf_counter()
    cases = make_image_cases(root, args.n, args.seed) + make_draft_cases(root, args.n, args.seed)
    cases += make_clip_cases(root, args.n, args.seed) + make_motion_cases(root, args.n, args.seed)
    t_build = time.perf_counter() - t0
    verdicts: dict[str, str] = {}
    rows: dict[str, list[bool]] = {}
    t0 = time.perf_counter()
    for c in cases:
        if c.still:
            crit = critique_clip(c.path, c.still, settings, motion=c.motion)
        else:
            req = CritiqueRequest(
                image_path=c.path, prompt=c.prompt, width=c.width, height=c.height, expect_text=c.expect_text
            )
            crit = critique_image(req, settings)
        rejected = not crit.passed
        verdicts[c.path] = f"{crit.grade} " + ",".join(sorted({i.category for i in crit.issues}))[:28]
        rows.setdefault(c.kind, []).append(rejected)
        if args.verbose and rejected != c.bad:
            print(f"MISS {c.kind} {c.path} grade={crit.grade} issues={[i.reason for i in crit.issues]}")
            print("     ", {k: round(v, 4) for k, v in crit.scores.items()})
    t_judge = time.perf_counter() - t0

    print("| kind | n | rejected | rate |")
    print("|---|---:|---:|---|")
    bad_hits = bad_n = good_hits = good_n = 0
    for kind, rej in rows.items():
        bad = not kind.startswith("good")
        k = sum(rej)
        label = f"{k / len(rej):.0%} caught" if bad else f"{k / len(rej):.0%} false alarm"
        print(f"| {kind} | {len(rej)} | {k} | {label} |")
        if bad:
            bad_hits, bad_n = bad_hits + k, bad_n + len(rej)
        else:
            good_hits, good_n = good_hits + k, good_n + len(rej)
    print(f"| **all known-bad** | {bad_n} | {bad_hits} | **{bad_hits / bad_n:.1%} caught** (target ≥ 95%) |")
    print(f"| **all good** | {good_n} | {good_hits} | **{good_hits / good_n:.1%} rejected** (target ≤ 5%) |")
    sheet = root / "calibration_contact_sheet.png"
    contact_sheet(cases, verdicts, sheet)
    print(f"\nbuilt {len(cases)} cases in {t_build:.1f}s, judged in {t_judge:.1f}s; examples: {sheet}")
    ok = bad_hits / bad_n >= 0.95 and good_hits / good_n <= 0.05
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
