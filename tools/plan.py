"""Tool: plan. Turns a brief or script into a storyboard.

Backends: an OpenAI-compatible chat endpoint with structured output (`llm`, tools/plan_llm.py), or the
deterministic offline planner (`offline`, tools/plan_offline.py: beats in tools/beats.py, the shot grammar as data
in tools/shot_grammar.py). Reading the brief is tools/brief.py.

    brief = read_brief(text, source="brief.md")          # BriefError on empty, oversized or binary input
    storyboard = plan_storyboard(brief, config)          # PlanError when the chosen planner cannot plan

`config` is a `PlannerConfig` (the agent builds it with `settings.config(PlannerConfig)`); any object with the same
fields is accepted. Which planner runs is `config.planner`: `offline`; `llm` (fails loudly when the endpoint is
missing or down); `auto` (the endpoint when one is configured and it answers, else offline, with the reason logged
and appended to `notes`). How the LLM plans is `config.llm_plan`: `whole` (one call), `batches` (short calls:
an outline, then `llm_batch` shots a call, tools/plan_batches.py) or `auto` (whole, then batches when the whole
answer times out or is cut off). `planner_description(config)` is the one-line answer for the startup banner.

Timing: the film has `config.shot_count()` shots and lasts `config.film_seconds()`: `duration` when given, else
`SECONDS_PER_SHOT` per shot with `shots` alone, else the length the brief names, else 20 s. No shot is shorter
than `MIN_SHOT_SECONDS`.

Offline language: subtitles are in the brief's language. When `lang` asks for another one the offline planner keeps
the brief's (it does not translate), says so in the notes, and the storyboard's `lang` is the language the subtitles
are really in, so the cut picks a font that can draw them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from tools.beats import (
    MIN_SHOT_SECONDS,
    SECONDS_PER_SHOT,
    Beat,
    PlanError,
    Unit,
    allocate_durations,
    fit_units,
    split_beats,
    split_clauses,
    split_sentences,
)
from tools.brief import MAX_BRIEF_CHARS, BriefError, detect_lang, read_brief, read_brief_settings
from tools.film import Brief, Storyboard
from tools.plan_llm import plan_llm
from tools.plan_offline import plan_offline
from tools.plan_schema import MOTIONS, SHOT_KINDS, PlannedShot, PlannedStoryboard, planner_schema

__all__ = [
    "MAX_BRIEF_CHARS", "MIN_SHOT_SECONDS", "MOTIONS", "SECONDS_PER_SHOT", "SHOT_KINDS", "Beat", "BriefError",
    "PlanError", "PlannedShot", "PlannedStoryboard", "PlannerConfig", "Unit", "allocate_durations", "detect_lang",
    "fit_units", "plan_llm", "plan_offline", "plan_storyboard", "planner_description", "planner_schema",
    "read_brief", "read_brief_settings", "split_beats", "split_clauses", "split_sentences",
]  # fmt: skip

log = logging.getLogger(__name__)


class PlannerConfig(BaseModel):
    """What the planner needs to know beyond the brief; field names are the run settings' names."""

    shots: int | None = Field(
        default=None, ge=1, le=60, description="Number of shots; from duration if None."
    )
    duration: float | None = Field(default=None, gt=0, le=600, description="Film length in seconds.")
    lang: Literal["en", "zh"] | None = Field(
        default=None, description="Subtitle language; the brief's if None."
    )
    style: str = Field(default="", description="Visual style words added to every image prompt.")
    seed: int = Field(default=0, description="Seed of the offline planner's camera choices and of the LLM.")
    width: int = Field(default=1280, description="Frame width in pixels.")
    height: int = Field(default=720, description="Frame height in pixels.")
    planner: Literal["offline", "llm", "auto"] = Field(default="offline", description="Which planner plans.")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL for planning.")
    llm_model: str | None = Field(default=None, description="Chat model name.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key; a placeholder when None.")
    llm_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one LLM request may take, body included."
    )
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed or invalid LLM answer.")
    llm_max_tokens: int | None = Field(
        default=None, gt=0, description="Cap on one answer's tokens; sized if None."
    )
    llm_temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    llm_plan: Literal["auto", "whole", "batches"] = Field(
        default="auto",
        description="whole: one call; batches: an outline, then a few shots a call; auto: whole, then batches "
        "if it times out or is cut off.",
    )
    llm_batch: int = Field(
        default=3, ge=1, le=8, description="Shots asked in one call when planning in batches."
    )

    def shot_count(self) -> int:
        """Shots to plan: `shots` if given, else one per ~2.5 s of the film."""
        if self.shots:
            return self.shots
        return max(1, min(60, round(self.film_seconds() / SECONDS_PER_SHOT)))

    def film_seconds(self) -> float:
        """`duration` if given, else 2.5 s per shot when `shots` is given, else 20 s."""
        if self.duration:
            return self.duration
        return SECONDS_PER_SHOT * self.shots if self.shots else 20.0


def planner_config(settings, brief: Brief | None = None) -> PlannerConfig:
    """A PlannerConfig from a PlannerConfig, the run settings or any object with the same fields. With neither
    a duration nor a shot count given, the length the brief names is the film's."""
    if isinstance(settings, PlannerConfig):
        config = settings
    else:
        config = PlannerConfig.model_validate(
            {name: getattr(settings, name) for name in PlannerConfig.model_fields if hasattr(settings, name)}
        )
    if brief is not None and config.duration is None and config.shots is None:
        reading = brief.reading or read_brief_settings(brief.text)
        if reading.duration:
            config = config.model_copy(update={"duration": reading.duration})
    return config


def _llm_missing(settings) -> str | None:
    """Which flag the LLM planner still needs, or None when it is configured."""
    if not settings.llm_base_url:
        return "--llm-base-url (or CD_LLM_BASE_URL)"
    if not settings.llm_model:
        return "--llm-model (or CD_LLM_MODEL)"
    return None


def planner_description(settings) -> str:
    """One plain line for the startup banner: which planner plans and why. Never shows the API key."""
    missing = _llm_missing(settings)
    where = f"{settings.llm_model} at {settings.llm_base_url}"
    if settings.planner == "offline":
        return "planner: offline (deterministic rules; --planner offline)"
    if settings.planner == "llm":
        if missing:
            return f"planner: llm, but not configured: set {missing}"
        return f"planner: llm ({where}; --planner llm, fails if the endpoint does not answer)"
    if missing:
        return f"planner: offline (--planner auto and no endpoint configured: {missing} not set)"
    return f"planner: llm ({where}; --planner auto, falls back to offline if it does not answer)"


def plan_storyboard(
    brief: Brief,
    settings,
    notes: list[str] | None = None,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> Storyboard:
    """Plan the storyboard with the backend the config chooses (`settings`: a PlannerConfig or the run settings).

    `notes`, when given, receives one line per thing the caller should tell the person (a fallback to the offline
    planner under `--planner auto`, subtitles kept in the brief's language, lines that did not fit, shots the
    rules mended); each is also logged. The storyboard's own `notes` keep them too. `on_progress` gets one line
    per request to the chat endpoint (default: logged).
    """
    settings = planner_config(settings, brief)
    missing = _llm_missing(settings)
    if settings.planner == "offline":
        return plan_offline(brief, settings, notes)
    if settings.planner == "llm":
        if missing:
            raise PlanError(f"--planner llm needs a chat endpoint: set {missing}, or use --planner offline")
        return plan_llm(brief, settings, notes, on_progress=on_progress)
    if missing:
        reason = f"planner auto: no chat endpoint configured ({missing} not set), planning offline"
    else:
        try:
            return plan_llm(brief, settings, notes, on_progress=on_progress)
        except PlanError as exc:
            reason = f"planner auto: {' '.join(str(exc).split())}; planning offline instead"
    log.warning(reason)
    if notes is not None:
        notes.append(reason)
    board = plan_offline(brief, settings, notes)
    return board.model_copy(update={"notes": [reason, *board.notes]})
