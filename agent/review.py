"""`python main.py review DIR`: a person works through the catalogue's review queue, one image at a time.

    [1/3] HB-01 · lifestyle · instagram · grade B · instagram/hb-01-1a2b3c4d/lifestyle.png
      - sharpness: edge strength 0.18 is soft
    approve (a), reject (r), redo with a note (d NOTE), skip (s), quit (q)?

Every decision is recorded in records.db (`reviews`, and the record's status). A redo makes the image's unit
again with the note added to its prompt (the same make_unit as the run, on this machine), so every platform
sharing that render gets the new take; a new B or C comes back into the queue. Decisions can be piped in, one
per line, which is how the tests drive it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent.catalogue_records import Records
from agent.catalogue_unit import UnitContext, backends_for, make_unit
from agent.runlock import run_lock
from tools.errors import SettingsError

if TYPE_CHECKING:
    from agent.backends import Backends

PROMPT = "approve (a), reject (r), redo with a note (d NOTE), skip (s), quit (q)?"
WORDS = {
    "a": "approved",
    "approve": "approved",
    "r": "rejected",
    "reject": "rejected",
    "s": "skip",
    "skip": "skip",
}


def _ask(stream: TextIO, say: Callable[[str], None]) -> tuple[str, str] | None:
    """The next decision (kind, note); None at the end of the input or on quit."""
    while True:
        if stream.isatty():
            say(PROMPT)
        line = stream.readline()
        if not line:
            return None
        word, _, note = line.strip().partition(" ")
        word = word.casefold()
        if word in ("q", "quit"):
            return None
        if word in WORDS:
            return WORDS[word], note.strip()
        if word in ("d", "redo"):
            if note.strip():
                return "redo", note.strip()
            say("a redo needs a note saying what to change, e.g.: d brighter, less clutter")
            continue
        say(f"{line.strip()!r} is not a decision; {PROMPT}")


def _redo(
    records: Records, row: dict, note: str, say: Callable[[str], None], backends: Backends | None
) -> None:
    unit = records.unit(row["unit"])
    context = records.meta("context")
    if unit is None or context is None:
        raise SettingsError(
            f"records.db has no unit {row['unit']!r} to redo; run the catalogue command again"
        )
    ctx = UnitContext.model_validate_json(context)
    salt = hashlib.sha256(f"{unit.seed}:{note}".encode()).digest()[:4]
    unit = unit.model_copy(update={"note": note, "seed": int.from_bytes(salt, "big") & 0x7FFFFFFF})
    made = make_unit(unit, ctx, backends or backends_for(ctx))
    records.add(made, unit)
    for r in made:
        say(f"  redone: {r.platform} grade {r.grade}" + (f" ({'; '.join(r.issues)})" if r.issues else ""))


def review(
    folder: Path, stream: TextIO, say: Callable[[str], None], backends: Backends | None = None
) -> dict[str, int]:
    """Ask for a decision on every B and C image not yet decided; returns how many of each were made.

    A redo renders with `backends` (a server's warm ones), else with Backends built from the run's settings.
    """
    if not (folder / "records.db").is_file():
        raise SettingsError(
            f"{folder} is not a catalogue folder (no records.db); give the --out of a catalogue run"
        )
    counts = {"approved": 0, "rejected": 0, "redo": 0, "skip": 0}
    with Records(folder) as records:
        queue = list(records.rows("where grade in ('B', 'C') and status = 'new'"))
        if not queue:
            say("nothing to review: every image is A or decided")
        redone: set[str] = set()
        for i, row in enumerate(queue, start=1):
            if row["unit"] in redone:
                continue  # made again with an earlier note: its new image is in the next review
            say(
                f"[{i}/{len(queue)}] {row['sku']} · {row['scene']} · {row['platform']} · grade {row['grade']} · {row['path']}"
            )
            for issue in row["issues"]:
                say(f"  - {issue}")
            answer = _ask(stream, say)
            if answer is None:
                break
            kind, note = answer
            counts[kind] += 1
            if kind == "skip":
                continue
            decide(records, row, kind, note, say, backends)
            if kind == "redo":
                redone.add(row["unit"])
        publish(records, folder)
    return counts


def decide(
    records: Records, row: dict, kind: str, note: str, say: Callable[[str], None], backends: Backends | None
) -> None:
    """One decision on one image (approved, rejected, redo), as this command and the studio make it: kept in
    records.db; a redo makes the image's unit again with the note. `publish` then writes the exports."""
    records.review(row["sku"], row["scene"], row["platform"], kind, note)
    if kind == "redo":
        with run_lock(records.out_dir, wait=True, on_wait=say):  # not while a catalogue run writes the folder
            _redo(records, row, note, say, backends)


def publish(records: Records, folder: Path) -> None:
    """review.jsonl, the other exports and qc_report.html, written again from records.db after decisions."""
    from agent.catalogue_report import write_report

    records.export()
    write_report(records, folder)
    records.set_meta(REPORT_OF, records.meta(DECISIONS) or "0")


# records.db meta: how many single decisions `publish_decision` applied, and at which count the report was written
DECISIONS, REPORT_OF = "decisions", "report_of"
KEY_FIELDS = ("sku", "scene", "platform")


def publish_decision(records: Records, folder: Path, before: dict) -> None:
    """What one decision on the image of record `before` (its row as it was) changes in the exports, and nothing
    else, so that a decision costs the same on a catalogue of ten images or ten thousand: its line of
    catalogue.jsonl (status, review note) and of review.jsonl (gone once approved or rejected). catalogue.csv
    holds no status. qc_report.html is left stale (it counts the images still to review): `refresh_report`
    writes it again, later or when it is read."""
    key = tuple(before[k] for k in KEY_FIELDS)
    row = next(records.rows("where sku = ? and scene = ? and platform = ?", key))
    queued = row["grade"] in ("B", "C") and row["status"] in ("new", "redo")
    was_queued = before["grade"] in ("B", "C") and before["status"] in ("new", "redo")
    decided = {"status": row["status"], "review_note": row["review_note"]}
    in_catalogue = _replace_line(folder / "catalogue.jsonl", key, lambda old: {**old, **decided})
    in_review = _replace_line(
        folder / "review.jsonl", key, lambda old: {**old, "status": row["status"]} if queued else None
    )
    if not in_catalogue or ((queued or was_queued) and not in_review):
        records.export()  # the exports were older than records.db (a line to change is not there): whole again
    records.set_meta(DECISIONS, str(int(records.meta(DECISIONS) or 0) + 1))


def _replace_line(path: Path, key: tuple[str, str, str], change: Callable[[dict], dict | None]) -> bool:
    """Rewrite the line of JSONL export `path` that starts with `key`'s fields (as Records.export writes them)
    with `change(old)`, or drop it when that is None. False when the file or the line is not there."""
    import json

    from tools.files import write_atomic

    # export() writes each line with json.dumps(row, ensure_ascii=False), sku, scene and platform first.
    prefix = json.dumps(dict(zip(KEY_FIELDS, key, strict=True)), ensure_ascii=False)[:-1] + ", "
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        return False
    at = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
    if at is None:
        return False
    new = change(json.loads(lines[at]))
    if new is None:
        del lines[at]
    else:
        lines[at] = json.dumps(new, ensure_ascii=False)
    write_atomic(path, "\n".join(lines).encode("utf-8"))
    return True


def refresh_report(folder: Path) -> Path:
    """qc_report.html, written again when a decision came after it (see `publish_decision`); its path."""
    from agent.catalogue_report import write_report

    page = folder / "qc_report.html"
    with Records(folder) as records:
        asked = records.meta(DECISIONS) or "0"
        if records.meta(REPORT_OF) != asked or not page.is_file():
            write_report(records, folder)
            records.set_meta(REPORT_OF, asked)
    return page
