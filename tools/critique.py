"""Tool: critique. Scores a take (or a clip) with every critic that can run, and grades it A/B/C.

Critics, one file each under tools/critics/, each recorded on the take as a `CriticResult` whether it ran or not:
- `technical` (always, offline): resolution and aspect against what was asked, sharpness, exposure, blank frames;
- `ocr` (offline, rapidocr ships its models): requested on-image text read back and scored by character error rate;
- `clip` (open_clip): prompt alignment and consistency with reference shots, when weights are on this machine;
- `vlm`: a verdict from an OpenAI-compatible vision endpoint, when one is configured;
- `motion` and `drift` (clips, offline): frozen, flickering, or drifting from the still the clip was animated from.

A critic that cannot run (no weights, no endpoint, no text asked for) is recorded as not run with the reason, and
never counts as a pass. The grade comes from the critics that ran: C when any of them failed (re-shoot), B when one
of them flagged something borderline (usable, review it), A otherwise. Every limit lives in `Thresholds`; what
the critique reads of the run's settings is `CritiqueConfig`. Turning a failed critique into the next attempt is
the repair step (tools/repair.py).
"""

from __future__ import annotations

from pathlib import Path

from tools.critics.clip import clip_critic
from tools.critics.images import load_rgb
from tools.critics.inputs import CritiqueConfig, CritiqueRequest, Thresholds, thresholds_for
from tools.critics.motion import clip_critics
from tools.critics.ocr import ocr_critic
from tools.critics.technical import technical_critic
from tools.critics.vlm import vlm_critic
from tools.film import CriticResult, Critique, Grade, Issue
from tools.images import ImageError

__all__ = [
    "CritiqueConfig",
    "CritiqueRequest",
    "Thresholds",
    "critique_clip",
    "critique_files",
    "critique_image",
    "grade",
    "thresholds_for",
]


def grade(critics: list[CriticResult]) -> Critique:
    """Combine critic results: C if a critic that ran failed, B if one flagged something, else A."""
    ran = [c for c in critics if c.ran]
    scores = {k: v for c in ran for k, v in c.scores.items()}
    issues = [i for c in ran for i in c.issues]
    g: Grade = "C" if any(c.passed is False for c in ran) else ("B" if issues else "A")
    return Critique(passed=g != "C", grade=g, scores=scores, issues=issues, critics=critics)


def critique_image(req: CritiqueRequest, config: CritiqueConfig) -> Critique:
    """Run every critic that can run on one still and grade it."""
    th = thresholds_for(config)
    try:
        img = load_rgb(req.image_path)
    except (OSError, ValueError) as e:
        reason = f"image {req.image_path} cannot be read: {type(e).__name__}: {e}"
        issue = Issue(category="backend", reason=reason, critic="technical")
        tech = CriticResult(name="technical", ran=True, passed=False, issues=[issue])
        others = [
            CriticResult(name=n, ran=False, not_run_reason="image unreadable") for n in ("ocr", "clip", "vlm")
        ]
        return grade([tech, *others])
    try:
        ocr = ocr_critic(img, req, th)
    except (ImportError, RuntimeError, OSError) as e:
        ocr = CriticResult(name="ocr", ran=False, not_run_reason=f"OCR failed: {type(e).__name__}: {e}")
    return grade(
        [technical_critic(img, req, th), ocr, clip_critic(req, config, th), vlm_critic(img, req, config)]
    )


def critique_clip(
    clip_path: str, still_path: str, config: CritiqueConfig, motion: str | None = None
) -> Critique:
    """Judge a clip: frozen, flickering, or drifting from the still it was animated from.

    `motion` is the camera move the clip was asked for: a `static` clip is meant to stand still, so being frozen
    is recorded (score `motion.frozen` = 1) but is not a failure for it.
    """
    return grade(clip_critics(clip_path, still_path, thresholds_for(config), motion))


def critique_files(
    paths: list[str],
    prompt: str,
    expect_text: str | None = None,
    width: int | None = None,
    height: int | None = None,
    config: CritiqueConfig | None = None,
) -> list[dict]:
    """Judge image files for `main.py critique`: one JSON-ready dict per path, in order.

    Without width/height the asked size is each image's own (only the minimum side is checked). A file that
    cannot be read as an image (missing, a FIFO or device, corrupt, past the pixel limit) gets `{"path", "error"}`
    and the others are still judged. Without a config, the
    defaults (offline critics, and CLIP when its weights are cached).
    """
    config = config or CritiqueConfig()
    thresholds_for(config)  # a bad override is the caller's error: raise before judging anything
    out: list[dict] = []
    for path in paths:
        try:
            img = load_rgb(path)  # stat before open: a FIFO or device is refused, never waited on
        except ImageError as e:  # already names the file and what is wrong with it
            out.append({"path": path, "error": str(e)})
            continue
        except OSError as e:
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
        c = critique_image(req, config)
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
