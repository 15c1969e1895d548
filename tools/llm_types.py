"""What tools/llm.py's calls take and give: the endpoint's settings, a call's cost, an answer and the one error.
Imported through tools.llm (`from tools.llm import Endpoint, LLMError`), which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr

from tools.llm_format import Mode

Kind = Literal["connect", "timeout", "status", "auth", "not_found", "refused", "invalid", "budget"]
M = TypeVar("M", bound=BaseModel)


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


class CallStats(BaseModel):
    """What one `structured`/`text` call cost; recorded by benchmarks and the manifest."""

    calls: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    mode: Mode | None = None
    problems: list[str] = Field(default_factory=list, description="Why earlier answers were asked again.")

    def add_usage(self, usage: Any) -> None:
        if usage is None:
            return
        for name in ("prompt_tokens", "completion_tokens"):
            if (n := getattr(usage, name, None)) is not None:
                setattr(self, name, (getattr(self, name) or 0) + int(n))


@dataclass
class Answer(Generic[M]):
    """A usable answer: the validated value (structured) or None (text), the answer's text, and its cost."""

    value: M | None
    text: str
    stats: CallStats = field(default_factory=CallStats)


class LLMError(RuntimeError):
    """A chat endpoint gave no usable answer; the message says which endpoint, what it did and what to change."""

    def __init__(
        self,
        message: str,
        *,
        kind: Kind,
        stats: CallStats | None = None,
        status: int | None = None,
        detail: str = "",
        value: Any = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.stats = stats or CallStats()
        self.status = status
        self.detail = detail  # what the endpoint said or did, without the advice: for callers' own messages
        # kind "invalid": the last answer that parsed and fit the schema model but failed `validate`, if any
        # (a caller may still mend it by its own rules).
        self.value = value


def endpoint_from(config: Any, which: Literal["llm", "vlm"] = "llm") -> Endpoint:
    """The Endpoint a tool's config names: `<which>_base_url` and `<which>_model`, and the `llm_*` key, timeout,
    retries, max tokens and temperature (one person, one set of servers). The config must name both."""
    return Endpoint(
        base_url=getattr(config, f"{which}_base_url"),
        model=getattr(config, f"{which}_model"),
        api_key=getattr(config, "llm_api_key", None),
        timeout=getattr(config, "llm_timeout", 60.0),
        retries=getattr(config, "llm_retries", 2),
        max_tokens=getattr(config, "llm_max_tokens", None),
        temperature=getattr(config, "llm_temperature", None),
    )
