"""Structured output, negotiated per endpoint (tools/llm.py's `Chat` uses it): which `response_format` each mode
sends, how the answer's format is said in the prompt where the endpoint will not enforce it, and what counts as a
refusal of a mode.

Modes, in the order they are tried: `json_schema` (strict; a grammar-enforcing server keeps the schema) →
`json_object` with the schema in the prompt → `text` asking for a fenced JSON block. A step down is taken on a
clear refusal (`is_format_refusal`: HTTP 400/422 whose message names response_format, json_schema or json_object)
or on an answer holding no JSON at all (`no_json`). String lengths (maxLength) in a schema are sent until a server
refuses them (`is_length_refusal`), then dropped (`without_lengths`) and the same mode asked again.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

Mode = Literal["json_schema", "json_object", "text"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "text")

_FORMAT_REFUSAL = re.compile(r"response_format|json_schema|json_object|structured output|grammar", re.I)


def is_format_refusal(code: int, message: str) -> bool:
    """An HTTP error that refuses the structured mode rather than the request."""
    return code in (400, 422) and bool(_FORMAT_REFUSAL.search(message))


_LENGTH_REFUSAL = re.compile(r"\b(?:max|min)Length\b", re.I)
LENGTH_KEYS = ("maxLength", "minLength")


def is_length_refusal(code: int, message: str) -> bool:
    """An HTTP error that refuses string lengths in the schema (OpenAI's strict mode takes none)."""
    return code in (400, 422) and bool(_LENGTH_REFUSAL.search(message))


def without_lengths(schema: Any) -> Any:
    """`schema` without maxLength/minLength anywhere in it."""
    if isinstance(schema, dict):
        return {k: without_lengths(v) for k, v in schema.items() if k not in LENGTH_KEYS}
    if isinstance(schema, list):
        return [without_lengths(v) for v in schema]
    return schema


def next_mode(mode: Mode) -> Mode | None:
    """The mode to step down to, or None from plain text."""
    index = MODES.index(mode)
    return MODES[index + 1] if index + 1 < len(MODES) else None


def no_json(problems: list[str]) -> bool:
    return len(problems) == 1 and problems[0].startswith(("the answer holds no JSON", "the answer was empty"))


def response_format(mode: Mode, fmt: dict | None) -> dict | None:
    if fmt is None or mode == "text":
        return None
    if mode == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": fmt["name"], "schema": fmt["schema"], "strict": True},
    }


def with_format(messages: list[dict], mode: Mode, fmt: dict | None) -> list[dict]:
    """The messages with the answer's format said in the system prompt where the endpoint will not enforce it.

    Added to the first system message rather than as a new one: several chat templates refuse a system
    message anywhere but first.
    """
    if fmt is None or mode == "json_schema":
        return messages
    schema = (
        "" if fmt["in_prompt"] else "\nThe JSON schema:\n" + json.dumps(fmt["schema"], ensure_ascii=False)
    )
    if mode == "json_object":
        line = "Answer with one JSON object only, no prose." + schema
    else:
        line = "Answer with one JSON object only, inside a single ```json fenced block, no prose." + schema
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = out[0]["content"] + "\n\n" + line
    else:
        out.insert(0, {"role": "system", "content": line})
    return out


def content_of(completion: Any) -> tuple[str, str | None]:
    if not completion.choices:
        return "", None
    choice = completion.choices[0]
    return choice.message.content or "", choice.finish_reason


def refusal_of(completion: Any) -> str | None:
    if not completion.choices:
        return None
    choice = completion.choices[0]
    if refusal := getattr(choice.message, "refusal", None):
        return refusal
    return "content filter" if choice.finish_reason == "content_filter" else None
