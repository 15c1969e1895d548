"""The VLM critic: a verdict on a take from an OpenAI-compatible vision endpoint, as JSON (`VlmVerdict`).

Runs only when an endpoint is configured, through tools/llm.py's `Chat` (structured output negotiated per
endpoint, total deadlines, the one parser). An answer that is not the verdict asked for is asked again once; a
refusal, a still-malformed answer or an endpoint that is down is recorded as not run with the reason, never as a
pass. The wording of the ask is in prompts/vlm_critic_*.j2.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from tools.critics.inputs import CritiqueConfig, CritiqueRequest
from tools.critics.ocr import requested_text
from tools.film import CriticResult, Issue
from tools.llm import LLMError, endpoint_from, strict_schema, vision_message
from tools.llm_answers import one_line
from tools.llm_pool import CHATS
from tools.templates import render

VlmCategory = Literal["subject", "count", "composition", "text", "artifacts", "style", "product"]
VLM_RETRIES = 1  # the critic runs on every take: one retry of a bad answer, not the planner's budget
VLM_MAX_TOKENS = 600  # a verdict and a few one-line issues


class VlmIssue(BaseModel):
    category: VlmCategory = Field(description="What kind of problem.")
    reason: str = Field(description="One short sentence: what is wrong.")


class VlmVerdict(BaseModel):
    """What the vision model must answer, as JSON."""

    verdict: Literal["pass", "fail"] = Field(
        description="pass if the image is usable for the shot, else fail."
    )
    issues: list[VlmIssue] = Field(default_factory=list, description="Every problem seen, also for a pass.")


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
    """Ask the vision endpoint for a verdict through tools.llm.Chat; an answer that fails validation is asked again
    (`VLM_RETRIES`); a refusal, a still-invalid answer or an endpoint failure is not run, never a pass."""
    if not (config.vlm_base_url and config.vlm_model):
        return _not_run("no VLM endpoint configured (vlm_base_url, vlm_model)")
    endpoint = endpoint_from(config, "vlm")
    endpoint = endpoint.model_copy(update={"retries": min(endpoint.retries, VLM_RETRIES)})
    schema = strict_schema(VlmVerdict.model_json_schema())
    system = render("vlm_critic_system.j2", schema=json.dumps(schema))
    ask = render(
        "vlm_critic_user.j2", prompt=req.prompt, expect_text=requested_text(req.prompt, req.expect_text)
    )
    messages = [{"role": "system", "content": system}, vision_message(ask, img)]
    try:
        # One Chat for every take of the run: one client, and a format refusal is learned once.
        answer = CHATS.get(endpoint, flags="vlm").structured(
            messages,
            VlmVerdict,
            name="verdict",
            schema=schema,
            schema_in_prompt=True,
            max_tokens=config.llm_max_tokens or VLM_MAX_TOKENS,
            temperature=0 if config.llm_temperature is None else None,
            repair=lambda problems: render("vlm_critic_retry.j2", error="; ".join(problems)),
        )
    except LLMError as e:
        calls = {"calls": e.stats.calls}  # refused or failed calls were still made: the budget counts them
        if e.kind == "refused" and e.status is None:
            reason = f"VLM refused: {e.detail.removeprefix('answered with a refusal: ')[:200]}"
        elif e.kind == "invalid":
            reason = f"VLM answer malformed {e.stats.calls} time(s): {one_line(e.stats.problems[-1], 200)}"
        else:
            last = e.stats.problems[-1] if e.stats.problems else e.detail
            reason = f"VLM endpoint failed: {one_line(last, 300)}"
        return _not_run(reason).model_copy(update=calls)
    return _result(answer.value).model_copy(update={"calls": answer.stats.calls})
