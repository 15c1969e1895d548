"""Prompt templates: one strict jinja2 environment over the files in prompts/.

Every prompt the program writes (image prompts, negative prompts, the planner's system prompt) is a template file,
so a person can read and change the wording without touching code. The environment uses `StrictUndefined`: a
template that names a variable the caller did not pass raises instead of rendering an empty string.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


@cache
def environment() -> jinja2.Environment:
    """The shared environment: strict undefined, no HTML escaping (prompts are plain text)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, /, **variables: object) -> str:
    """Render `prompts/<name>` with `variables`; a missing variable raises `jinja2.UndefinedError`."""
    return environment().get_template(name).render(**variables).strip()


def render_line(name: str, /, **variables: object) -> str:
    """Render a template and collapse all whitespace to single spaces (image prompts are one line)."""
    return " ".join(render(name, **variables).split())
