"""The chat: a conversation over one run directory. Message → interpreter → operation → reply.

The first message is the brief (or the path of a brief or script file); the director answers with the storyboard.
Every later message goes to an interpreter: the offline parser (`Interpreter`: one of `OPERATIONS` with its
arguments, or a question, or what it can do), or, with `--llm-base-url/--llm-model`, the LLM agent of
agent/chat_agent.py, which calls the same operations as tools through the same runner (`_run`). When the LLM is
down, times out or sends malformed calls, that message is read by the offline parser, and the reply says so. The run directory is the chat's memory: `chat.jsonl` holds every message and every action, one JSON per
line, append only, so `Chat.resume(root)` continues a stopped chat where it was.

Bad input (empty, huge, binary, shot 99, a missing image) gets a clear reply; the chat goes on.
"""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from agent import chat_parser, director, operations
from agent.operation_args import OPERATIONS, Change, OperationError
from agent.rundir import MARKER, RunDir, RunDirError, read_json
from agent.settings import RunSettings, SettingsError
from tools.plan import BriefError, PlanError, read_brief

MAX_MESSAGE = 20_000  # a brief may be this long; any other request is far shorter
MAX_BRIEF_FILE = 1_000_000
BRIEF_SUFFIXES = (".txt", ".md", ".fountain", ".text", ".brief")
# One sheet drawer per run directory in this process: two drawers would rename each other's temporary file.
_DRAWING: dict[Path, threading.Lock] = {}
_DRAWING_LOCK = threading.Lock()


def _drawing(root: Path) -> threading.Lock:
    with _DRAWING_LOCK:
        return _DRAWING.setdefault(root.resolve(), threading.Lock())


STORYBOARD_OPS = {
    "revise_shot",
    "add_shot",
    "remove_shot",
    "move_shot",
    "swap_shots",
    "set_film",
    "set_line",
    "undo",
}


@dataclass
class Context:
    """What an interpreter may know when it reads a message."""

    n_shots: int
    status: str
    history: list[dict] = field(default_factory=list)
    storyboard: dict | None = None
    film: dict = field(default_factory=dict)  # film settings the storyboard does not hold (platforms)


class Interpreter(Protocol):
    """Maps one message to an operation (`Parsed.op` + `.args`), a question, or a refusal."""

    def interpret(self, message: str, context: Context) -> chat_parser.Parsed: ...


class Agent(Protocol):
    """Carries out one message itself, by calling operations through `execute` (agent/chat_agent.py)."""

    def respond(self, message: str, context: Context, execute, read_only: bool = False): ...


class OfflineInterpreter:
    """The deterministic English/Chinese parser."""

    def interpret(self, message: str, context: Context) -> chat_parser.Parsed:
        return chat_parser.parse(message, context.n_shots)


def default_interpreter(settings: RunSettings) -> Interpreter | Agent:
    """The LLM agent when the run names a chat endpoint (--llm-base-url and --llm-model), else the parser."""
    if settings.llm_base_url and settings.llm_model:
        from agent.chat_agent import ChatAgent

        return ChatAgent(settings.endpoint("llm"))
    return OfflineInterpreter()


def _junk_share(text: str) -> float:
    bad = sum(
        1
        for ch in text
        if ch not in "\n\t\r" and (ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn"))
    )
    return bad / max(1, len(text))


def _lang(text: str) -> str:
    return "zh" if chat_parser._CJK.search(text) else "en"


class Chat:
    """One conversation. `say` receives lines to show while something runs (progress of a shoot)."""

    def __init__(
        self,
        root: Path,
        settings: RunSettings,
        interpreter: Interpreter | Agent | None = None,
        say: Callable[[str], None] | None = None,
        background: bool = False,
    ):
        self.root = Path(root)
        self.settings = settings
        self.interpreter = interpreter or default_interpreter(settings)
        self.offline = OfflineInterpreter()
        self.say = say or (lambda line: None)
        self.background = background  # shoot in a thread, so that the chat answers while shots render
        self.history: list[dict] = []
        self._pending: list[dict] = []  # logged before the run directory exists
        self._job: threading.Thread | None = None
        self._job_result: str | None = None
        self._sheet_job: threading.Thread | None = None
        self._sheet_lock = threading.Lock()
        self._sheet_dirty = False
        self._seen: dict[tuple[str, int], bool] = {}  # takes announced while shooting: (shot, n) -> judged

    # --- memory ---------------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, root: Path, interpreter: Interpreter | None = None, say=None, background=False) -> Chat:
        root = director.check_run_dir(root)
        chat = cls(root, director.load_settings(root), interpreter, say, background)
        log = root / "chat.jsonl"
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                try:
                    chat.history.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: the rest of the history still counts
        return chat

    @property
    def started(self) -> bool:
        return (self.root / MARKER).exists() and (self.root / "storyboard.json").exists()

    def _log(self, role: str, **entry) -> None:
        record = {"time": round(time.time(), 3), "role": role, **entry}
        self.history.append(record)
        if not self.started:
            self._pending.append(record)
            return
        with (self.root / "chat.jsonl").open("a", encoding="utf-8") as f:
            for item in [*self._pending, record]:
                f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
        self._pending.clear()

    def status(self) -> str:
        return read_json(self.root / MARKER).get("status", "unknown") if self.started else "new"

    # --- a message ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str:
        """The reply to one message. Never raises for anything the person typed."""
        reply = self._reply(message)
        self._log("director", text=reply)
        return reply

    def _reply(self, message: str) -> str:
        text = (message or "").strip()
        self._log("user", text=text[:MAX_MESSAGE])
        lang = _lang(text)
        if not text:
            if self.started:
                return "Say what to change, e.g. 'make shot 3 a close-up at night', or 'go' to shoot."
            return "First, the brief: what is the film about? e.g. 'a 20-second launch film for wireless headphones'."
        if _junk_share(text) > 0.05:
            return "That looks like binary data, not a message. Type the brief or a change in words."
        if len(text) > MAX_MESSAGE:
            return (
                f"That message is {len(text):,} characters; the most I read at once is {MAX_MESSAGE:,}. "
                "Put a long brief in a file and give me its path."
            )
        if not self.started:
            return self._brief(text)
        if self._job and self._job.is_alive():
            if hasattr(self.interpreter, "respond"):
                return self._converse(text, lang, read_only=True)
            return self._reply_while_shooting(self.interpreter, text)
        if self._job_result:
            done, self._job_result = self._job_result, None
            return done + "\n" + self._interpret(text, lang)
        return self._interpret(text, lang)

    def _context(self) -> Context:
        try:
            storyboard = read_json(self.root / "storyboard.json")
        except (OSError, ValueError):
            storyboard = None
        n = len(storyboard.get("shots", [])) if storyboard else 0
        settings = director.load_settings(self.root)
        film = {"platforms": ", ".join(settings.platforms or [settings.platform])}
        return Context(
            n_shots=n, status=self.status(), history=self.history[-40:], storyboard=storyboard, film=film
        )

    def _interpret(self, text: str, lang: str) -> str:
        if hasattr(self.interpreter, "respond"):
            return self._converse(text, lang)
        return self._parsed(self.interpreter, text, lang)

    def _converse(self, text: str, lang: str, read_only: bool = False) -> str:
        """The LLM agent carries the message out; if it cannot, the offline parser reads it (said so)."""
        outcome = self.interpreter.respond(text, self._context(), self._run, read_only=read_only)
        self._log(
            "agent",
            rounds=outcome.rounds,
            ops=outcome.ops,
            problems=outcome.problems,
            failed=outcome.failed,
            stopped=outcome.stopped,
        )
        lines = list(outcome.replies)
        if outcome.failed and not outcome.changed:
            why = outcome.failed if len(outcome.failed) < 300 else outcome.failed[:300] + "…"
            note = (
                f"(The language model could not be used: {why}. I read this message with the offline parser.)"
            )
            if read_only:
                return note + "\n" + self._reply_while_shooting(self.offline, text)
            return note + "\n" + self._parsed(self.offline, text, lang)
        if outcome.failed:
            lines.append(f"(The language model stopped answering: {outcome.failed}. Nothing else was done.)")
        elif outcome.stopped:
            lines.append(f"({outcome.stopped}; say what is still to do.)")
        elif outcome.text:
            lines.append(outcome.text)
        return "\n".join(lines) or chat_parser.HELP[lang]

    def _reply_while_shooting(self, interpreter: Interpreter, text: str) -> str:
        parsed = interpreter.interpret(text, self._context())
        if parsed.op in ("status", "show", "takes"):
            return self._run(parsed.op, parsed.args)
        return "The film is shooting; I can tell you its status meanwhile. Changes can wait until it is done."

    def _parsed(self, interpreter: Interpreter, text: str, lang: str) -> str:
        parsed = interpreter.interpret(text, self._context())
        if parsed.op is None:
            self._log("action", op=None, question=parsed.question, refusal=parsed.refusal)
            return parsed.question or parsed.refusal or chat_parser.HELP[lang]
        return self._run(parsed.op, parsed.args)

    def _run(self, op: str, args: dict) -> str:
        """Validate the arguments, call the operation, and say what changed."""
        if op not in OPERATIONS:
            return f"I cannot do '{op}'. " + chat_parser.HELP["en"]
        model = OPERATIONS[op]
        try:
            typed = model.model_validate(args) if model else None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            return f"I could not {op.replace('_', ' ')}: {where + ': ' if where else ''}{first['msg']}."
        if op == "show" and self._sheet_job:
            self._sheet_job.join()  # show draws the sheet itself: never two drawers on one file
        if op in ("approve", "redo", "deliver") and self.background:
            return self._start_job(op, typed)
        start = time.perf_counter()
        try:
            if op == "show":
                with _drawing(self.root):
                    change = self._call(op, typed)
            else:
                change = self._call(op, typed)
        except (OperationError, RunDirError, SettingsError) as err:
            self._log("action", op=op, args=args, error=str(err))
            return f"Not done: {err}"
        self._log(
            "action",
            op=op,
            args=args,
            change=change.model_dump(),
            seconds=round(time.perf_counter() - start, 3),
        )
        if op in STORYBOARD_OPS and change.version is not None:
            self._sheet(change)
        return self.describe(change)

    def _call(self, op: str, typed) -> Change:
        fn = getattr(operations, op)
        if op in ("approve", "redo", "deliver"):
            self._watch()
            return fn(self.root, *([typed] if typed else []), on_event=self._progress)
        return fn(self.root, typed) if typed is not None else fn(self.root)

    def _sheet(self, change: Change) -> None:
        """Redraw storyboard.png after a change, in the background: the reply does not wait for the panels.

        One drawer at a time; changes made while it draws are picked up by one more pass."""
        change.paths["sheet"] = "storyboard.png"
        with self._sheet_lock:
            self._sheet_dirty = True
            if self._sheet_job and self._sheet_job.is_alive():
                return
            self._sheet_job = threading.Thread(target=self._draw_sheets, name="chat-sheet", daemon=True)
            self._sheet_job.start()

    def _draw_sheets(self) -> None:
        from agent.report import write_storyboard_sheet

        while True:
            with self._sheet_lock:
                if not self._sheet_dirty:
                    return
                self._sheet_dirty = False
            with _drawing(self.root):
                write_storyboard_sheet(operations.load_storyboard(self.root), self.root)

    # --- the brief ------------------------------------------------------------------------------------------
    def _brief(self, text: str) -> str:
        raw, source = text, "chat"
        candidate = Path(text).expanduser() if "\n" not in text and len(text) < 1000 else None
        if candidate and (candidate.suffix.lower() in BRIEF_SUFFIXES or candidate.is_file()):
            if not candidate.is_file():
                return f"{text}: no such file. Give the brief in words, or the path of a text file."
            if candidate.stat().st_size > MAX_BRIEF_FILE:
                return f"{text}: larger than {MAX_BRIEF_FILE // 1000} kB; that is not a brief or script."
            raw, source = candidate.read_bytes(), candidate.name
        elif chat_parser.parse(text, 1).op is not None and len(text.split()) < 4 and len(text) < 12:
            return "There is no storyboard yet: first tell me about the film, e.g. 'a 20-second launch film for wireless headphones'."
        try:
            change = self._plan(raw, source)
        except (BriefError, PlanError, SettingsError, RunDirError) as err:  # nothing was made: try again
            return f"I could not plan that: {err}"
        self._log("action", op="plan", source=source, change=change.model_dump())
        from agent.report import write_storyboard_sheet

        sheet = write_storyboard_sheet(operations.load_storyboard(self.root), self.root)
        change.paths["sheet"] = sheet.relative_to(self.root).as_posix()
        return self.describe(change) + "\n" + self._reading()

    def _plan(self, raw, source: str) -> Change:
        brief = read_brief(raw, source)
        settings = self._with_reading(brief.reading)
        return operations.plan(self.root, operations.PlanArgs(brief=brief.text, source=source), settings)

    def _with_reading(self, reading) -> RunSettings:
        """The chat's settings with what the brief asks (length, platforms, language) where no flag set it, as
        `main.py run` does. The chat's settings were made before the brief: a field at its default, and no
        --platform (which always lists platforms), counts as not given."""
        from agent.flags import brief_settings, split_commas
        from agent.settings import resolve_size

        s, asked = self.settings, brief_settings(reading)
        update = {k: v for k, v in asked.items() if k in ("duration", "lang") and getattr(s, k) is None}
        defaults = {n: type(s).model_fields[n].get_default() for n in ("platform", "width", "height")}
        if "platform" in asked and not s.platforms and all(getattr(s, n) == v for n, v in defaults.items()):
            names = split_commas(asked["platform"])
            label, width, height = resolve_size(names[0], None)
            update |= {"platform": label, "width": width, "height": height}
            update["platforms"] = [resolve_size(n, None)[0] for n in names]
        return s.model_copy(update=update)

    def _reading(self) -> str:
        brief = read_json(self.root / "brief.json")
        settings = director.load_settings(self.root)
        reading = brief.get("reading") or {}
        storyboard = operations.load_storyboard(self.root)
        named = reading.get("platforms") or []
        copy = [*reading.get("slogans", []), *[reading[k] for k in ("price", "cta") if reading.get(k)]]
        copy += reading.get("claims", [])
        parts = [
            f"length {reading['duration']:g} s"
            if reading.get("duration")
            else f"length {storyboard.duration:.0f} s (default)",
            "platforms " + ", ".join(named) if named else "platforms: (none named)",
            f"language {brief.get('lang')}",
        ]
        if reading.get("product"):
            parts.append(f"subject {reading['product']}")
        if copy:
            parts.append("copy: " + "; ".join(f"“{c}”" for c in copy))
        making = settings.platforms or [settings.platform]
        return (
            "Read from the brief: "
            + ", ".join(parts)
            + f". Making it for {', '.join(making)} at {storyboard.width}×{storyboard.height}."
            + " Change anything, or say 'go' to shoot."
        )

    # --- shooting -------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Start a shoot's progress from the takes already recorded: only new ones are announced."""
        self._seen = {(t.shot_id, t.n): t.critique is not None for t in RunDir(self.root).takes()}

    def _take_news(self) -> list[str]:
        """Lines for the takes rendered or judged since the last look, read from their records.

        The shot branches' render and critique updates reach the stream without their takes (a branch's stream
        carries only its output, the shot's result), and parallel branches interleave; each take's own record
        says which shot and take it is, and is written before the update is streamed."""
        lines = []
        seen = self._seen
        for t in RunDir(self.root).takes():
            key = (t.shot_id, t.n)
            if key not in seen:
                seen[key] = False
                lines.append(f"  {t.shot_id}: take {t.n} rendered")
            if t.critique is not None and not seen[key]:
                seen[key] = True
                c = t.critique
                why = f" ({c.issues[0].category}: {c.issues[0].reason})" if c.issues and not c.passed else ""
                verdict = "passed" if c.passed else "failed"
                lines.append(f"  {t.shot_id}: take {t.n} grade {c.grade}, {verdict}{why}")
        return lines

    def _progress(self, node: str, update: dict) -> None:
        if node in ("render", "critique"):
            for line in self._take_news():
                self.say(line)
        elif node == "animate":
            for r in update.get("results") or []:
                self.say(f"  {r.shot_id}: clip made from take {r.best}")
        elif node == "deliver":
            self.say(f"  {update['shot_id']}: framed and animated for {update['platform']}")
        elif node in ("cut", "report"):
            self.say(f"  {node}: done")

    def _start_job(self, op: str, typed) -> str:
        def work():
            try:
                change = self._call(op, typed)
                self._log(
                    "action", op=op, args=typed.model_dump() if typed else {}, change=change.model_dump()
                )
                self._job_result = self.describe(change)
            except (OperationError, RunDirError, SettingsError) as err:
                self._log("action", op=op, error=str(err))
                self._job_result = f"Not done: {err}"
            self.say(self._job_result)

        self._job = threading.Thread(target=work, name=f"chat-{op}", daemon=True)
        self._job.start()
        return "Shooting now; ask 'status' any time. I will say when the film is ready."

    def wait(self) -> None:
        """Block until a shoot or a sheet drawn in the background is done (end of a chat)."""
        for job in (self._job, self._sheet_job):
            if job:
                job.join()

    def continue_stopped(self) -> str | None:
        """On resume: a shoot that was killed continues; nothing already made is made again."""
        if self.status() != "running":
            return None
        self.say("The shoot was stopped; continuing it.")
        self._watch()
        change = operations.resume_shoot(self.root, on_event=self._progress)
        self._log("action", op="resume", change=change.model_dump())
        return self.describe(change)

    # --- replies --------------------------------------------------------------------------------------------
    @staticmethod
    def describe(change: Change) -> str:
        """What changed, shot by shot: the new line, and what it was."""
        lines = [change.message[:1].upper() + change.message[1:]]
        pairs = list(zip(change.before, change.after))
        if change.op in ("show", "plan", "takes", "undo") or len(change.before) != len(change.after):
            if change.op == "remove_shot":
                lines += [f"  removed: {b}" for b in change.before]
            lines += [f"  {a}" for a in change.after]
        else:
            for before, after in pairs:
                if before != after:
                    lines += [f"  {after}", f"    was: {before}"]
        if change.version is not None:
            lines.append(f"(storyboard version {change.version})")
        for name, rel in change.paths.items():
            if name != "storyboard":
                lines.append(f"{name}: {rel}")
        return "\n".join(lines)
