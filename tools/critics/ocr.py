"""The OCR critic: the on-image text a take was asked for, read back by rapidocr and scored by character error
rate. rapidocr ships its models inside the wheel, so it runs offline.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata

import numpy as np

from tools.critics.inputs import CritiqueRequest, Thresholds
from tools.film import CriticResult, Issue

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


_ocr_engines: dict[str, object] = {}
_ocr_lock = threading.Lock()


def _ocr(kind: str = "page"):
    """The rapidocr engine, loaded once per process (its models ship inside the wheel): "page" finds and reads
    text anywhere; "line" only recognises an image that is one line of text. Two engines, because rapidocr
    keeps a call's use_det/use_cls/use_rec on the engine: switching them per call would race between threads."""
    with _ocr_lock:
        if kind not in _ocr_engines:
            try:
                from rapidocr import RapidOCR
            except ImportError as e:
                raise ImportError("the OCR critic needs rapidocr: pip install rapidocr onnxruntime") from e
            # "error": an image with no text on it is an answer here, not a warning for the user's terminal.
            # Threads: onnxruntime's default pool is every core, and its idle threads spin: the likely cause of
            # a load of 30 on a 16-core machine while eight catalogue units read their plates and the GPU
            # waited (66% busy). A line is a tiny input: it runs on the caller's thread; a page search gets a few.
            threads = 1 if kind == "line" else min(4, os.cpu_count() or 1)
            params = {"Global.log_level": "error", "EngineConfig.onnxruntime.intra_op_num_threads": threads}
            if kind == "line":
                params |= {"Global.use_det": False, "Global.use_cls": False}
            _ocr_engines[kind] = RapidOCR(params=params)
        return _ocr_engines[kind]


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


def read_line(img) -> str:
    """The text of an image that holds one line of it (a crop of a laid-out badge): the recogniser alone, no
    detector. Reading a known box costs a few tens of milliseconds where finding text on a whole catalogue
    image costs one to four seconds on a CPU."""
    result = _ocr("line")(np.asarray(img.convert("RGB")))
    return "".join(result.txts or ())


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
