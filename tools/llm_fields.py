"""The chat-endpoint fields every tool config that talks to a language model shares.

A tool's config subclasses `ChatFields` instead of declaring them again; the names are `RunSettings`'s, so
`settings.config(ToolConfig)` fills them, and `tools.llm.endpoint_from(config)` turns them into an `Endpoint`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class ChatFields(BaseModel):
    """The chat model a tool may ask, and how: where, which model, key, deadline, retries, tokens, temperature."""

    planner: Literal["offline", "llm", "auto"] = Field(
        default="offline",
        description="offline: rules only; llm: the chat model (fail if it is down); auto: llm, else rules.",
    )
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible chat endpoint.")
    llm_model: str | None = Field(default=None, description="Chat model name.")
    llm_api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="Key of the chat and vision endpoints; a placeholder when None.",
    )
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds one request may take, body included.")
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed or invalid answer.")
    llm_max_tokens: int | None = Field(
        default=None, gt=0, description="Cap on one answer's tokens; sized per call if None."
    )
    llm_temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
