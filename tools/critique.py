"""Tool: critique. Scores a take (or a clip) and grades it A/B/C; plans the repair of a failing take.

Critics, each recorded on the take as a `CriticResult` whether it ran or not:
- `technical` (always, offline): resolution and aspect against what was asked, sharpness, exposure, blank frames;
- `ocr` (offline, rapidocr ships its models): requested on-image text read back and scored by character error rate;
- `clip` (open_clip): prompt alignment and consistency with reference shots, when weights are on this machine;
- `vlm`: a verdict from an OpenAI-compatible vision endpoint, when one is configured;
- `motion` (clips, offline): frozen, flickering, or drifting from the still the clip was animated from.

A critic that cannot run (no weights, no endpoint, no text asked for) is recorded as not run with the reason, and
never counts as a pass. The grade comes from the critics that ran: C when any of them failed (re-shoot), B when one
of them flagged something borderline (usable, review it), A otherwise. Every limit lives in `Thresholds`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import threading
import unicodedata
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from tools.film import CriticResult, Critique, Grade, Issue, Shot, Take


class CritiqueRequest(BaseModel):
    image_path: str = Field(description="Absolute path of the image to judge.")
    prompt: str = Field(description="What the image should show.")
    width: int = Field(description="Width that was asked for.")
    height: int = Field(description="Height that was asked for.")
    expect_text: str | None = Field(default=None, description="On-image text that must be readable.")
    reference_images: list[str] = Field(
        default_factory=list, description="Accepted shots to stay consistent with."
    )
    exact_size: bool = Field(
        default=True,
        description="False when no size was asked (CLI without --size): only the minimum side is checked.",
    )


class RepairPlan(BaseModel):
    """The next attempt for a failing shot: what changes, and why."""

    prompt: str
    negative_prompt: str = ""
    seed: int
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    mask_region: tuple[int, int, int, int] | None = None
    init_take: int | None = Field(
        default=None, description="Take number to edit instead of rendering afresh."
    )
    actions: list[str]
    reason: str


# ---------------------------------------------------------------------------------------------------------------
# Thresholds: the one place every limit lives.


class Thresholds(BaseModel):
    """Every limit the critics use. Override any of them per run with `RunSettings.thresholds` (name -> value).

    Luminance values are in 0..1. "fail" limits make a take C (re-shoot); "review" limits make it B.
    """

    min_side: int = Field(
        default=256,
        description="Smallest acceptable image side in pixels; a smaller size that was asked for is accepted.",
    )
    size_tolerance: float = Field(
        default=0.02,
        description="How far (fraction) each side may fall short of the asked size before failing.",
    )
    aspect_tolerance: float = Field(
        default=0.03,
        description="Largest relative difference between the image's and the asked aspect ratio.",
    )
    sharpness_fail: float = Field(
        default=0.12,
        description="Contrast-normalised edge strength (strongest 0.5% of Laplacian responses at a 512 px working "
        "size, divided by the luminance range) below which the take is blurred.",
    )
    sharpness_review: float = Field(
        default=0.2, description="Edge strength below which a take is flagged as soft."
    )
    blank_std: float = Field(
        default=0.01,
        description="Luminance standard deviation below which the frame is blank or near-uniform.",
    )
    dark_mean: float = Field(
        default=0.25, description="Mean luminance below which a frame may be under-exposed."
    )
    dark_tail_max: float = Field(
        default=0.35,
        description="Brightest 0.1% luminance below which a dark frame has no highlights at all (under-exposed).",
    )
    bright_mean: float = Field(
        default=0.5, description="Mean luminance above which a frame may be over-exposed."
    )
    bright_tail_min: float = Field(
        default=0.45,
        description="Darkest 0.1% luminance above which a bright frame has no shadows at all (over-exposed).",
    )
    washed_mean: float = Field(
        default=0.93,
        description="Mean luminance above which a nearly all-white frame is checked for lifted blacks.",
    )
    washed_dark_tail: float = Field(
        default=0.15,
        description="Darkest 0.1% luminance above which a nearly all-white frame is washed out (over-exposed); a "
        "white storyboard panel keeps its black lines.",
    )
    ocr_cer_fail: float = Field(
        default=0.2, description="Character error rate of the requested text above which the take fails."
    )
    ocr_cer_review: float = Field(
        default=0.0, description="Character error rate above which the take is flagged."
    )
    clip_alignment_fail: float = Field(
        default=0.18,
        description="CLIP image-prompt cosine similarity below which the take fails (ViT-B-32 scale).",
    )
    clip_alignment_review: float = Field(
        default=0.22, description="CLIP alignment below which a take is flagged."
    )
    clip_consistency_fail: float = Field(
        default=0.45,
        description="Mean CLIP image-image similarity to the reference shots below which it fails.",
    )
    clip_consistency_review: float = Field(
        default=0.6, description="Consistency below which a take is flagged."
    )
    frozen_motion: float = Field(
        default=0.004,
        description="Mean absolute luminance difference (first to last frame and the largest frame to frame) "
        "below which a clip counts as frozen.",
    )
    flicker_jump: float = Field(
        default=0.02,
        description="Largest brightness spike (a frame brighter or darker than both neighbours, by the smaller of "
        "the two differences in mean luminance) above which a clip flickers.",
    )
    drift_fail: float = Field(
        default=0.12,
        description="Mean absolute difference (at 64 px) between first frame and still above which "
        "the clip has drifted from the still it was animated from.",
    )


def thresholds_for(settings) -> Thresholds:
    """The run's thresholds: defaults overridden by `settings.thresholds`; an unknown name is an error."""
    overrides = dict(getattr(settings, "thresholds", None) or {})
    valid = set(Thresholds.model_fields)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"unknown critique threshold(s) {', '.join(unknown)}; valid names: {', '.join(sorted(valid))}"
        )
    return Thresholds(**overrides)


# ---------------------------------------------------------------------------------------------------------------
# Image helpers.


def _load_rgb(path: str | Path):
    """Open an image fully (so a truncated file fails here, not later) as RGB."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _luma(img, long_side: int | None = None) -> np.ndarray:
    """Luminance in 0..1 (BT.601), optionally resized so the long side is `long_side` (a size-free scale)."""
    from PIL import Image

    if long_side and max(img.size) != long_side:
        scale = long_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def sharpness(gray: np.ndarray) -> float:
    """Edge strength: the strongest 0.5% of |Laplacian| responses divided by the luminance range.

    A high percentile rather than the Laplacian's variance, because a storyboard panel is mostly flat colour and
    a variance would call it blurred; dividing by the range keeps a dark but sharp frame sharp.
    """
    lap = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4.0 * gray[1:-1, 1:-1]
    strength = float(np.percentile(np.abs(lap), 99.5))
    lo, hi = np.percentile(gray, [1, 99])
    return strength / max(float(hi - lo), 0.05)


# ---------------------------------------------------------------------------------------------------------------
# Technical critic.


def technical_critic(img, req: CritiqueRequest, th: Thresholds) -> CriticResult:
    """Resolution, aspect, blank frames, exposure and sharpness of one still."""
    w, h = img.size
    issues: list[Issue] = []
    review: list[Issue] = []
    asked_ar = req.width / req.height
    aspect_error = abs(math.log((w / h) / asked_ar))
    # Judge sharpness at one working scale (long side 512) so it does not depend on the size; never upscale,
    # which would blur a small image.
    gray = _luma(img, min(512, max(img.size)))
    mean = float(gray.mean())
    std = float(gray.std())
    # Tails at a finer scale: a storyboard's thin black lines are few pixels, and downscaling greys them out.
    fine = _luma(img, 1024) if max(img.size) > 1024 else _luma(img)
    dark_tail, bright_tail = (float(v) for v in np.percentile(fine, [0.1, 99.9]))
    sharp = sharpness(gray)
    scores = {
        "tech.width": float(w),
        "tech.height": float(h),
        "tech.aspect_error": aspect_error,
        "tech.sharpness": sharp,
        "tech.exposure_mean": mean,
        "tech.exposure_dark_tail": dark_tail,
        "tech.exposure_bright_tail": bright_tail,
        "tech.clipped_dark": float((gray <= 2 / 255).mean()),
        "tech.clipped_bright": float((gray >= 253 / 255).mean()),
        "tech.luma_std": std,
    }

    def fail(category, reason):
        issues.append(Issue(category=category, reason=reason, critic="technical"))

    # A person who asks for 320x180 gets judged against 320x180; the floor guards images of unknown intent.
    min_side = min(th.min_side, req.width, req.height) if req.exact_size else th.min_side
    if min(w, h) < min_side:
        fail("resolution", f"{w}x{h} is below the minimum side of {min_side} px")
    elif req.exact_size and (
        w < req.width * (1 - th.size_tolerance) or h < req.height * (1 - th.size_tolerance)
    ):
        fail("resolution", f"{w}x{h} is smaller than the asked {req.width}x{req.height}")
    if req.exact_size and aspect_error > th.aspect_tolerance:
        fail(
            "aspect",
            f"aspect {w / h:.3f} ({w}x{h}) differs from the asked {asked_ar:.3f} ({req.width}x{req.height})",
        )
    if std < th.blank_std:
        fail("blank", f"the frame is blank or near-uniform (luminance spread {std:.4f})")
    else:
        # Exposure needs both a shifted mean and a missing tail: a night scene keeps its highlights, a white
        # storyboard panel keeps its dark lines; a badly exposed frame has lost one end of the histogram.
        if mean < th.dark_mean and bright_tail < th.dark_tail_max:
            fail(
                "exposure",
                f"under-exposed: mean luminance {mean:.2f}, brightest pixels only {bright_tail:.2f}",
            )
        elif (mean > th.bright_mean and dark_tail > th.bright_tail_min) or (
            mean > th.washed_mean and dark_tail > th.washed_dark_tail
        ):
            fail(
                "exposure", f"over-exposed: mean luminance {mean:.2f}, darkest pixels already {dark_tail:.2f}"
            )
        if sharp < th.sharpness_fail:
            fail("sharpness", f"blurred: edge strength {sharp:.3f} below {th.sharpness_fail}")
        elif sharp < th.sharpness_review:
            review.append(
                Issue(category="sharpness", reason=f"soft: edge strength {sharp:.3f}", critic="technical")
            )
    return CriticResult(name="technical", ran=True, passed=not issues, scores=scores, issues=issues + review)


# ---------------------------------------------------------------------------------------------------------------
# OCR critic.

_QUOTED = re.compile(r'"([^"]{1,80})"|“([^”]{1,80})”|「([^」]{1,80})」|『([^』]{1,80})』|‘([^’]{1,80})’')
_PRICE = re.compile(r"[¥￥$€£]\s?\d+(?:[.,]\d+)?|\d+(?:\.\d+)?\s?元")


def requested_text(prompt: str, expect_text: str | None = None) -> str | None:
    """The on-image text a take must show: `expect_text`, else quoted words and prices in the prompt."""
    if expect_text and expect_text.strip():
        return expect_text.strip()
    parts = ["".join(g for g in m.groups() if g) for m in _QUOTED.finditer(prompt)]
    if not parts:
        parts = _PRICE.findall(prompt)
    parts = [p.strip() for p in parts if p.strip()]
    return " ".join(parts) if parts else None


def normalise_text(text: str) -> str:
    """Compare text as a reader would: NFKC (full-width to half-width), case-folded, without whitespace."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not ch.isspace())


def best_substring_distance(needle: str, haystack: str) -> tuple[int, int, int]:
    """Smallest edit distance between `needle` and any substring of `haystack` (Sellers' algorithm).

    Returns (distance, start, end) of the best substring. The image may carry other words (a storyboard panel
    prints the shot's description); the requested text only has to be there somewhere, correctly spelled.
    """
    n = len(needle)
    if not haystack:
        return n, 0, 0
    prev = list(range(n + 1))
    prev_start = [0] * (n + 1)
    best = (prev[n], 0, 0)
    for j, hc in enumerate(haystack, 1):
        cur = [0] * (n + 1)
        cur_start = [j] * (n + 1)
        for i in range(1, n + 1):
            cost = 0 if needle[i - 1] == hc else 1
            options = (
                (prev[i - 1] + cost, prev_start[i - 1]),
                (prev[i] + 1, prev_start[i]),
                (cur[i - 1] + 1, cur_start[i - 1]),
            )
            cur[i], cur_start[i] = min(options)
        if cur[n] < best[0]:
            best = (cur[n], cur_start[n], j)
        prev, prev_start = cur, cur_start
    return best


_ocr_engine = None
_ocr_lock = threading.Lock()


def _ocr():
    """The rapidocr engine, loaded once per process (its models ship inside the wheel)."""
    global _ocr_engine
    with _ocr_lock:
        if _ocr_engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as e:
                raise ImportError("the OCR critic needs rapidocr: pip install rapidocr onnxruntime") from e
            _ocr_engine = RapidOCR(params={"Global.log_level": "warning"})
        return _ocr_engine


def read_text(img) -> list[tuple[str, tuple[int, int, int, int], float]]:
    """Text lines on an image as (text, box, confidence), in reading order (top to bottom, left to right)."""
    result = _ocr()(np.asarray(img))
    if result.txts is None:
        return []
    lines = []
    for txt, box, score in zip(result.txts, result.boxes, result.scores, strict=True):
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        lines.append((txt, (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))), float(score)))
    line_h = np.median([b[3] - b[1] for _, b, _ in lines]) if lines else 1
    lines.sort(key=lambda t: (round(t[1][1] / max(line_h, 1)), t[1][0]))
    return lines


def ocr_critic(img, req: CritiqueRequest, th: Thresholds) -> CriticResult:
    """Read the requested text back and score its character error rate."""
    expected = requested_text(req.prompt, req.expect_text)
    if not expected:
        return CriticResult(name="ocr", ran=False, not_run_reason="no text requested")
    target = normalise_text(expected)
    lines = read_text(img)
    # Keep which line each character came from so the matched substring maps back to image boxes.
    chars, owner = [], []
    for k, (txt, _, _) in enumerate(lines):
        norm = normalise_text(txt)
        chars.append(norm)
        owner.extend([k] * len(norm))
    haystack = "".join(chars)
    dist, start, end = best_substring_distance(target, haystack)
    cer = dist / max(len(target), 1)
    matched = sorted({owner[i] for i in range(start, end)})
    region = None
    # Beyond this error rate the best match is other words on the image, not a misspelling of ours: the text is
    # missing, and there is no region to inpaint.
    located = bool(matched) and cer <= 0.6
    if located:
        boxes = [lines[k][1] for k in matched]
        region = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
    read = "".join(lines[k][0] for k in matched) if matched else ""
    scores = {
        "ocr.cer": cer,
        "ocr.lines": float(len(lines)),
        "ocr.confidence": float(np.mean([lines[k][2] for k in matched])) if matched else 0.0,
    }
    issues = []
    if cer > th.ocr_cer_fail:
        what = f'misread as "{read}"' if located else "not found"
        reason = f'requested text "{expected}" {what} (character error rate {cer:.2f})'
        issues.append(Issue(category="text", reason=reason, critic="ocr", region=region))
        return CriticResult(name="ocr", ran=True, passed=False, scores=scores, issues=issues)
    if cer > th.ocr_cer_review:
        reason = f'requested text "{expected}" read as "{read}" (character error rate {cer:.2f})'
        issues.append(Issue(category="text", reason=reason, critic="ocr", region=region))
    return CriticResult(name="ocr", ran=True, passed=True, scores=scores, issues=issues)


# ---------------------------------------------------------------------------------------------------------------
# CLIP critic (open_clip): alignment with the prompt and consistency with reference shots.

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # where open_clip publishes the default's weights
_HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ClipUnavailable(RuntimeError):
    """CLIP weights are not on this machine (we never download them during a run); the message says what to do."""


def _resolve_clip(spec: str | None) -> tuple[str, str | None, str]:
    """Turn `settings.clip_model` into (open_clip model name, pretrained file or None, label for the manifest).

    Accepted: a local folder laid out like a Hugging Face open_clip repo (open_clip_config.json + weights),
    `NAME:/path/to/weights`, `NAME` or `NAME:TAG` of a published model, or `hf-hub:org/repo`; the last two only
    when the weights are already in the local Hugging Face cache.
    """
    spec = (spec or f"{DEFAULT_CLIP_MODEL}:{DEFAULT_CLIP_PRETRAINED}").strip()
    if spec.lower() in {"none", "off"}:
        raise ClipUnavailable(f"CLIP critic turned off (clip_model={spec})")
    if spec == f"{DEFAULT_CLIP_MODEL}:{DEFAULT_CLIP_PRETRAINED}":
        # Ask the cache before importing open_clip (and torch): an offline run must not pay ~10 s to learn "no".
        from huggingface_hub import try_to_load_from_cache

        if not any(isinstance(try_to_load_from_cache(DEFAULT_CLIP_REPO, f), str) for f in _HUB_WEIGHT_FILES):
            raise ClipUnavailable(
                f"CLIP weights {DEFAULT_CLIP_REPO} are not in the local Hugging Face cache; download them once "
                f"(huggingface-cli download {DEFAULT_CLIP_REPO}) or set clip_model to a local folder"
            )
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache
    except ImportError as e:
        raise ClipUnavailable(f"open_clip is not installed ({e}): pip install open_clip_torch") from e
    if Path(spec).is_dir():
        if not (Path(spec) / "open_clip_config.json").is_file():
            raise ClipUnavailable(f"CLIP folder {spec} has no open_clip_config.json")
        return f"local-dir:{Path(spec).resolve()}", None, spec
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:") :].strip("/")
        name, tag = spec, None
    else:
        name, _, tag = spec.partition(":")
        if name not in open_clip.list_models():
            raise ClipUnavailable(f"unknown CLIP model {name!r} and no such folder")
        if tag and Path(tag).is_file():
            return name, tag, spec
        tags = open_clip.list_pretrained_tags_by_model(name)
        tag = tag or (
            DEFAULT_CLIP_PRETRAINED if DEFAULT_CLIP_PRETRAINED in tags else (tags[0] if tags else "")
        )
        repo = (open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or "").strip("/")
        if not repo:
            raise ClipUnavailable(f"no published weights for CLIP {name}:{tag}; give a local folder")
    for filename in _HUB_WEIGHT_FILES:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            if name.startswith("hf-hub:"):
                return f"local-dir:{Path(cached).parent}", None, spec
            return name, cached, f"{name}:{tag}"
    raise ClipUnavailable(
        f"CLIP weights {repo} are not in the local Hugging Face cache; download them once "
        f"(huggingface-cli download {repo}) or set clip_model to a local folder"
    )


_clip_cache: dict[str, tuple] = {}
_clip_lock = threading.Lock()


def load_clip(spec: str | None):
    """(model, preprocess, tokenizer, label), loaded once per process. Raises ClipUnavailable without weights."""
    with _clip_lock:
        key = spec or ""
        if key not in _clip_cache:
            name, pretrained, label = _resolve_clip(spec)
            import open_clip

            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, require_pretrained=True
            )
            model.eval()
            _clip_cache[key] = (model, preprocess, open_clip.get_tokenizer(name), label)
        return _clip_cache[key]


def _image_features(paths: list[str], model, preprocess, batch_size: int):
    import torch

    feats = []
    for i in range(0, len(paths), batch_size):
        batch = torch.stack([preprocess(_load_rgb(p)) for p in paths[i : i + batch_size]])
        with torch.no_grad():
            feats.append(torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1))
    return torch.cat(feats)


def clip_alignment(image_paths: list[str], prompts: list[str], settings, batch_size: int = 16) -> list[float]:
    """Cosine similarity of each image with its prompt (batched). Raises ClipUnavailable without weights."""
    import torch

    if len(image_paths) != len(prompts):
        raise ValueError(f"{len(image_paths)} images but {len(prompts)} prompts")
    model, preprocess, tokenizer, _ = load_clip(getattr(settings, "clip_model", None))
    images = _image_features(image_paths, model, preprocess, batch_size)
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)).float(), dim=-1)
    return [float(v) for v in (images * text).sum(-1)]


def clip_consistency(
    image_paths: list[str], reference_paths: list[str], settings, batch_size: int = 16
) -> list[float]:
    """Mean cosine similarity of each image with the reference images (batched)."""
    model, preprocess, _, _ = load_clip(getattr(settings, "clip_model", None))
    images = _image_features(image_paths, model, preprocess, batch_size)
    refs = _image_features(reference_paths, model, preprocess, batch_size)
    return [float(v) for v in (images @ refs.T).mean(-1)]


def clip_critic(req: CritiqueRequest, settings, th: Thresholds) -> CriticResult:
    """Prompt alignment and, when reference shots are given, consistency with them."""
    try:
        _, _, _, label = load_clip(getattr(settings, "clip_model", None))
    except ClipUnavailable as e:
        return CriticResult(name="clip", ran=False, not_run_reason=str(e))
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        return CriticResult(
            name="clip", ran=False, not_run_reason=f"CLIP could not load: {type(e).__name__}: {e}"
        )
    scores = {"clip.alignment": clip_alignment([req.image_path], [req.prompt], settings)[0]}
    refs = [r for r in req.reference_images if Path(r).resolve() != Path(req.image_path).resolve()]
    if refs:
        scores["clip.consistency"] = clip_consistency([req.image_path], refs, settings)[0]
    issues, review = [], []
    a = scores["clip.alignment"]
    if a < th.clip_alignment_fail:
        issues.append(
            Issue(
                category="subject",
                reason=f"image does not match the prompt (CLIP {a:.3f}, {label})",
                critic="clip",
            )
        )
    elif a < th.clip_alignment_review:
        review.append(
            Issue(category="subject", reason=f"weak match with the prompt (CLIP {a:.3f})", critic="clip")
        )
    if "clip.consistency" in scores:
        c = scores["clip.consistency"]
        if c < th.clip_consistency_fail:
            issues.append(
                Issue(
                    category="style",
                    reason=f"inconsistent with the other shots (CLIP {c:.3f})",
                    critic="clip",
                )
            )
        elif c < th.clip_consistency_review:
            review.append(
                Issue(category="style", reason=f"drifting from the other shots (CLIP {c:.3f})", critic="clip")
            )
    return CriticResult(name="clip", ran=True, passed=not issues, scores=scores, issues=issues + review)


# ---------------------------------------------------------------------------------------------------------------
# VLM critic: a verdict from an OpenAI-compatible vision endpoint.

VlmCategory = Literal["subject", "count", "composition", "text", "artifacts", "style", "product"]


class VlmIssue(BaseModel):
    category: VlmCategory = Field(description="What kind of problem.")
    reason: str = Field(description="One short sentence: what is wrong.")


class VlmVerdict(BaseModel):
    """What the vision model must answer, as JSON."""

    verdict: Literal["pass", "fail"] = Field(
        description="pass if the image is usable for the shot, else fail."
    )
    issues: list[VlmIssue] = Field(default_factory=list, description="Every problem seen, also for a pass.")


VLM_SYSTEM = (
    "You are the critic of a film's creative director. You judge one generated still against its shot prompt. "
    "Answer with one JSON object only, no prose, matching this schema: "
    + json.dumps(VlmVerdict.model_json_schema())
    + " Categories: subject (missing or wrong), count (wrong number of things), composition, text (requested "
    "on-image text missing or misspelled), artifacts (anatomy, distortions), style (inconsistent look), product "
    "(product not faithful). Fail only for problems that make the still unusable."
)
_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i am unable|i'm unable|i won't|sorry|cannot help|can't assist)\b", re.IGNORECASE
)


def _data_url(img, long_side: int = 1024) -> str:
    """The image as a PNG data URL, downscaled so the request stays small."""
    from PIL import Image

    if max(img.size) > long_side:
        img = img.copy()
        img.thumbnail((long_side, long_side), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _parse_verdict(content: str) -> VlmVerdict:
    """Parse the model's JSON answer, tolerating a ```json fence around it."""
    m = re.search(r"\{.*\}", content, re.DOTALL)
    if not m:
        raise ValueError("the answer holds no JSON object")
    return VlmVerdict.model_validate_json(m.group(0))


def vlm_critic(img, req: CritiqueRequest, settings) -> CriticResult:
    """Ask the vision endpoint for a verdict; malformed JSON gets one retry; never a pass when it did not run."""
    base_url, model = getattr(settings, "vlm_base_url", None), getattr(settings, "vlm_model", None)
    if not (base_url and model):
        return CriticResult(
            name="vlm", ran=False, not_run_reason="no VLM endpoint configured (vlm_base_url, vlm_model)"
        )
    import openai

    key = getattr(settings, "llm_api_key", None)
    client = openai.OpenAI(
        base_url=base_url,
        api_key=key.get_secret_value() if key else "not-needed",
        timeout=getattr(settings, "llm_timeout", 60.0),
        max_retries=1,
    )
    ask = f"Shot prompt: {req.prompt}"
    if expected := requested_text(req.prompt, req.expect_text):
        ask += f'\nRequested on-image text: "{expected}"'
    messages: list[dict] = [
        {"role": "system", "content": VLM_SYSTEM},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": ask},
                {"type": "image_url", "image_url": {"url": _data_url(img)}},
            ],
        },
    ]
    for attempt in range(2):
        try:
            resp = client.chat.completions.create(model=model, messages=messages, temperature=0)
        except openai.APIError as e:
            return CriticResult(
                name="vlm", ran=False, not_run_reason=f"VLM endpoint failed: {type(e).__name__}: {e}"
            )
        choice = resp.choices[0]
        content = choice.message.content or ""
        refusal = getattr(choice.message, "refusal", None)
        if refusal or choice.finish_reason == "content_filter":
            return CriticResult(
                name="vlm", ran=False, not_run_reason=f"VLM refused: {refusal or choice.finish_reason}"
            )
        try:
            verdict = _parse_verdict(content)
        except (ValueError, ValidationError) as e:
            if "{" not in content and _REFUSAL.search(content):
                return CriticResult(name="vlm", ran=False, not_run_reason=f"VLM refused: {content[:200]}")
            if attempt == 1:
                return CriticResult(
                    name="vlm",
                    ran=False,
                    not_run_reason=f"VLM answer malformed twice: {str(e).splitlines()[0][:200]}",
                )
            messages += [
                {"role": "assistant", "content": content},
                {
                    "role": "user",
                    "content": f"That answer was not valid: {e}. Reply with the JSON object only.",
                },
            ]
            continue
        issues = [Issue(category=i.category, reason=i.reason, critic="vlm") for i in verdict.issues]
        if verdict.verdict == "fail" and not issues:
            issues = [
                Issue(
                    category="subject",
                    reason="the vision model failed the image without a reason",
                    critic="vlm",
                )
            ]
        scores = {"vlm.pass": 1.0 if verdict.verdict == "pass" else 0.0, "vlm.issues": float(len(issues))}
        return CriticResult(
            name="vlm", ran=True, passed=verdict.verdict == "pass", scores=scores, issues=issues
        )
    raise AssertionError("unreachable: the loop returns on its second attempt")


# ---------------------------------------------------------------------------------------------------------------
# Grading and the image verdict.


def grade(critics: list[CriticResult]) -> Critique:
    """Combine critic results: C if a critic that ran failed, B if one flagged something, else A."""
    ran = [c for c in critics if c.ran]
    scores = {k: v for c in ran for k, v in c.scores.items()}
    issues = [i for c in ran for i in c.issues]
    g: Grade = "C" if any(c.passed is False for c in ran) else ("B" if issues else "A")
    return Critique(passed=g != "C", grade=g, scores=scores, issues=issues, critics=critics)


def critique_image(req: CritiqueRequest, settings) -> Critique:
    """Run every critic that can run on one still and grade it."""
    th = thresholds_for(settings)
    try:
        img = _load_rgb(req.image_path)
    except (OSError, ValueError) as e:
        reason = f"image {req.image_path} cannot be read: {type(e).__name__}: {e}"
        tech = CriticResult(
            name="technical",
            ran=True,
            passed=False,
            issues=[Issue(category="backend", reason=reason, critic="technical")],
        )
        others = [
            CriticResult(name=n, ran=False, not_run_reason="image unreadable") for n in ("ocr", "clip", "vlm")
        ]
        return grade([tech, *others])
    try:
        ocr = ocr_critic(img, req, th)
    except (ImportError, RuntimeError, OSError) as e:
        ocr = CriticResult(name="ocr", ran=False, not_run_reason=f"OCR failed: {type(e).__name__}: {e}")
    critics = [technical_critic(img, req, th), ocr, clip_critic(req, settings, th)]
    critics.append(vlm_critic(img, req, settings))
    return grade(critics)


# ---------------------------------------------------------------------------------------------------------------
# Clip critic: frozen, flickering, drifting from its still.


def _clip_frames(path: str, size: int = 96):
    """Yield the clip's frames as small luminance arrays (box-averaged: codec noise and sub-pixel motion fade)."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    w, h = meta["size"]
    scale = size / max(w, h)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    for raw in reader:
        frame = Image.frombuffer("RGB", (w, h), raw, "raw", "RGB", 0, 1)
        yield np.asarray(frame.convert("L").resize(small, Image.BOX), dtype=np.float32) / 255.0


def critique_clip(clip_path: str, still_path: str, settings, motion: str | None = None) -> Critique:
    """Judge a clip: frozen, flickering, or drifting from the still it was animated from.

    `motion` is the camera move the clip was asked for: a `static` clip is meant to stand still, so being frozen
    is recorded (score `motion.frozen` = 1) but is not a failure for it.
    """
    th = thresholds_for(settings)
    try:
        frames = list(_clip_frames(clip_path))
    except (OSError, RuntimeError, StopIteration) as e:
        reason = f"clip {clip_path} cannot be decoded: {type(e).__name__}: {e}"
        return grade(
            [
                CriticResult(
                    name="motion",
                    ran=True,
                    passed=False,
                    issues=[Issue(category="backend", reason=reason, critic="motion")],
                )
            ]
        )
    if len(frames) < 2:
        reason = f"clip {clip_path} has {len(frames)} frame(s)"
        return grade(
            [
                CriticResult(
                    name="motion",
                    ran=True,
                    passed=False,
                    issues=[Issue(category="motion", reason=reason, critic="motion")],
                )
            ]
        )
    stack = np.stack(frames)
    steps = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))
    means = stack.mean(axis=(1, 2))
    # Flicker is a spike: a frame that jumps away from its neighbours and back. A camera move or a fade changes
    # brightness steadily in one direction and so has no spike.
    d = np.diff(means)
    spikes = np.where(d[:-1] * d[1:] < 0, np.minimum(np.abs(d[:-1]), np.abs(d[1:])), 0.0)
    span = float(np.abs(stack[-1] - stack[0]).mean())
    frozen = span < th.frozen_motion and float(steps.max()) < th.frozen_motion
    scores = {
        "motion.frames": float(len(frames)),
        "motion.span": span,
        "motion.max_step": float(steps.max()),
        "motion.flicker": float(spikes.max()) if spikes.size else 0.0,
        "motion.frozen": 1.0 if frozen else 0.0,
    }
    issues = []
    if frozen and motion != "static":
        issues.append(
            Issue(
                category="motion",
                reason=f"frozen: the clip barely changes (difference {span:.4f})",
                critic="motion",
            )
        )
    if scores["motion.flicker"] > th.flicker_jump:
        issues.append(
            Issue(
                category="motion",
                reason=f"flicker: brightness spikes by {scores['motion.flicker']:.3f} between frames",
                critic="motion",
            )
        )
    try:
        from PIL import Image

        still = _load_rgb(still_path).convert("L").resize(frames[0].shape[::-1], Image.BOX)
    except (OSError, ValueError) as e:
        drift_result = CriticResult(
            name="drift", ran=False, not_run_reason=f"still {still_path} unreadable: {e}"
        )
    else:
        drift = float(np.abs(np.asarray(still, dtype=np.float32) / 255.0 - frames[0]).mean())
        drift_issues = []
        if drift > th.drift_fail:
            drift_issues.append(
                Issue(
                    category="motion",
                    reason=f"first frame drifts from the still (difference {drift:.3f})",
                    critic="drift",
                )
            )
        drift_result = CriticResult(
            name="drift",
            ran=True,
            passed=not drift_issues,
            scores={"motion.drift": drift},
            issues=drift_issues,
        )
    motion_result = CriticResult(name="motion", ran=True, passed=not issues, scores=scores, issues=issues)
    return grade([motion_result, drift_result])


# ---------------------------------------------------------------------------------------------------------------
# Repair: turn what failed into the next attempt.

DEFAULT_STEPS = 9  # Z-Image-Turbo's default; only the starting point when a take did not record its steps
MAX_STEPS = 50


def take_seed(settings, shot: Shot, n: int, salt: int = 0) -> int:
    """The seed of take `n` of a shot: derived from the run seed, so a re-run draws the same takes."""
    digest = hashlib.sha256(f"{getattr(settings, 'seed', 0)}:{shot.index}:{n}:{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _attempt_key(prompt, negative, seed, steps, guidance, mask) -> tuple:
    return (
        prompt.strip(),
        (negative or "").strip(),
        int(seed),
        steps,
        guidance,
        tuple(mask) if mask else None,
    )


def _take_key(t: Take) -> tuple:
    p = t.parameters or {}
    mask = p.get("mask_region")
    return _attempt_key(
        t.prompt, t.negative_prompt, t.seed, p.get("num_inference_steps"), p.get("guidance_scale"), mask
    )


def _add_words(text: str, words: str, sep: str = ", ") -> str:
    """Append words unless they are already there (repeated repairs must not pile up the same phrase)."""
    if words.casefold() in text.casefold():
        return text
    return f"{text.rstrip(' ,.')}{sep}{words}" if text.strip() else words


def _failing_issues(take: Take) -> list[Issue]:
    """Issues of the critics that failed the take (borderline notes of passing critics are not repaired)."""
    if not take.critique:
        return []
    failed = {c.name for c in take.critique.critics if c.ran and c.passed is False}
    return [i for i in take.critique.issues if i.critic in failed] or (
        list(take.critique.issues) if not take.critique.passed else []
    )


def _llm_rewrite(shot: Shot, prompt: str, problems: str, settings) -> str:
    """Ask the configured chat model for a better prompt; raises openai.APIError or ValueError on failure.

    `problems`: one "- category: reason" line per problem (a critic's, or a person's note)."""
    import openai

    key = getattr(settings, "llm_api_key", None)
    client = openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key=key.get_secret_value() if key else "not-needed",
        timeout=getattr(settings, "llm_timeout", 60.0),
        max_retries=getattr(settings, "llm_retries", 2),
    )
    resp = client.chat.completions.create(
        model=settings.llm_model,
        temperature=0,
        messages=[
            {
                "role": "system",
                "content": "You rewrite text-to-image prompts so the next render fixes the critic's "
                "problems. Keep the shot's subject, camera and mood. Reply with the new prompt only, one paragraph.",
            },
            {
                "role": "user",
                "content": f"Shot: {shot.description}\nCamera: {shot.camera}\nPrompt: {prompt}\n"
                f"Problems:\n{problems}",
            },
        ],
    )
    text = (resp.choices[0].message.content or "").strip().strip('"')
    if not text or len(text) > 2000:
        raise ValueError(f"the rewrite is {'empty' if not text else 'too long'}")
    return text


def apply_note(shot: Shot, note: str, settings) -> tuple[str, str]:
    """The shot's prompt changed by a person's note (`redo --note`), and how: "llm" or "appended".

    With a chat model configured (--planner llm or auto) the model rewrites the prompt as it does for a repair;
    with --planner auto a failure falls back to appending the note. With --planner llm it raises ValueError; with
    --planner offline the note is appended.
    """
    import openai

    appended = f"{shot.prompt} Director's note: {note}"
    configured = getattr(settings, "llm_base_url", None) and getattr(settings, "llm_model", None)
    if settings.planner == "offline" or not configured:
        return appended, "appended"
    try:
        return _llm_rewrite(shot, shot.prompt, f"- the director's note: {note}", settings), "llm"
    except (openai.APIError, ValueError) as e:
        if settings.planner == "llm":
            raise ValueError(
                f"the chat model at {settings.llm_base_url} could not apply the note "
                f"({type(e).__name__}: {e}); try again or use --planner offline"
            ) from None
        return appended, "appended"


def _rule_rewrite(shot: Shot, prompt: str, issues: list[Issue]) -> str:
    cats = {i.category for i in issues}
    if "subject" in cats or "product" in cats:
        prompt = _add_words(prompt, f"clearly showing {shot.description.rstrip('.')}")
    if "count" in cats:
        prompt = _add_words(prompt, "exactly the number of subjects described")
    if "composition" in cats:
        prompt = _add_words(prompt, f"{shot.camera}, clear focal point, balanced composition")
    if "product" in cats:
        prompt = _add_words(prompt, "accurate product shape, colours and logo")
    if "style" in cats:
        prompt = _add_words(prompt, "consistent look with the rest of the film")
    return prompt


def plan_repair(shot: Shot, takes: list[Take], settings) -> RepairPlan:
    """Turn the last take's critique into the next attempt; never repeats an earlier attempt exactly.

    exposure -> lighting words + new seed; blank / artifacts -> new seed + more steps; text -> spell the text out
    in quotes + more steps, inpainting the misread region when OCR located it; sharpness -> more steps + focus
    words; subject / composition / count / product / style -> rewritten prompt (LLM when configured, rules
    otherwise) + new seed; resolution / aspect / backend error -> new seed; clip problems -> new seed.
    """
    if not takes:
        raise ValueError("plan_repair needs at least one take to repair")
    last = takes[-1]
    n_next = max(t.n for t in takes) + 1
    p = last.parameters or {}
    prompt, negative = last.prompt, last.negative_prompt
    steps: int | None = p.get("num_inference_steps")
    guidance: float | None = p.get("guidance_scale")
    mask, init_take = None, None
    actions: list[str] = []
    reasons: list[str] = []

    def more_steps():
        nonlocal steps
        base = steps or getattr(settings, "num_inference_steps", None) or DEFAULT_STEPS
        steps = min(MAX_STEPS, max(base + 2, math.ceil(base * 1.5)))
        if "more-steps" not in actions:
            actions.append("more-steps")

    issues = _failing_issues(last)
    cats = {i.category for i in issues}
    if last.error:
        reasons.append(f"backend error: {last.error[:200]}")
        cats.add("backend")
    if not issues and not last.error:
        reasons.append("take not accepted without a recorded issue; trying another seed")
    reasons += [f"{i.category}: {i.reason}" for i in issues]

    if "exposure" in cats:
        dark = any("under" in i.reason for i in issues if i.category == "exposure")
        prompt = _add_words(
            prompt,
            "bright, evenly lit, balanced exposure"
            if dark
            else "soft diffused light, balanced exposure, detailed highlights",
        )
        negative = _add_words(
            negative, "underexposed, too dark" if dark else "overexposed, washed out, blown highlights"
        )
        actions.append("relight-prompt")
    if cats & {"blank", "artifacts"}:
        if "artifacts" in cats:
            negative = _add_words(negative, "artifacts, distorted, deformed")
        more_steps()
    if "sharpness" in cats:
        prompt = _add_words(prompt, "sharp focus, highly detailed")
        negative = _add_words(negative, "blurry, out of focus")
        actions.append("sharpen-prompt")
        more_steps()
    if "text" in cats:
        expected = shot.expect_text or requested_text(shot.prompt) or ""
        if expected:
            prompt = _add_words(prompt, f'with the text "{expected}" clearly legible, correctly spelled')
        more_steps()
        text_issue = next((i for i in issues if i.category == "text" and i.region), None)
        tried_inpaint = any((t.parameters or {}).get("mask_region") for t in takes)
        if text_issue and not last.error and not tried_inpaint:
            mask, init_take = text_issue.region, last.n
            actions.append("inpaint-region")
        actions.append("spell-out-text")
    if cats & {"subject", "composition", "count", "product", "style"}:
        rewrite_issues = [
            i for i in issues if i.category in {"subject", "composition", "count", "product", "style"}
        ]
        if getattr(settings, "llm_base_url", None) and getattr(settings, "llm_model", None):
            import openai

            try:
                problems = "\n".join(f"- {i.category}: {i.reason}" for i in rewrite_issues)
                prompt = _llm_rewrite(shot, prompt, problems, settings)
                actions.append("rewrite-prompt-llm")
            except (openai.APIError, ValueError) as e:
                reasons.append(f"LLM rewrite failed ({type(e).__name__}: {e}); rules used instead")
                prompt = _rule_rewrite(shot, prompt, rewrite_issues)
                actions.append("rewrite-prompt")
        else:
            prompt = _rule_rewrite(shot, prompt, rewrite_issues)
            actions.append("rewrite-prompt")

    # A fresh seed every time, except when inpainting (the seed matters less than the region there, but a new
    # one still keeps the attempt distinct); salt it until no earlier take had exactly this attempt.
    earlier = {_take_key(t) for t in takes}
    salt = 0
    seed = take_seed(settings, shot, n_next)
    while _attempt_key(prompt, negative, seed, steps, guidance, mask) in earlier or seed in {
        t.seed for t in takes
    }:
        salt += 1
        seed = take_seed(settings, shot, n_next, salt)
    actions.append("new-seed")
    return RepairPlan(
        prompt=prompt,
        negative_prompt=negative,
        seed=seed,
        num_inference_steps=steps,
        guidance_scale=guidance,
        mask_region=mask,
        init_take=init_take,
        actions=actions,
        reason="; ".join(reasons),
    )


# ---------------------------------------------------------------------------------------------------------------
# The CLI's entry: critique existing files without a run.


def critique_files(
    paths: list[str],
    prompt: str,
    expect_text: str | None = None,
    width: int | None = None,
    height: int | None = None,
    settings=None,
) -> list[dict]:
    """Judge image files for `main.py critique`: one JSON-ready dict per path, in order.

    Without width/height the asked size is each image's own (only the minimum side is checked). A file that
    cannot be read as an image gets `{"path", "error"}` and the others are still judged.
    """
    if settings is None:
        from agent.settings import RunSettings

        settings = RunSettings(run_dir=".")
    thresholds_for(settings)  # a bad override is the caller's error: raise before judging anything
    out: list[dict] = []
    for path in paths:
        try:
            img = _load_rgb(path)
        except (OSError, ValueError) as e:
            kind = "not found" if isinstance(e, FileNotFoundError) else "not a readable image"
            out.append({"path": path, "error": f"{path}: {kind} ({type(e).__name__}: {e})"})
            continue
        req = CritiqueRequest(
            image_path=str(Path(path).resolve()),
            prompt=prompt,
            width=width or img.width,
            height=height or img.height,
            expect_text=expect_text,
            exact_size=bool(width and height),
        )
        c = critique_image(req, settings)
        out.append(
            {
                "path": path,
                "pass": c.passed,
                "grade": c.grade,
                "scores": c.scores,
                "issues": [i.model_dump(exclude_none=True) for i in c.issues],
                "critics_run": c.critics_run,
                "critics_not_run": {x.name: x.not_run_reason for x in c.critics if not x.ran},
            }
        )
    return out
