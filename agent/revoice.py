"""A shot's voice-over line changed from the chat: before shooting, a storyboard change; on a finished film, a
re-cut in which only that line is spoken again (every other line comes back from the voice cache under audio/,
keyed by its text) and no shot is re-shot.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent.operation_args import Change, OperationError, SetVoiceover
from agent.rundir import MARKER, RunDirError, clean_temp_files, write_json
from agent.runlock import run_lock
from agent.state import FilmState


def set_voiceover(root: Path, args: SetVoiceover) -> Change:
    """The operation: shot N's voice-over line ('' for none)."""
    from agent import director
    from agent import operations as ops

    text = " ".join(args.text.split())
    said = f"shot {args.shot}'s voice-over: {text!r}" if text else f"shot {args.shot} has no voice-over now"
    if ops._status(root) == "done":
        ops._shot_index(ops.load_storyboard(root), args.shot)
        try:
            film = revoice(root, args.shot, text)
        except RunDirError as err:
            raise OperationError(str(err)) from None
        change = ops._film_change("set_voiceover", film)
        change.message = f"{said}; re-cut with only that line spoken again; {change.message}"
        return change
    ops._require_editable(root)
    storyboard = ops.load_storyboard(root)
    i = ops._shot_index(storyboard, args.shot)
    old = storyboard.shots[i]
    shot = old.model_copy(update={"voiceover": text})  # the picture does not change: its prompt stays
    shots = [shot if k == i else s for k, s in enumerate(storyboard.shots)]
    storyboard = storyboard.model_copy(update={"shots": shots})
    version = ops._commit(root, storyboard, "set_voiceover", director.load_settings(root))
    return ops._changed("set_voiceover", [old], [shot], version, said)


def revoice(root: str | Path, shot_number: int, text: str, on_event=None, wait: bool = False):
    """A finished film with shot N's voice-over changed: the graph runs again with every shot's result kept, so
    only the cut and the report run (graph thread "revoice-N", resumable like a redo). Returns the Film."""
    from agent import director

    with run_lock(Path(root), wait=wait):
        clean_temp_files(Path(root))
        target = director.check_redo(root, shot_number)
        root, marker, film = target.root, target.marker, target.film
        shots = [
            s.model_copy(update={"voiceover": text}) if s.id == target.shot.id else s
            for s in film.storyboard.shots
        ]
        storyboard = film.storyboard.model_copy(update={"shots": shots})
        write_json(root / "storyboard.json", storyboard)
        revoiced = [
            *marker.get("revoiced", []),
            {"shot": target.shot.id, "voiceover": text, "time": time.time()},
        ]
        thread = f"revoice-{len(revoiced)}"
        marker.update(revoiced=revoiced, thread=thread, status="running", updated=time.time())
        write_json(root / MARKER, marker)
        graph_input = FilmState(brief=film.brief, storyboard=storyboard, approved=True, results=film.results)
        return director._run(graph_input, director.load_settings(root), on_event)
