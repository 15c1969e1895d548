"""The one way the project talks to a chat or vision model: an OpenAI-compatible endpoint.

Every LLM and VLM call (planner, VLM critic, repair rewrite, `redo --note`, eval rewrites, chat) goes through here.

    chat = Chat(Endpoint(base_url="http://127.0.0.1:8080/v1", model="qwen"))   # one per endpoint, per run
    answer = chat.structured(messages, PlannedStoryboard, name="storyboard", validate=check_meaning)
    answer.value          # a validated PlannedStoryboard
    answer.stats          # CallStats: calls, tokens, seconds, the structured mode used
    chat.rewrite(messages, request=user_text).text   # a plain rewrite, refused when it echoes its request

Public names:
- `Endpoint`: the config (base_url, model, api_key, timeout, retries, max_tokens, temperature);
  `endpoint_from(config, "llm"|"vlm")` builds it from a tool's config (its `llm_*` / `vlm_*` fields).
- `Chat(endpoint, flags="llm")`: one `openai.OpenAI` client for the endpoint (`max_retries=0`: retries are ours)
  and the structured mode that endpoint was found to take, remembered for the Chat's life (make one per run).
  `flags` names the CLI prefix of the endpoint's URL and model in error advice (`"llm"` or `"vlm"`).
  - `structured(messages, schema_model, *, name, validate=None, context=None, schema=None,
    schema_in_prompt=False, max_tokens=None, temperature=None, seed=None, repair=None, on_progress=None,
    answers=None, until=None, shorter=None) -> Answer`: asks for one JSON object, parses it (`parse_json`),
    validates it with `schema_model` (pydantic, with `context`) and `validate(value) -> list[str]`; asks again
    with the problems listed (after a cut-off answer, for the `shorter` schema when given).
  - `text(messages, *, check=None, max_tokens=None, temperature=None, seed=None, on_progress=None) -> Answer`:
    plain text; `check(text) -> list[str]` problems are asked again.
  - `rewrite(messages, *, request, ...) -> Answer`: `text` with `clean_reply` and the echo check (`is_echo`).
  - `tools(messages, tools, *, max_tokens=None, on_progress=None)`: one assistant turn that may call tools
    (the OpenAI tool-calling API); returns the message, its `tool_calls` unchecked (the chat agent checks them).
- `structured(chat_or_endpoint, messages, ...)`, `text(...)`, `rewrite(...)`: the same as functions; given an
  `Endpoint`, a Chat lives for that one call only (nothing remembered).
- `Answer`: `value` (the validated model, None for text), `text` (the answer's content), `stats`.
- `CallStats`: `calls`, `prompt_tokens`, `completion_tokens` (None without usage), `seconds` (in requests),
  `mode` (`json_schema` | `json_object` | `text`), `problems` (why earlier answers were asked again).
- `LLMError`: the one error. Its message names the endpoint (base URL, model), what it did and advice naming
  only flags that exist; `.kind` is one of connect, timeout, status, auth, not_found, refused, invalid, budget;
  `.detail` is what it did without the advice.
- `parse_json`, `clean_reply`, `is_echo`, `strict_schema` (tools/llm_answers.py), `image_part`,
  `vision_message` (tools/llm_vision.py): helpers, also for callers that need them alone. The format
  negotiation's pieces are tools/llm_format.py; a Chat kept per endpoint across calls is tools/llm_pool.py;
  Endpoint, CallStats, Answer and LLMError are defined in tools/llm_types.py.

Structured output is negotiated per endpoint: `response_format` json_schema (strict) → json_object with the schema
in the prompt → plain text asking for a fenced JSON block. A step down is taken on a clear refusal (HTTP 400/422
whose message names response_format, json_schema or json_object; or an answer holding no JSON at all) and kept.
An answer without JSON counts as an answer, and the mode it steps down to always gets one. A short answer without
JSON that declines the task ("I'm sorry, I can't") is a refusal, not asked again.

Deadlines: every request has a total deadline of `Endpoint.timeout` seconds (connect, first byte and the whole
body), enforced under the HTTP client: each socket read and write waits at most the time left, so a server that
drips a byte every few seconds is cut off at the deadline. One call (`structured`, `text`) takes at most
`retries + 1` answers and `timeout * (retries + 1)` seconds in all (`answers=` and `until=` bound one call more
tightly), and a try after the first is not sent when the time left is shorter than the last answer took. A
timed-out request is not retried: a local server keeps computing the abandoned answer, and asking again the same
way only waits again.
`finish_reason == "length"` is answered by a request that asks for a shorter answer, not the same one again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tools.deadline import deadline, deadline_transport
from tools.llm_answers import (
    clean_reply,
    is_echo,
    one_line,
    parse_json,
    reads_as_refusal,
    strict_schema,
    validation_summary,
)
from tools.llm_format import (
    Mode,
    content_of,
    is_format_refusal,
    is_length_refusal,
    next_mode,
    no_json,
    refusal_of,
    response_format,
    with_format,
    without_lengths,
)
from tools.llm_types import Answer, CallStats, Endpoint, Kind, LLMError
from tools.llm_types import endpoint_from as endpoint_from  # re-exported
from tools.llm_vision import image_part as image_part  # re-exported
from tools.llm_vision import vision_message as vision_message

__all__ = [
    "Answer",
    "CallStats",
    "Chat",
    "Endpoint",
    "LLMError",
    "endpoint_from",
    "rewrite",
    "structured",
    "text",
]

PLACEHOLDER_KEY = "not-needed"  # local servers take any key; the openai client insists on one
MAX_RESENT_CHARS = 6000  # an invalid answer shown back to the model is clamped to this
M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------------------------------------------
# The client

_BREVITY = (
    "Your answer was cut off at the token limit before it was complete. Answer again, much shorter: one short "
    "sentence per text field, nothing repeated, nothing outside the answer."
)


class Chat:
    """One chat endpoint for one run: its client and the structured mode it was found to take."""

    def __init__(self, endpoint: Endpoint, *, flags: str = "llm"):
        import httpx2
        import openai

        self.endpoint = endpoint
        self.flags = flags
        self.mode: Mode = "json_schema"
        self.string_limits = True  # maxLength/minLength sent in json_schema until the server refuses them
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else PLACEHOLDER_KEY
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=key,
            max_retries=0,
            timeout=httpx2.Timeout(endpoint.timeout),
            http_client=openai.DefaultHttpxClient(transport=deadline_transport()),
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one request ----------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the chat endpoint {self.endpoint.base_url} (model {self.endpoint.model!r})"

    def _error(self, what: str, advice: str, kind: Kind, stats: CallStats, status: int | None = None):
        return LLMError(
            f"{self._where()} {what}; {advice}", kind=kind, stats=stats, status=status, detail=what
        )

    def _flag(self, name: str) -> str:
        prefix = self.flags if name in ("base-url", "model") else "llm"
        return f"--{prefix}-{name} (CD_{prefix.upper()}_{name.upper().replace('-', '_')})"

    def _request(self, messages: list[dict], stats: CallStats, until: float, call: _Call, mode: Mode):
        """One chat completion, ended by `until` (monotonic) at the latest; transport failures raise LLMError,
        or return None where asking again can help (connection errors, 5xx, 429)."""
        openai = self._openai
        ep = self.endpoint
        timeout = min(ep.timeout, until - time.monotonic())
        args = {
            "response_format": response_format(mode, call.format),
            "max_tokens": call.max_tokens or ep.max_tokens,
            "temperature": ep.temperature if call.temperature is None else call.temperature,
            "seed": call.seed,
            "tools": call.tools,
        }
        args = {k: v for k, v in args.items() if v is not None}
        started = time.monotonic()
        stats.calls += 1
        try:
            with deadline(timeout):
                completion = self.client.chat.completions.create(model=ep.model, messages=messages, **args)
        except openai.APITimeoutError:
            raise self._error(
                f"timed out after {_secs(timeout)} s total (connect, first byte and whole answer)",
                f"raise {self._flag('timeout')}, lower {self._flag('max-tokens')} or use a faster model",
                "timeout",
                stats,
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            stats.problems.append(f"connection failed ({type(exc).__name__}): {one_line(cause, 160)}")
            return None
        except openai.AuthenticationError as exc:
            raise self._error(
                f"rejected the API key (HTTP {exc.status_code})",
                "set CD_LLM_API_KEY (or OPENAI_API_KEY)",
                "auth",
                stats,
                exc.status_code,
            ) from None
        except openai.NotFoundError as exc:
            raise self._error(
                f"has no model {ep.model!r} or no chat route (HTTP 404: {one_line(exc.message, 160)})",
                f"check {self._flag('model')} and {self._flag('base-url')}",
                "not_found",
                stats,
                404,
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                name = type(exc).__name__
                stats.problems.append(f"HTTP {exc.status_code} ({name}): {one_line(exc.message, 160)}")
                return None
            raise _Refused(exc.status_code, one_line(exc.message, 300)) from None
        finally:
            stats.seconds += time.monotonic() - started
        stats.add_usage(completion.usage)
        return completion

    # -- the loop -------------------------------------------------------------------------------------------

    def _ask(self, messages: list[dict], call: _Call) -> Answer:
        """Ask until `call.judge(content, mode)` finds no problems, within the call's answers and total time."""
        stats = CallStats()
        answers = call.answers if call.answers is not None else self.endpoint.retries + 1
        started = time.monotonic()
        until = call.until or started + self.endpoint.timeout * answers
        history = list(messages)
        tries = 0  # answers and transport failures; format refusals do not count (at most two)
        last_transport, last_took = "", 0.0
        while tries < answers:
            self._check_time(stats, until, last_took, started, call)
            mode = stats.mode = self.mode if call.format else "text"
            call.progress(
                f"asking {self.endpoint.model} for {call.what} ({mode}), try {tries + 1} of {answers}"
            )
            asked = time.monotonic()
            try:
                completion = self._request(with_format(history, mode, call.format), stats, until, call, mode)
            except _Refused as refused:
                self._on_refused(refused, mode, call, stats)
                continue
            tries += 1
            last_took = time.monotonic() - asked
            if completion is None:
                last_transport = stats.problems[-1]
                if tries < answers:
                    time.sleep(min(0.5 * 2.0 ** (tries - 1), max(0.0, until - time.monotonic() - 1)))
                continue
            last_transport = ""
            content, finish = content_of(completion)
            value, problems = self._judge(completion, content, mode, call, stats)
            call.last_value = value if value is not None else call.last_value
            if not problems:
                call.progress(f"{self.endpoint.model} answered {call.what} in {stats.seconds:.1f} s")
                return Answer(value=value, text=content, stats=stats)
            history, stepped = self._ask_again(
                messages, history, content, finish, problems, mode, call, stats
            )
            if stepped:  # the next mode always gets one answer, even past the retries (at most two steps)
                answers = max(answers, tries + 1)
            call.progress(
                f"{self.endpoint.model}'s answer was not usable: {one_line(stats.problems[-1], 120)}"
            )
        raise self._gave_up(answers, last_transport, call, stats)

    def _check_time(self, stats: CallStats, until: float, last_took: float, started: float, call: _Call):
        """Before a try after the first: raise `budget` when the time left cannot hold another answer as long
        as the last one (asking a slow server again only to be cut off wastes what is left)."""
        if not stats.calls:
            return  # the first request always goes
        left = until - time.monotonic()
        if left < 0.5 or left < last_took:
            total = _secs(until - started)
            error = self._error(
                f"used its total time ({total} s) without a usable {call.what}"
                + (f" (the last answer took {_secs(last_took)} s, {_secs(max(0, left))} s were left)"
                   if left >= 0.5 else ""),
                f"raise {self._flag('timeout')} or {self._flag('retries')}",
                "budget",
                stats,
            )  # fmt: skip
            error.value = call.last_value
            raise error

    def _judge(self, completion, content: str, mode: Mode, call: _Call, stats: CallStats):
        """The answer's value and problems; a refusal (by the API or in words) raises."""
        refusal = refusal_of(completion)
        value, problems = (None, []) if refusal else call.judge(content, mode)
        if not refusal and no_json(problems) and reads_as_refusal(content):
            refusal = content
        if refusal:
            raise self._error(
                f"answered with a refusal: {one_line(refusal)}",
                f"rephrase the request or try another {self._flag('model')}",
                "refused",
                stats,
            )
        return value, problems

    def _gave_up(self, answers: int, last_transport: str, call: _Call, stats: CallStats) -> LLMError:
        if last_transport:
            return self._error(
                f"failed {answers} time(s): {last_transport}",
                f"check {self._flag('base-url')} and that the server is running, or raise {self._flag('retries')}",
                "status" if last_transport.startswith("HTTP") else "connect",
                stats,
            )
        error = self._error(
            f"answered {answers} time(s) without a usable {call.what}: first problem: "
            f"{one_line(stats.problems[0], 240)}",
            f"try another {self._flag('model')}, or raise {self._flag('retries')} or {self._flag('max-tokens')}",
            "invalid",
            stats,
        )
        error.value = call.last_value
        return error

    def _ask_again(self, messages, history, content, finish, problems, mode: Mode, call: _Call, stats):
        """The conversation for the next try after an unusable answer, and whether the mode stepped down."""
        if finish == "length":
            # A looping or long-winded answer: asking the same again loops again, so ask for less.
            stats.problems.append(
                f"cut off at the token limit ({call.max_tokens or self.endpoint.max_tokens})"
            )
            ask = _BREVITY
            if call.shorter and call.format:
                call.format = call.format | {"schema": call.shorter}
                ask += " Write only these keys: " + ", ".join(call.shorter.get("properties", {})) + "."
            return [*messages, {"role": "user", "content": ask}], False
        stepped = mode != "text" and no_json(problems)
        if stepped:
            # The server ignored the response format: say so in the next one (all inside the total time).
            stats.problems.append(problems[0])
            self._step_down(problems[0], call)
        else:
            stats.problems.append("; ".join(problems))
        shown = {"role": "assistant", "content": content[:MAX_RESENT_CHARS]}
        return [*history, shown, {"role": "user", "content": call.repair(problems)}], stepped

    def _on_refused(self, refused: _Refused, mode: Mode, call: _Call, stats: CallStats) -> None:
        """A 4xx: a refusal of string lengths drops them, one of the structured mode steps down; any other is
        the caller's to fix."""
        if mode == "json_schema" and self.string_limits and is_length_refusal(refused.code, refused.message):
            self.string_limits = False
            call.format = call.format | {"schema": without_lengths(call.format["schema"])}
            call.progress(
                f"{self.endpoint.model} does not take maxLength in a schema; sending none from now on"
            )
            return
        if mode != "text" and is_format_refusal(refused.code, refused.message):
            self._step_down(f"HTTP {refused.code}: {refused.message}", call)
            return
        raise self._error(
            f"refused the request (HTTP {refused.code}: {refused.message})",
            f"check {self._flag('model')} and {self._flag('base-url')}",
            "refused",
            stats,
            refused.code,
        )

    def _step_down(self, why: str, call: _Call) -> None:
        """The endpoint does not take the current structured mode: use the next one for the rest of the run."""
        if (lower := next_mode(self.mode)) is not None:
            self.mode = lower
            call.progress(
                f"{self.endpoint.model} does not take structured output this way ({one_line(why, 100)}); "
                f"using {self.mode} from now on"
            )

    # -- public calls ---------------------------------------------------------------------------------------

    def structured(
        self,
        messages: Sequence[dict],
        schema_model: type[M],
        *,
        name: str,
        validate: Callable[[M], list[str]] | None = None,
        context: dict | None = None,
        schema: dict | None = None,
        schema_in_prompt: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        repair: Callable[[list[str]], str] | None = None,
        on_progress: Callable[[str], None] | None = None,
        answers: int | None = None,
        until: float | None = None,
        shorter: dict | None = None,
    ) -> Answer[M]:
        """One `schema_model` from the endpoint, validated by pydantic (with `context`) and by `validate`.

        `schema` overrides `schema_model.model_json_schema()` (e.g. to carry minItems/maxItems/maxLength; a
        server that refuses maxLength gets the schema without it from then on); with `schema_in_prompt` the
        caller's messages already hold it, so modes without json_schema add only the format line.
        `repair(problems)` writes the ask-again message (default: the problems listed). `answers` and `until`
        (a `time.monotonic()` deadline) bound this call more tightly than the endpoint's retries and timeout;
        `shorter` is the (smaller) schema asked for after an answer cut off at the token limit.
        """

        def judge(content: str, mode: Mode) -> tuple[Any, list[str]]:
            try:
                obj = parse_json(content)
            except ValueError as exc:
                return None, [str(exc)]
            try:
                value = schema_model.model_validate(obj, context=context)
            except ValidationError as exc:
                return None, validation_summary(exc)
            return value, list(validate(value)) if validate else []

        schema = schema or strict_schema(schema_model.model_json_schema())
        fmt = {
            "name": re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64],
            "schema": schema if self.string_limits else without_lengths(schema),
            "in_prompt": schema_in_prompt,
        }
        call = _Call(judge, name, fmt, max_tokens, temperature, seed, repair or _default_repair, on_progress)
        call.answers, call.until = answers, until
        call.shorter = shorter if shorter is None or self.string_limits else without_lengths(shorter)
        return self._ask(list(messages), call)

    def text(
        self,
        messages: Sequence[dict],
        *,
        check: Callable[[str], list[str]] | None = None,
        what: str = "answer",
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Answer:
        """A plain-text answer; `check(text)` problems (and an empty answer) are asked again."""

        def judge(content: str, mode: Mode) -> tuple[Any, list[str]]:
            if not content.strip():
                return None, ["the answer was empty"]
            return None, list(check(content)) if check else []

        call = _Call(judge, what, None, max_tokens, temperature, seed, _default_repair, on_progress)
        return self._ask(list(messages), call)

    def rewrite(
        self,
        messages: Sequence[dict],
        *,
        request: str,
        check: Callable[[str], list[str]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Answer:
        """A rewritten text (e.g. an image prompt): cleaned by `clean_reply`; refused and asked again when it
        echoes `request` (the user message it answers) or fails `check`. `Answer.text` is the cleaned text."""

        def checked(content: str) -> list[str]:
            cleaned = clean_reply(content)
            if not cleaned:
                return ["the answer was empty"]
            if is_echo(content, request):
                return [
                    "the answer repeats the request's labelled lines; reply with only the rewritten text, "
                    "no labels, no notes"
                ]
            return list(check(cleaned)) if check else []

        answer = self.text(
            messages,
            check=checked,
            what="rewrite",
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            on_progress=on_progress,
        )
        answer.text = clean_reply(answer.text)
        return answer

    def tools(
        self,
        messages: Sequence[dict],
        tools: list[dict],
        *,
        max_tokens: int | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Any:
        """One assistant turn that may call `tools` (OpenAI tool definitions): the completion's message, whose
        `.tool_calls` (name, raw argument string) are the caller's to check and answer. Transport failures are
        asked again as in `structured`, within retries + 1 requests and the total time; then LLMError."""
        ep = self.endpoint
        stats = CallStats()
        until = time.monotonic() + ep.timeout * (ep.retries + 1)
        call = _Call(
            lambda c, m: (None, []), "tool call", None, max_tokens, None, None, _default_repair, on_progress
        )
        call.tools = tools
        for tries in range(1, ep.retries + 2):
            call.progress(f"asking {ep.model} for a tool call, try {tries}")
            try:
                completion = self._request(list(messages), stats, until, call, "text")
            except _Refused as refused:
                raise self._error(
                    f"refused the tool call request (HTTP {refused.code}: {refused.message})",
                    f"use a model and server that take OpenAI tool calls ({self._flag('model')})",
                    "refused",
                    stats,
                    refused.code,
                ) from None
            if completion is not None and completion.choices:
                return completion.choices[0].message
            if completion is not None:
                stats.problems.append("the answer held no choices")
            if tries <= ep.retries:
                time.sleep(min(0.5 * 2.0 ** (tries - 1), max(0.0, until - time.monotonic() - 1)))
        raise self._error(
            f"failed {ep.retries + 1} time(s): {stats.problems[-1]}",
            f"check {self._flag('base-url')} and that the server is running",
            "connect",
            stats,
        )


@dataclass
class _Call:
    """What one `structured`/`text` call asks for, carried through its tries."""

    judge: Callable[[str, Mode], tuple[Any, list[str]]]
    what: str
    format: dict | None  # name, schema, in_prompt; None for plain text
    max_tokens: int | None
    temperature: float | None
    seed: int | None
    repair: Callable[[list[str]], str]
    on_progress: Callable[[str], None] | None
    tools: list[dict] | None = None  # OpenAI tool definitions (Chat.tools)
    answers: int | None = None  # answers this call may take; None: the endpoint's retries + 1
    shorter: dict | None = None  # the schema asked for after an answer cut off at the token limit
    last_value: Any = None  # the last answer that fit the schema model but not `validate`
    until: float | None = None  # monotonic deadline of the whole call; None: timeout x answers from its start

    def progress(self, line: str) -> None:
        if self.on_progress:
            self.on_progress(line)


class _Refused(Exception):
    """A 4xx other than 401/404: maybe a structured-output refusal, decided by the loop."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}".removesuffix(".0")


def _default_repair(problems: list[str]) -> str:
    lines = "\n".join(f"- {p}" for p in problems)
    return f"That answer cannot be used:\n{lines}\nAnswer again in full, with these fixed."


# --------------------------------------------------------------------------------------------------------------
# The same as functions


def _once(target: Chat | Endpoint, method: str, *args, **kwargs):
    if isinstance(target, Chat):
        return getattr(target, method)(*args, **kwargs)
    with Chat(target) as chat:
        return getattr(chat, method)(*args, **kwargs)


def structured(
    target: Chat | Endpoint, messages: Sequence[dict], schema_model: type[M], **kwargs
) -> Answer[M]:
    """`Chat.structured`; given an Endpoint, through a Chat for this call only."""
    return _once(target, "structured", messages, schema_model, **kwargs)


def text(target: Chat | Endpoint, messages: Sequence[dict], **kwargs) -> Answer:
    """`Chat.text`; given an Endpoint, through a Chat for this call only."""
    return _once(target, "text", messages, **kwargs)


def rewrite(target: Chat | Endpoint, messages: Sequence[dict], **kwargs) -> Answer:
    """`Chat.rewrite`; given an Endpoint, through a Chat for this call only."""
    return _once(target, "rewrite", messages, **kwargs)
