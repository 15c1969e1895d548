"""Reading a chat model's answer: the JSON in it, a clean one-line text, whether it echoes its request or reads as
a refusal; and the strict form of a JSON schema that `response_format` json_schema (strict) accepts."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)


def parse_json(text: str) -> Any:
    """The JSON value in an answer: the whole text, a ```json fenced block, or the first {...}/[...] in prose.

    Raises ValueError (naming what was seen) when there is none.
    """
    text = (text or "").strip()
    if not text:
        raise ValueError("the answer was empty")
    candidates = [text]
    candidates += [m.group(2).strip() for m in _FENCE.finditer(text)]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    for candidate in candidates:
        for start in (m.start() for m in re.finditer(r"[{\[]", candidate)):
            try:
                return decoder.raw_decode(candidate, start)[0]
            except ValueError:
                continue
    raise ValueError(f"the answer holds no JSON (Invalid JSON: {one_line(text, 80)!r})")


def clean_reply(text: str) -> str:
    """A plain answer without code fences, a 'Prompt:' label or quotes around the whole, on one line."""
    text = re.sub(r"^```\w*\s*|\s*```$", "", (text or "").strip())
    text = re.sub(r"^(rewritten prompt|new prompt|prompt)\s*[:：]\s*", "", text, flags=re.IGNORECASE)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return " ".join(text.split())


_LABEL = re.compile(r"(?m)^[ \t]*(?:[-*•][ \t]*)?([^\W\d_][\w' ]{0,30}?)[ \t]*[:：]")


def _labels(text: str) -> set[str]:
    return {m.group(1).strip().lower() for m in _LABEL.finditer(text)}


def is_echo(answer: str, request: str) -> bool:
    """True when a rewrite repeats its request's scaffolding instead of being the rewrite.

    The request's labelled lines ("Shot: …", "Camera: …", "Problems:", "- the director's note: …") are its
    scaffolding; an answer that carries two of those labels is an echo. A request with fewer than two labels has
    no scaffolding to echo (a one-line prompt such as "a sign that says: open" is content), and a rewrite that
    reuses the request's words without its labels is not an echo.
    """
    labels = _labels(request) - {"prompt"}
    if len(labels) < 2:
        return False
    lowered = " ".join(answer.lower().split())
    echoed = {label for label in labels if re.search(rf"(?:^|[\s\-*•]){re.escape(label)}\s*[:：]", lowered)}
    return len(echoed) >= 2


_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i am unable|i'm unable|i won't|i will not|cannot help|can't assist|as an ai)\b|"
    r"^\s*(?:sorry|i'm sorry|i apologi[sz]e)\b|抱歉|无法(?:帮助|协助|完成)",
    re.IGNORECASE,
)


def reads_as_refusal(text: str) -> bool:
    """True for a short answer without JSON that declines the task ("I'm sorry, I can't help with that")."""
    text = (text or "").strip()
    return bool(text) and "{" not in text and len(text) < 600 and bool(_REFUSAL.search(text))


def strict_schema(schema: dict) -> dict:
    """`schema` as strict json_schema mode takes it: every object lists all its properties as required and
    allows no others, and `default` is dropped (a required property has none). A property that was optional keeps
    its type, so one whose default was None stays nullable (`anyOf [..., null]`) and a list stays a list the model
    may leave empty; the pydantic model still fills defaults for servers that do not enforce the schema."""

    def visit(node):
        if isinstance(node, dict):
            out = {k: visit(v) for k, v in node.items() if k != "default"}
            if out.get("type") == "object" and isinstance(out.get("properties"), dict):
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [visit(v) for v in node]
        return node

    return visit(schema)


def validation_summary(exc: ValidationError, limit: int = 8) -> list[str]:
    """Pydantic's errors as a few lines a model (and a person) can act on."""
    problems = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(x) for x in err["loc"]) or "answer"
        problems.append(f"{where}: {err['msg']}")
    if (more := len(exc.errors()) - limit) > 0:
        problems.append(f"and {more} more")
    return problems


def one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"
