"""Tool: plan. Turns a brief or script into a storyboard.

Backends: an OpenAI-compatible chat endpoint with structured output (`llm`), or the deterministic offline
planner (`offline`): beat splitting for Chinese and English, a shot grammar, and prompt templates in prompts/.
"""

from __future__ import annotations

from agent.state import Brief, Storyboard


class BriefError(ValueError):
    """The brief cannot be used; the message says what is wrong and what to do."""


class PlanError(RuntimeError):
    """Planning failed (endpoint down, answers never valid); the message says what to do."""


def read_brief(raw: bytes | str, source: str = "argument") -> Brief:
    """Validate and decode a brief: empty, too long or binary input raises BriefError."""
    raise NotImplementedError


def plan_storyboard(brief: Brief, settings) -> Storyboard:
    """Plan the storyboard with the backend the settings choose."""
    raise NotImplementedError
