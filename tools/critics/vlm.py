"""The VLM critic: a verdict on a take from an OpenAI-compatible vision endpoint, as JSON (`VlmVerdict`).

Runs only when an endpoint is configured. An answer that is not the JSON asked for gets one retry; a refusal, a
second malformed answer or an endpoint failure is recorded as not run, never as a pass. The wording of the ask is
in prompts/vlm_critic_*.j2.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from tools.critics.inputs import CritiqueConfig, CritiqueRequest
from tools.critics.ocr import requested_text
from tools.film import CriticResult, Issue
from tools.templates import render

VlmCategory = Literal["subject", "count", "composition", "text", "artifacts", "style", "product"]
VLM_ATTEMPTS = 2  # the first answer, and one retry of a malformed one


class VlmIssue(BaseModel):
    category: VlmCategory = Field(description="What kind of problem.")
    reason: str = Field(description="One short sentence: what is wrong.")


class VlmVerdict(BaseModel):
    """What the vision model must answer, as JSON."""

    verdict: Literal["pass", "fail"] = Field(
        description="pass if the image is usable for the shot, else fail."
    )
    issues: list[VlmIssue] = Field(default_factory=list, description="Every problem seen, also for a pass.")


_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i am unable|i'm unable|i won't|sorry|cannot help|can't assist)\b", re.IGNORECASE
)


def json_object(answer: str) -> str:
    """The JSON object inside a model's answer: the outermost {...}, so a ```json fence or prose around it is
    dropped. Raises ValueError when there is none."""
    m = re.search(r"\{.*\}", answer, re.DOTALL)
    if not m:
        raise ValueError("the answer holds no JSON object")
    return m.group(0)


def _data_url(img, long_side: int = 1024) -> str:
    """The image as a PNG data URL, downscaled so the request stays small."""
    from PIL import Image

    if max(img.size) > long_side:
        img = img.copy()
        img.thumbnail((long_side, long_side), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _not_run(reason: str) -> CriticResult:
    return CriticResult(name="vlm", ran=False, not_run_reason=reason)


def _result(verdict: VlmVerdict) -> CriticResult:
    issues = [Issue(category=i.category, reason=i.reason, critic="vlm") for i in verdict.issues]
    if verdict.verdict == "fail" and not issues:
        reason = "the vision model failed the image without a reason"
        issues = [Issue(category="subject", reason=reason, critic="vlm")]
    scores = {"vlm.pass": 1.0 if verdict.verdict == "pass" else 0.0, "vlm.issues": float(len(issues))}
    return CriticResult(name="vlm", ran=True, passed=verdict.verdict == "pass", scores=scores, issues=issues)


def vlm_critic(img, req: CritiqueRequest, config: CritiqueConfig) -> CriticResult:
    """Ask the vision endpoint for a verdict; malformed JSON gets one retry; never a pass when it did not run."""
    if not (config.vlm_base_url and config.vlm_model):
        return _not_run("no VLM endpoint configured (vlm_base_url, vlm_model)")
    import openai

    client = openai.OpenAI(
        base_url=config.vlm_base_url,
        api_key=config.llm_api_key.get_secret_value() if config.llm_api_key else "not-needed",
        timeout=config.llm_timeout,
        max_retries=1,
    )
    system = render("vlm_critic_system.j2", schema=json.dumps(VlmVerdict.model_json_schema()))
    ask = render(
        "vlm_critic_user.j2", prompt=req.prompt, expect_text=requested_text(req.prompt, req.expect_text)
    )
    image = {"type": "image_url", "image_url": {"url": _data_url(img)}}
    messages: list[dict] = [
        {"role": "system", "content": system},
        {"role": "user", "content": [{"type": "text", "text": ask}, image]},
    ]
    for attempt in range(1, VLM_ATTEMPTS + 1):
        try:
            resp = client.chat.completions.create(model=config.vlm_model, messages=messages, temperature=0)
        except openai.APIError as e:
            return _not_run(f"VLM endpoint failed: {type(e).__name__}: {e}")
        choice = resp.choices[0]
        content = choice.message.content or ""
        refusal = getattr(choice.message, "refusal", None)
        if refusal or choice.finish_reason == "content_filter":
            return _not_run(f"VLM refused: {refusal or choice.finish_reason}")
        try:
            return _result(VlmVerdict.model_validate_json(json_object(content)))
        except (ValueError, ValidationError) as e:
            if "{" not in content and _REFUSAL.search(content):
                return _not_run(f"VLM refused: {content[:200]}")
            if attempt == VLM_ATTEMPTS:
                return _not_run(f"VLM answer malformed twice: {str(e).splitlines()[0][:200]}")
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": render("vlm_critic_retry.j2", error=e)},
            ]
    raise AssertionError("unreachable: the loop returns on its last attempt")
