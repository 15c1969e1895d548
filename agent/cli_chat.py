"""`chat`: the conversation on a terminal, or one message per line from stdin (scriptable)."""

from __future__ import annotations

import sys
from pathlib import Path

from agent.cli_input import make_settings


def cmd_chat(args, console) -> int:
    """Interactive on a terminal; otherwise one message per line from stdin, each reply printed (scriptable)."""
    from agent import director
    from agent.chat import Chat

    tty = sys.stdin.isatty()
    say = console.print if tty else (lambda line: print(line, flush=True))
    if args.resume:
        chat = Chat.resume(Path(args.resume), say=say, background=tty)
        say(f"continuing the chat in {chat.root} ({len(chat.history)} entries)")
        if done := chat.continue_stopped():
            say(done)
    else:
        root = director.prepare_new(args.out)
        chat = Chat(root, make_settings(args, str(root)), say=say, background=tty)
        say(f"chat in {root}: first, the brief (or the path of a brief or script file)")
    if tty:
        from rich.prompt import Prompt

        while True:
            try:
                message = Prompt.ask("[bold]you[/]", console=console)
            except EOFError:
                break
            if message.strip().lower() in ("quit", "exit", "bye", "再见"):
                break
            console.print(chat.handle(message))
    else:
        for raw in sys.stdin.buffer:
            print(chat.handle(raw.decode("utf-8", errors="replace").rstrip("\r\n")), flush=True)
    chat.wait()
    print(chat.root)
    return 0
