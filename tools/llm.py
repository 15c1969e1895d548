"""The one way the project talks to a chat or vision model: an OpenAI-compatible endpoint.

Every LLM and VLM call (planner, VLM critic, repair rewrite, `redo --note`, eval rewrites, chat) goes through here.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class Endpoint(BaseModel):
    """One OpenAI-compatible chat endpoint and how to call it."""

    base_url: str = Field(description="Base URL, e.g. http://127.0.0.1:8080/v1.")
    model: str = Field(description="Model name to ask for.")
    api_key: SecretStr | None = Field(default=None, description="Key; a placeholder is sent when None.")
    timeout: float = Field(
        default=60.0, gt=0, description="Total seconds one request may take, body included."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed or invalid answer.")
    max_tokens: int | None = Field(
        default=None, gt=0, description="Cap on answer tokens; None: sized per call."
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; None: server's."
    )
