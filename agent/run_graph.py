"""Running the film graph on a run directory: its SQLite checkpointer, the run's graph thread, the progress
stream, and the status the run ends with.

The director (agent/director.py) decides what to run (a new film, a resume, a retry, a redo); this module runs
it and reads back where a run stands.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from agent import state
from agent.graph import build_graph
from agent.run_status import (
    damaged_checkpoints,
    failed_variants,
    failure,
    missing_shots,
    read_marker,
    set_status,
)
from agent.settings import RunSettings
from agent.state import FilmState
from tools import film

__all__ = ["STATE_TYPES", "Film", "checkpointer", "graph_config", "run_graph", "thread"]

# The checkpointer restores only the state's own classes: nothing else is ever unpacked from the file.
# Runs made before the vocabulary moved to tools/film.py recorded them as agent.state.<Name>; agent.state still
# imports every one of them, so those checkpoints resume.
STATE_TYPES = [("agent.state", name) for name in state.__all__ + film.__all__] + [
    ("tools.film", name) for name in film.__all__
]
STATE_TYPES.append(("tools.repair", "RepairPlan"))  # ShotState.repair_plan


@dataclass
class Film:
    run_dir: Path
    state: FilmState | None
    waiting_for_approval: bool = False
    missing: dict[str, str] = field(default_factory=dict)  # shot id -> why it is not in the cut
    # shot id -> why its --variants still raised (the shot is in the cut)
    failed_variants: dict[str, str] = field(default_factory=dict)


def graph_config(settings: RunSettings, thread_id: str = "film") -> dict:
    # Each take is 3 steps (render, critique, repair); leave room for the film graph's own steps.
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 20 + 4 * settings.max_takes}


def thread(root: Path) -> str:
    """The run's current graph thread: "film", "redo-N" after the Nth redo, "retry-N" after the Nth retry of
    failed or missing shots (each is its own thread)."""
    return read_marker(root).get("thread", "film")


@contextmanager
def checkpointer(root: Path):
    path = root / "checkpoints.sqlite"
    try:
        with closing(sqlite3.connect(path, check_same_thread=False)) as conn:
            # WAL with synchronous=NORMAL: a killed process loses nothing committed; commits skip an fsync each.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield SqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES))
    except sqlite3.DatabaseError as err:
        raise damaged_checkpoints(path, err) from None


def run_graph(
    graph_input, settings: RunSettings, on_event: Callable[[str, dict], None] | None, allow_missing=False
) -> Film:
    """Run (or continue) the run's current thread to its end or to the approval interrupt, handing each node's
    update to `on_event`; the run's status says how it ended. A failure is recorded (agent/run_status.failure)
    and raised as one line."""
    root = settings.path
    with checkpointer(root) as saver:
        graph = build_graph(saver)
        config = graph_config(settings, thread(root))
        try:
            for _namespace, mode, update in graph.stream(
                graph_input, config, context=settings, stream_mode=["updates", "custom"], subgraphs=True
            ):
                if on_event and mode == "custom":  # a node's own progress line, e.g. the planner's requests
                    on_event("progress", update if isinstance(update, dict) else {})
                elif on_event:
                    for node, value in update.items():
                        on_event(node, value if isinstance(value, dict) else {})
        except KeyboardInterrupt:
            set_status(root, "stopped")
            raise
        except Exception as err:
            raise failure(root, settings, graph, config, err) from None
        snapshot = graph.get_state(config)
    return _ended(root, snapshot, allow_missing)


def _ended(root: Path, snapshot, allow_missing: bool) -> Film:
    """The Film the run ended with, and its status: waiting for approval, incomplete (shots missing, or a
    --variants still that raised) or done. A done film with nothing missing has no error.log of an earlier
    failure left: it would say the run failed."""
    waiting = bool(snapshot.interrupts)
    film_state = FilmState.model_validate(snapshot.values) if snapshot.values else None
    if waiting and film_state and film_state.storyboard:
        from agent.report import write_storyboard_sheet

        write_storyboard_sheet(film_state.storyboard, root)  # a picture of what is to be approved
    missing = {} if waiting else missing_shots(film_state)
    variants = {} if waiting else failed_variants(film_state)
    if waiting:
        set_status(root, "waiting-for-approval")
    elif (missing and not allow_missing) or variants:
        set_status(root, "incomplete", missing=missing, failed_variants=variants)
    else:
        set_status(root, "done", missing=missing)
        if not missing:
            (root / "error.log").unlink(missing_ok=True)
    return Film(root, film_state, waiting_for_approval=waiting, missing=missing, failed_variants=variants)
