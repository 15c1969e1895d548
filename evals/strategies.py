"""Prompt strategies: how a prompt from the set becomes the prompt the image model is given.

A strategy is a template file under `prompts/strategies/` plus a small function, registered by name:

    @register("shouty", template="strategies/shouty.j2")
    def shouty(item: EvalPrompt, seed: int, settings: RunSettings, render: Render) -> str:
        '''All capitals (the first docstring line is the strategy's description).'''
        return render(prompt=item.prompt.upper())

`render(**variables)` renders the strategy's template with a strict undefined (a missing variable raises).
`needs_llm` strategies are refused at the start of a run when no chat endpoint is configured; `repair_loop`
strategies hand their prompt to the director's critique-and-repair loop instead of a single render.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from agent.settings import RunSettings
from evals.prompts import EvalPrompt
from tools.llm import Chat, Endpoint, LLMError
from tools.templates import render as render_template

LLM_MAX_WORDS = 80
LLM_TEMPERATURE = 0.7
LLM_MAX_TOKENS = 400


class StrategyError(ValueError):
    """A strategy cannot be used as asked (unknown name, endpoint not configured)."""


class RewriteFailed(RuntimeError):
    """The strategy could not produce a prompt for this one item (empty or refused rewrite); recorded, not fatal."""


class Render(Protocol):
    def __call__(self, **variables: object) -> str: ...


RewriteFn = Callable[[EvalPrompt, int, RunSettings, Render], str]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its name, template file, function and what it needs."""

    name: str
    template: str
    rewrite_fn: RewriteFn
    needs_llm: bool = False
    repair_loop: bool = False
    description: str = ""

    @property
    def slug(self) -> str:
        """Folder name for this strategy's images: the name with anything outside [A-Za-z0-9_-] made '-'."""
        return strategy_slug(self.name)

    def rewrite(self, item: EvalPrompt, seed: int, settings: RunSettings) -> str:
        """The final prompt for `item` (one line, whitespace collapsed)."""

        def render(**variables: object) -> str:
            return render_template(self.template, **variables)

        prompt = " ".join(self.rewrite_fn(item, seed, settings, render).split())
        if not prompt:
            raise RewriteFailed(f"strategy {self.name!r} produced an empty prompt")
        return prompt


STRATEGIES: dict[str, Strategy] = {}


def strategy_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def register(
    name: str,
    template: str,
    *,
    needs_llm: bool = False,
    repair_loop: bool = False,
    description: str | None = None,
):
    """Register the decorated function as strategy `name`, rendering `prompts/<template>`.

    The description defaults to the first line of the function's docstring.
    """

    def decorate(fn: RewriteFn) -> RewriteFn:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is registered twice")
        if any(s.slug == strategy_slug(name) for s in STRATEGIES.values()):
            raise ValueError(f"strategy {name!r} would share an image folder with another strategy")
        doc = (fn.__doc__ or "").strip().splitlines()
        STRATEGIES[name] = Strategy(
            name,
            template,
            fn,
            needs_llm=needs_llm,
            repair_loop=repair_loop,
            description=description or (doc[0] if doc else ""),
        )
        return fn

    return decorate


def get_strategies(names: list[str]) -> list[Strategy]:
    """The strategies named, in order; an unknown or repeated name is an error listing the registered ones."""
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise StrategyError(
            f"unknown strategy {', '.join(repr(n) for n in unknown)}; registered: {', '.join(STRATEGIES)}"
        )
    if len(set(names)) != len(names):
        raise StrategyError(f"a strategy is named twice in {','.join(names)}")
    if not names:
        raise StrategyError(f"no strategy given; registered: {', '.join(STRATEGIES)}")
    return [STRATEGIES[n] for n in names]


def check_ready(strategies: list[Strategy], settings: RunSettings) -> None:
    """Refuse, before any work, strategies whose endpoint is not configured."""
    llm = [s.name for s in strategies if s.needs_llm]
    if llm and not (settings.llm_base_url and settings.llm_model):
        raise StrategyError(
            f"strategy {', '.join(llm)} rewrites prompts with a chat model: give --llm-base-url and --llm-model "
            "(or set CD_LLM_BASE_URL and CD_LLM_MODEL; the key comes from CD_LLM_API_KEY or OPENAI_API_KEY)."
        )


# --- raw ----------------------------------------------------------------------------------------------------


@register("raw", template="strategies/raw.j2")
def raw(item: EvalPrompt, seed: int, settings: RunSettings, render: Render) -> str:
    """The prompt exactly as given (the baseline)."""
    return render(prompt=item.prompt)


# --- template -----------------------------------------------------------------------------------------------

# The first matching rule wins; each is (words that trigger it, the words added).
_MEDIA = [
    (r"\b(oil painting|watercolou?r|painting|painted)\b", "a masterful painting with visible brushwork"),
    (r"\b(drawing|sketch|pencil|charcoal|line art)\b", "a detailed drawing with confident lines"),
    (r"\b(cartoon|comic|anime|manga|illustration|illustrated|clip ?art)\b", "a polished illustration"),
    (r"\b(logo|icon|emblem|sticker)\b", "a clean vector design with crisp edges"),
    (r"\b(3d render|render|rendering|low[- ]poly|voxel|pixel art)\b", "a high-quality render"),
    (r"\b(sculpture|statue|origami|mosaic|stained glass|tapestry)\b", "a finely crafted piece, fine detail"),
]
_PHOTO = "a high-quality photograph, sharp focus, fine detail"
# A category that names a medium overrides the photographic default when the prompt's words name none.
_CATEGORY_MEDIA = {"illustrations": "a polished illustration", "arts": "a fine art piece, fine detail"}
_LIGHTING = [
    (r"\b(night|dark|moon|moonlit|neon|candle|midnight|starry)\b", "moody low-key lighting"),
    (r"\b(sunset|sunrise|dusk|dawn)\b", "warm golden-hour light"),
    (
        r"\b(beach|mountain|field|forest|desert|ocean|sky|garden|park|street|city|river|lake|outdoors?)\b",
        "natural daylight",
    ),
]
_CATEGORY_LIGHTING = {"outdoor scenes": "natural daylight", "indoor scenes": "soft interior light"}
_COMPOSITION = {
    "people": "subject centred at eye level, shallow depth of field",
    "animals": "subject centred at eye level, shallow depth of field",
    "outdoor scenes": "wide shot, balanced composition, rule of thirds",
    "indoor scenes": "wide interior view, balanced composition",
    "vehicles": "the whole vehicle in frame, three-quarter view",
    "food & beverage": "close-up, appetising arrangement",
    "produce & plants": "close-up, clean background",
    "artifacts": "the object fully in frame, clean background",
}
_COUNT = re.compile(
    r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|several|pair of|\d+)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"([^"]{1,80})"|“([^”]{1,80})”')


def _first(rules: list[tuple[str, str]], text: str) -> str | None:
    return next((words for pattern, words in rules if re.search(pattern, text, re.IGNORECASE)), None)


@register("template", template="strategies/template.j2")
def template(item: EvalPrompt, seed: int, settings: RunSettings, render: Render) -> str:
    """Rule-based enhancement: the subject, then medium, lighting and composition words chosen from its words."""
    text, category = item.prompt, item.category.lower()
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
    return render(
        subject=text.rstrip(" .") if len(text) < 200 else text,
        medium=_first(_MEDIA, text) or _CATEGORY_MEDIA.get(category, _PHOTO),
        lighting=_first(_LIGHTING, text) or _CATEGORY_LIGHTING.get(category, "soft diffused lighting"),
        composition=_COMPOSITION.get(category, "clear subject, balanced composition"),
        text=" ".join(quoted),
        countable=item.challenge.lower() == "quantity" or bool(_COUNT.search(text)),
    )


# --- llm, llm+critique --------------------------------------------------------------------------------------


@cache
def _chat(base_url: str, model: str, api_key: str | None, timeout: float, retries: int) -> Chat:
    """One Chat per endpoint for the process: rewrites are plain text, so there is no format to remember."""
    return Chat(Endpoint(base_url=base_url, model=model, api_key=api_key, timeout=timeout, retries=retries))


def llm_rewrite(item: EvalPrompt, seed: int, settings: RunSettings, render: Render) -> str:
    """Rewrite the prompt with a chat model through an OpenAI-compatible endpoint."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    chat = _chat(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout, settings.llm_retries)
    system = render(
        image_model=settings.image_model or "a diffusion model",
        max_words=LLM_MAX_WORDS,
        category=item.category,
        challenge=item.challenge,
    )
    try:
        answer = chat.rewrite(
            [{"role": "system", "content": system}, {"role": "user", "content": item.prompt}],
            request=item.prompt,
            temperature=LLM_TEMPERATURE,
            max_tokens=LLM_MAX_TOKENS,
            # Same (prompt, seed) pair, same rewrite where the server honours seeds: keeps the design paired.
            seed=seed,
        )
    except LLMError as e:
        if e.kind in ("refused", "invalid"):
            # The endpoint rejected this prompt (content policy, too long) or gave nothing usable for it: this
            # item fails, the run goes on. An outage (connection, timeout, 5xx) is not the prompt's fault.
            raise RewriteFailed(str(e)) from e
        raise
    return answer.text


register("llm", template="strategies/llm.j2", needs_llm=True)(llm_rewrite)
register(
    "llm+critique",
    template="strategies/llm.j2",
    needs_llm=True,
    repair_loop=True,
    description="The llm rewrite, then the director's critique-and-repair loop (up to --max-takes, best take kept).",
)(llm_rewrite)
