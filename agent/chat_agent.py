"""The chat's LLM interpreter: a LangGraph agent whose tools are the director's operations.

    agent = ChatAgent(settings.endpoint("llm"))
    outcome = agent.respond(message, context, execute)   # execute(op, args) -> the reply line of that operation

One message is one run of a small graph: think (the model, through the OpenAI tool-calling API of
tools/llm.py's Chat, sees the conversation and the current storyboard) → act (each tool call checked, then run)
→ think … until the model answers in words. Every tool call is checked before anything runs: a tool that does
not exist, arguments that are not a JSON object (malformed) and arguments the pydantic model of the operation
refuses are answered to the model with what was wrong, and it may try again. Every loop is capped: at most
`MAX_ROUNDS` model turns per message, at most `MAX_MALFORMED` turns with malformed calls. Approve, redo and
deliver end the turn: their result is the reply.

The agent never touches the run directory itself; `execute` (the chat's own operation runner, the same one the
offline parser's choices go through) does, so both interpreters make the same changes and the same records.
When the model is down, times out or keeps sending malformed calls, `Outcome.failed` says why and the chat reads
the message with the offline parser instead (unless an operation already ran for it: nothing is done twice).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from agent.operation_args import OPERATIONS
from tools import llm
from tools.llm_answers import one_line, validation_summary
from tools.templates import render

if TYPE_CHECKING:
    from agent.chat import Context

MAX_ROUNDS = 6  # model turns per message
MAX_MALFORMED = 2  # turns with malformed tool calls before the message goes to the offline parser
HISTORY = 12  # earlier messages of the conversation the model sees
MAX_HISTORY_CHARS = 1500  # a long earlier reply is clamped to this
READ_ONLY = ("status", "show", "takes")  # what may run while the film is shooting
ENDS_TURN = ("approve", "redo", "deliver")  # long work: its result is the reply, the model is not asked again
SHOT_FIELDS = ("id", "kind", "duration", "description", "camera", "lighting", "mood", "motion", "subtitle")

Execute = Callable[[str, dict], str]


def _describe(op: str) -> str:
    from agent import operations

    doc = (getattr(operations, op).__doc__ or "").strip().split("\n\n")[0]
    model = OPERATIONS[op]
    extra = (model.__doc__ or "").strip() if model else ""
    return " ".join(f"{doc} {extra}".split()) or op.replace("_", " ")


def tool_definitions(names: tuple[str, ...] | list[str]) -> list[dict]:
    """The OpenAI tool definitions of the named operations: description and the argument model's JSON schema."""
    tools = []
    for name in names:
        model = OPERATIONS[name]
        parameters = model.model_json_schema() if model else {"type": "object", "properties": {}}
        parameters.pop("title", None)
        tools.append(
            {
                "type": "function",
                "function": {"name": name, "description": _describe(name), "parameters": parameters},
            }
        )
    return tools


@dataclass
class Outcome:
    """What the agent did with one message."""

    replies: list[str] = field(default_factory=list)  # each operation's reply, in order
    ops: list[str] = field(default_factory=list)  # operations that ran
    text: str = ""  # the model's own answer
    failed: str | None = None  # why the model could not be used (down, timeout, malformed calls)
    stopped: str | None = None  # why the loop ended before the model answered (the cap)
    problems: list[str] = field(default_factory=list)  # tool calls refused, and why
    rounds: int = 0

    @property
    def changed(self) -> bool:
        """An operation other than a read-only one ran: the message must not be carried out a second time."""
        return any(op not in READ_ONLY for op in self.ops)


class TurnState(TypedDict, total=False):
    messages: Annotated[list[dict], operator.add]
    calls: list[dict]
    rounds: int
    malformed: int
    replies: Annotated[list[str], operator.add]
    ops: Annotated[list[str], operator.add]
    problems: Annotated[list[str], operator.add]
    text: str
    failed: str | None
    ended: bool


@dataclass
class TurnContext:
    chat: llm.Chat
    tools: list[dict]
    allowed: tuple[str, ...]
    execute: Execute


# --- the graph's nodes ----------------------------------------------------------------------------------------


def think(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
    """One model turn: an answer in words, or tool calls."""
    ctx = runtime.context
    rounds = state.get("rounds", 0) + 1
    try:
        message = ctx.chat.tools(state["messages"], ctx.tools)
    except llm.LLMError as err:
        return {"rounds": rounds, "failed": str(err), "calls": []}
    calls = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        calls.append(
            {
                "id": getattr(call, "id", None) or f"call-{rounds}-{len(calls)}",
                "name": getattr(function, "name", None) or "",
                "arguments": getattr(function, "arguments", None),
            }
        )
    said = {"role": "assistant", "content": message.content or ""}
    if calls:
        said["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {
                    "name": c["name"],
                    # The conversation carries the call as sent; a server that sent an object gets it as JSON.
                    "arguments": c["arguments"]
                    if isinstance(c["arguments"], str)
                    else json.dumps(c["arguments"], ensure_ascii=False, default=str),
                },
            }
            for c in calls
        ]
    return {"rounds": rounds, "messages": [said], "calls": calls, "text": message.content or ""}


def _check(call: dict, allowed: tuple[str, ...]) -> tuple[dict | None, str | None, bool]:
    """(arguments, None, False) for a call that may run; else (None, what to tell the model, malformed)."""
    name = call["name"]
    if name not in OPERATIONS:
        return None, f"there is no tool named {name!r}; the tools are: {', '.join(allowed)}", False
    if name not in allowed:
        return None, f"{name} cannot run while the film is shooting; only {', '.join(allowed)} can", False
    raw = call["arguments"]
    try:
        args = json.loads(raw) if isinstance(raw, str) and raw.strip() else {} if raw in (None, "") else raw
    except json.JSONDecodeError as err:
        return (
            None,
            f"the arguments of {name} are not valid JSON ({err.msg} at {err.pos}): {one_line(raw, 120)}",
            True,
        )
    if not isinstance(args, dict):
        return None, f"the arguments of {name} must be a JSON object, not {type(args).__name__}", True
    model = OPERATIONS[name]
    if model is None:
        return {}, None, False
    try:
        model.model_validate(args)
    except ValidationError as err:
        return None, f"{name} was not run: " + "; ".join(validation_summary(err)), False
    return args, None, False


def act(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
    """Check every tool call of the last turn, run the good ones, and answer each call to the model."""
    ctx = runtime.context
    answers, replies, ops, problems = [], [], [], []
    malformed = ended = False
    for call in state["calls"]:
        if ended:
            result = f"not run: {ops[-1]} ended this turn"
        else:
            args, problem, bad = _check(call, ctx.allowed)
            malformed |= bad
            if problem:
                problems.append(problem)
                result = "Error: " + problem
            else:
                result = ctx.execute(call["name"], args)
                replies.append(result)
                ops.append(call["name"])
                ended = call["name"] in ENDS_TURN
        answers.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return {
        "messages": answers,
        "replies": replies,
        "ops": ops,
        "problems": problems,
        "malformed": state.get("malformed", 0) + malformed,
        "ended": ended,
    }


def after_think(state: TurnState) -> Literal["act", "end"]:
    return "act" if state.get("calls") and not state.get("failed") else "end"


def after_act(state: TurnState) -> Literal["think", "end"]:
    if state.get("ended") or state.get("malformed", 0) >= MAX_MALFORMED:
        return "end"
    return "think" if state.get("rounds", 0) < MAX_ROUNDS else "end"


def build_turn_graph():
    g = StateGraph(TurnState, context_schema=TurnContext)
    g.add_node("think", think)
    g.add_node("act", act)
    g.add_edge(START, "think")
    g.add_conditional_edges("think", after_think, {"act": "act", "end": END})
    g.add_conditional_edges("act", after_act, {"think": "think", "end": END})
    return g.compile()


# --- the interpreter ------------------------------------------------------------------------------------------


def _storyboard_lines(storyboard: dict | None) -> tuple[str, str]:
    if not storyboard:
        return "no storyboard yet", "[]"
    film = (
        f"{storyboard.get('title', '')!r}, {len(storyboard.get('shots', []))} shots, "
        f"{storyboard.get('duration', 0):.1f} s, {storyboard.get('width')}×{storyboard.get('height')}, "
        f"style {storyboard.get('style', '')!r}, language {storyboard.get('lang', 'en')}"
    )
    shots = [
        json.dumps(
            {"shot": i, **{k: s.get(k) for k in SHOT_FIELDS if s.get(k) not in (None, "")}},
            ensure_ascii=False,
        )
        for i, s in enumerate(storyboard.get("shots", []), 1)
    ]
    return film, "\n".join(shots)


def messages_for(message: str, context: Context, read_only: bool = False) -> list[dict]:
    """The system prompt (rules, the film, the storyboard), the conversation so far, and the new message."""
    film, shots = _storyboard_lines(context.storyboard)
    if context.film:
        film += ", " + ", ".join(f"{k} {v}" for k, v in context.film.items())
    system = render(
        "chat_agent_system.j2",
        n_shots=context.n_shots,
        lang=(context.storyboard or {}).get("lang", "en"),
        status=context.status,
        film=film,
        storyboard=shots,
        read_only=", ".join(READ_ONLY) if read_only else "",
    )
    talk = [e for e in context.history if e.get("role") in ("user", "director") and e.get("text")]
    if talk and talk[-1]["role"] == "user" and talk[-1]["text"] == message[: len(talk[-1]["text"])]:
        talk = talk[:-1]  # the chat has logged this message already
    earlier = [
        {"role": "user" if e["role"] == "user" else "assistant", "content": e["text"][:MAX_HISTORY_CHARS]}
        for e in talk[-HISTORY:]
    ]
    return [{"role": "system", "content": system}, *earlier, {"role": "user", "content": message}]


class ChatAgent:
    """The LLM interpreter of a chat: one tools/llm.py Chat (one client) for the chat's endpoint."""

    def __init__(self, endpoint: llm.Endpoint):
        self.chat = llm.Chat(endpoint)
        self.endpoint = endpoint
        self.graph = build_turn_graph()

    def close(self) -> None:
        self.chat.close()

    def respond(self, message: str, context: Context, execute: Execute, read_only: bool = False) -> Outcome:
        """Carry out one message by tool calls. Never raises for what the model did; `Outcome.failed` says
        when the model could not be used at all (the caller falls back to the offline parser)."""
        allowed = READ_ONLY if read_only else tuple(OPERATIONS)
        ctx = TurnContext(self.chat, tool_definitions(allowed), allowed, execute)
        start: TurnState = {
            "messages": messages_for(message, context, read_only),
            "rounds": 0,
            "malformed": 0,
        }
        end: dict[str, Any] = self.graph.invoke(
            start, context=ctx, config={"recursion_limit": 4 * MAX_ROUNDS}
        )
        outcome = Outcome(
            replies=end.get("replies", []),
            ops=end.get("ops", []),
            problems=end.get("problems", []),
            rounds=end.get("rounds", 0),
        )
        if end.get("failed"):
            outcome.failed = end["failed"]
        elif end.get("malformed", 0) >= MAX_MALFORMED:
            outcome.failed = (
                f"the model sent malformed tool calls {end['malformed']} times ({outcome.problems[-1]})"
            )
        elif end.get("calls") and not end.get("ended"):
            outcome.stopped = f"stopped after {MAX_ROUNDS} rounds of tool calls"
        else:
            outcome.text = (end.get("text") or "").strip() if not end.get("ended") else ""
        return outcome
