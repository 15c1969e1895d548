"""The catalogue's records: one SQLite row per (sku, scene, platform) in DIR/records.db, and the exports from it.

Only the driver process writes (one writer, whatever the engine): `add` takes all records of one unit in one
transaction, so a kill leaves a unit either wholly recorded or not at all, and the rerun makes only what is not.
`made` counts how many times a key was recorded: a resumed catalogue that made nothing twice has made = 1
everywhere (the resume test checks it). Review decisions (agent/review.py) go into `reviews` and the record's
status. Exports are streamed from the database: catalogue.jsonl, catalogue.csv, review.jsonl.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agent.catalogue_unit import Unit, UnitRecord
from tools.files import temp_file

__all__ = ["CSV_COLUMNS", "Records"]

CSV_COLUMNS = [
    "sku",
    "scene",
    "platform",
    "path",
    "grade",
    "scores",
    "issues",
    "prompt",
    "seed",
    "model",
    "takes",
]
JSON_FIELDS = ("scores", "issues", "attempts", "notes")

_SCHEMA = """
create table if not exists records (
  sku text not null, scene text not null, platform text not null,
  unit text not null, slug text not null, path text not null, grade text not null,
  scores text not null, issues text not null, prompt text not null, seed integer not null, model text not null,
  takes integer not null, attempts text not null, notes text not null, wall_s real, gpu_s real,
  status text not null default 'new', review_note text not null default '',
  made integer not null default 1, made_at real not null,
  primary key (sku, scene, platform)
);
create table if not exists products (sku text primary key, slug text not null unique, line integer not null);
create table if not exists units (key text primary key, unit text not null);
create table if not exists meta (name text primary key, value text not null);
create table if not exists reviews (
  id integer primary key, sku text not null, scene text not null, platform text not null,
  decision text not null, note text not null, at real not null
);
"""


class Records:
    """DIR/records.db. Open it in the driver only."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.db = sqlite3.connect(self.out_dir / "records.db", isolation_level=None)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------------------

    def add(self, records: UnitRecord | Iterable[UnitRecord], unit: Unit | None = None) -> None:
        """Record one unit's records (or one record) in one transaction; a key seen before is replaced, made+1.

        `unit` is kept beside them, so a reviewer's redo can make the same unit again with a note.
        """
        batch = [records] if isinstance(records, UnitRecord) else list(records)
        rows = [self._row(r) for r in batch]
        cols = list(rows[0]) if rows else []
        update = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in ("sku", "scene", "platform"))
        sql = (
            f"insert into records ({', '.join(cols)}) values ({', '.join('?' * len(cols))}) "
            f"on conflict(sku, scene, platform) do update set {update}, made=made+1, status='new'"
        )
        with self.db:
            self.db.execute("begin")
            self.db.executemany(sql, [tuple(r.values()) for r in rows])
            if unit is not None:
                self.db.execute(
                    "insert or replace into units (key, unit) values (?, ?)",
                    (unit.key, unit.model_dump_json()),
                )

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("insert or replace into meta (name, value) values (?, ?)", (name, value))

    def meta(self, name: str) -> str | None:
        row = self.db.execute("select value from meta where name = ?", (name,)).fetchone()
        return row[0] if row else None

    def unit(self, key: str) -> Unit | None:
        row = self.db.execute("select unit from units where key = ?", (key,)).fetchone()
        return Unit.model_validate_json(row[0]) if row else None

    @staticmethod
    def _row(r: UnitRecord) -> dict[str, Any]:
        row = r.model_dump()
        for name in JSON_FIELDS:
            row[name] = json.dumps(row[name], ensure_ascii=False)
        row["made_at"] = time.time()
        return row

    def add_product(self, sku: str, slug: str, line: int) -> None:
        self.db.execute(
            "insert or ignore into products (sku, slug, line) values (?, ?, ?)", (sku, slug, line)
        )

    def review(self, sku: str, scene: str, platform: str, decision: str, note: str = "") -> None:
        """A person's decision on one image: approve, reject or redo (with a note)."""
        with self.db:
            self.db.execute("begin")
            self.db.execute(
                "insert into reviews (sku, scene, platform, decision, note, at) values (?, ?, ?, ?, ?, ?)",
                (sku, scene, platform, decision, note, time.time()),
            )
            self.db.execute(
                "update records set status=?, review_note=? where sku=? and scene=? and platform=?",
                (decision, note, sku, scene, platform),
            )

    # --- reading -----------------------------------------------------------------------------------------

    def done_keys(self) -> set[tuple[str, str, str]]:
        """(sku, scene, platform) of every record whose image was written."""
        return {
            tuple(r) for r in self.db.execute("select sku, scene, platform from records where path != ''")
        }

    def rows(
        self, where: str = "", params: tuple = (), order: str = "sku, scene, platform"
    ) -> Iterator[dict[str, Any]]:
        """Records as dicts (JSON fields decoded); `where` is this module's own SQL, values go in `params`."""
        cur = self.db.execute(f"select * from records {where} order by {order}", params)
        names = [d[0] for d in cur.description]
        for values in cur:
            row = dict(zip(names, values, strict=True))
            for name in JSON_FIELDS:
                row[name] = json.loads(row[name])
            yield row

    def grade_counts(self) -> dict[str, int]:
        counts = {"A": 0, "B": 0, "C": 0}
        counts.update(dict(self.db.execute("select grade, count(*) from records group by grade").fetchall()))
        return counts

    def slugs(self) -> Iterator[tuple[str, str]]:
        yield from self.db.execute("select slug, sku from products order by line")

    def best_per_sku(self) -> Iterator[dict[str, Any]]:
        """Each SKU's best image (grade, then fewest issues), for its product clip."""
        seen: set[str] = set()
        for row in self.rows(
            "where path != ''", order="sku, grade, json_array_length(issues), scene, platform"
        ):
            if row["sku"] not in seen:
                seen.add(row["sku"])
                yield row

    # --- exports -----------------------------------------------------------------------------------------

    def export(self) -> None:
        """catalogue.jsonl, catalogue.csv and review.jsonl (B and C images not yet decided), streamed."""
        with (
            _atomic_text(self.out_dir / "catalogue.jsonl") as jl,
            _atomic_text(self.out_dir / "catalogue.csv") as cf,
        ):
            writer = csv.writer(cf)
            writer.writerow(CSV_COLUMNS)
            for row in self.rows():
                jl.write(json.dumps(row, ensure_ascii=False) + "\n")
                writer.writerow(
                    [
                        json.dumps(row[c], ensure_ascii=False) if c in ("scores", "issues") else row[c]
                        for c in CSV_COLUMNS
                    ]
                )
        with _atomic_text(self.out_dir / "review.jsonl") as rv:
            for row in self.rows("where grade in ('B', 'C') and status in ('new', 'redo')"):
                item = {
                    k: row[k]
                    for k in ("sku", "scene", "platform", "path", "grade", "issues", "notes", "status")
                }
                rv.write(json.dumps(item, ensure_ascii=False) + "\n")


class _atomic_text:
    """A text file written beside its target and renamed over it on success (a reader never sees half)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.tmp = temp_file(self.path.parent, f".{self.path.name}.", ".tmp")
        self.f = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in __exit__
        return self.f

    def __exit__(self, exc_type, *exc) -> None:
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
