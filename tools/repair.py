"""The repair step: turn a failing take's critique into the next attempt (`RepairPlan`), never repeating one.

What failed decides what changes: exposure → lighting words; blank or artifacts → more steps; sharpness → more
steps and focus words; misread text → the text spelled out, inpainting the misread region when OCR located it;
subject, composition, count, product or style → a rewritten prompt (the chat model when one is configured, rules
otherwise). Every attempt gets a fresh seed derived from the run seed (`take_seed`), so a re-run draws the same
takes. A person's note (`redo --note`) is applied the same way (`apply_note`). The chat model's instructions are
prompts/repair_rewrite_*.j2.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from tools.critics.inputs import CritiqueConfig
from tools.critics.ocr import requested_text
from tools.film import Issue, Shot, Take
from tools.llm import Chat, LLMError, endpoint_from
from tools.templates import render

DEFAULT_STEPS = 9  # Z-Image-Turbo's default; only the starting point when a take did not record its steps
MAX_STEPS = 50
MAX_PROMPT_CHARS = 2000  # a rewrite longer than this is the model rambling, not a prompt
REWRITE_MAX_TOKENS = 700  # one paragraph of prompt, with room
REWRITE_CATEGORIES = {"subject", "composition", "count", "product", "style"}


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


def take_seed(config: CritiqueConfig, shot: Shot, n: int, salt: int = 0) -> int:
    """The seed of take `n` of a shot: derived from the run seed, so a re-run draws the same takes."""
    digest = hashlib.sha256(f"{config.seed}:{shot.index}:{n}:{salt}".encode()).digest()
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


# --- prompt rewrites ----------------------------------------------------------------------------------------


def _llm_rewrite(shot: Shot, prompt: str, problems: str, config: CritiqueConfig) -> str:
    """The chat model's better prompt, through tools.llm.Chat.rewrite: an answer that echoes the request's
    labelled lines ("Shot: ... Problems: ...") or runs past `MAX_PROMPT_CHARS` is refused and asked again.
    Raises LLMError when no usable rewrite came.

    `problems`: one "- category: reason" line per problem (a critic's, or a person's note)."""
    user = render(
        "repair_rewrite_user.j2",
        description=shot.description,
        camera=shot.camera,
        prompt=prompt,
        problems=problems,
    )
    messages = [
        {"role": "system", "content": render("repair_rewrite_system.j2")},
        {"role": "user", "content": user},
    ]

    def fits(text: str) -> list[str]:
        return [f"the prompt is {len(text)} characters; at most {MAX_PROMPT_CHARS}"] * (
            len(text) > MAX_PROMPT_CHARS
        )

    with Chat(endpoint_from(config, "llm")) as chat:
        answer = chat.rewrite(
            messages,
            request=user,
            check=fits,
            max_tokens=config.llm_max_tokens or REWRITE_MAX_TOKENS,
            temperature=0 if config.llm_temperature is None else None,
        )
    return answer.text


def _chat_configured(config: CritiqueConfig) -> bool:
    return bool(config.llm_base_url and config.llm_model)


def apply_note(shot: Shot, note: str, config: CritiqueConfig) -> tuple[str, str]:
    """The shot's prompt changed by a person's note (`redo --note`), and how: "llm" or "appended".

    With a chat model configured (--planner llm or auto) the model rewrites the prompt as it does for a repair;
    with --planner auto a failure falls back to appending the note. With --planner llm it raises ValueError; with
    --planner offline the note is appended.
    """
    appended = f"{shot.prompt} Director's note: {note}"
    if config.planner == "offline" or not _chat_configured(config):
        return appended, "appended"
    try:
        return _llm_rewrite(shot, shot.prompt, f"- the director's note: {note}", config), "llm"
    except LLMError as e:
        if config.planner == "llm":
            raise ValueError(
                f"the chat model at {config.llm_base_url} could not apply the note ({e.detail}); try again, "
                "raise --llm-retries or --llm-timeout, or use --planner offline"
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


# --- the plan -----------------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """The next attempt while it is being decided."""

    prompt: str
    negative: str
    steps: int | None
    guidance: float | None
    mask: tuple[int, int, int, int] | None = None
    init_take: int | None = None
    actions: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    has_steps: bool = True  # False for draft panels: they have no denoising steps to raise

    def act(self, action: str) -> None:
        if action not in self.actions:
            self.actions.append(action)

    def more_steps(self, run_steps: int | None) -> None:
        if not self.has_steps:
            return
        base = self.steps or run_steps or DEFAULT_STEPS
        self.steps = min(MAX_STEPS, max(base + 2, math.ceil(base * 1.5)))
        self.act("more-steps")


def _relight(d: _Draft, issues: list[Issue]) -> None:
    dark = any("under" in i.reason for i in issues if i.category == "exposure")
    light = (
        "bright, evenly lit, balanced exposure"
        if dark
        else "soft diffused light, balanced exposure, detailed highlights"
    )
    d.prompt = _add_words(d.prompt, light)
    d.negative = _add_words(
        d.negative, "underexposed, too dark" if dark else "overexposed, washed out, blown highlights"
    )
    d.act("relight-prompt")


def _fix_text(d: _Draft, shot: Shot, issues: list[Issue], takes: list[Take], run_steps: int | None) -> None:
    last = takes[-1]
    expected = shot.expect_text or requested_text(shot.prompt) or ""
    if expected:
        d.prompt = _add_words(d.prompt, f'with the text "{expected}" clearly legible, correctly spelled')
    d.more_steps(run_steps)
    text_issue = next((i for i in issues if i.category == "text" and i.region), None)
    tried_inpaint = any((t.parameters or {}).get("mask_region") for t in takes)
    if text_issue and not last.error and not tried_inpaint:
        d.mask, d.init_take = text_issue.region, last.n
        d.act("inpaint-region")
    d.act("spell-out-text")


def _rewrite(d: _Draft, shot: Shot, issues: list[Issue], config: CritiqueConfig) -> None:
    wanted = [i for i in issues if i.category in REWRITE_CATEGORIES]
    if _chat_configured(config):
        try:
            problems = "\n".join(f"- {i.category}: {i.reason}" for i in wanted)
            d.prompt = _llm_rewrite(shot, d.prompt, problems, config)
            d.act("rewrite-prompt-llm")
            return
        except LLMError as e:
            d.reasons.append(f"LLM rewrite failed ({e.kind}: {e.detail}); rules used instead")
    d.prompt = _rule_rewrite(shot, d.prompt, wanted)
    d.act("rewrite-prompt")


def _fresh_seed(d: _Draft, shot: Shot, takes: list[Take], config: CritiqueConfig) -> int:
    """A seed no earlier take used, for an attempt no earlier take made exactly (salted until it is new)."""
    n_next = max(t.n for t in takes) + 1
    earlier = {_take_key(t) for t in takes}
    used = {t.seed for t in takes}
    salt = 0
    seed = take_seed(config, shot, n_next)
    while _attempt_key(d.prompt, d.negative, seed, d.steps, d.guidance, d.mask) in earlier or seed in used:
        salt += 1
        seed = take_seed(config, shot, n_next, salt)
    d.act("new-seed")
    return seed


def plan_repair(shot: Shot, takes: list[Take], config: CritiqueConfig) -> RepairPlan:
    """Turn the last take's critique into the next attempt; never repeats an earlier attempt exactly.

    exposure -> lighting words + new seed; blank / artifacts -> new seed + more steps; text -> spell the text out
    in quotes + more steps, inpainting the misread region when OCR located it; sharpness -> more steps + focus
    words; subject / composition / count / product / style -> rewritten prompt (LLM when configured, rules
    otherwise) + new seed; resolution / aspect / backend error -> new seed; clip problems -> new seed.
    """
    if not takes:
        raise ValueError("plan_repair needs at least one take to repair")
    last = takes[-1]
    p = last.parameters or {}
    d = _Draft(last.prompt, last.negative_prompt, p.get("num_inference_steps"), p.get("guidance_scale"))
    d.has_steps = last.backend != "draft"
    issues = _failing_issues(last)
    cats = {i.category for i in issues}
    if last.error:
        d.reasons.append(f"backend error: {last.error[:200]}")
        cats.add("backend")
    if not issues and not last.error:
        d.reasons.append("take not accepted without a recorded issue; trying another seed")
    d.reasons += [f"{i.category}: {i.reason}" for i in issues]

    if "exposure" in cats:
        _relight(d, issues)
    if cats & {"blank", "artifacts"}:
        if "artifacts" in cats:
            d.negative = _add_words(d.negative, "artifacts, distorted, deformed")
        d.more_steps(config.num_inference_steps)
    if "sharpness" in cats:
        d.prompt = _add_words(d.prompt, "sharp focus, highly detailed")
        d.negative = _add_words(d.negative, "blurry, out of focus")
        d.act("sharpen-prompt")
        d.more_steps(config.num_inference_steps)
    if "text" in cats:
        _fix_text(d, shot, issues, takes, config.num_inference_steps)
    if cats & REWRITE_CATEGORIES:
        _rewrite(d, shot, issues, config)
    seed = _fresh_seed(d, shot, takes, config)
    return RepairPlan(
        prompt=d.prompt,
        negative_prompt=d.negative,
        seed=seed,
        num_inference_steps=d.steps,
        guidance_scale=d.guidance,
        mask_region=d.mask,
        init_take=d.init_take,
        actions=d.actions,
        reason="; ".join(d.reasons),
    )
