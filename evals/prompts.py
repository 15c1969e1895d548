"""Prompt sets for the evaluation harness: PartiPrompts and the user's own TSV, CSV or JSONL files.

A file has one prompt per row (TSV/CSV with a header line) or per line (JSONL objects). `prompt` is required;
`id`, `category` and `challenge` are optional (column names are matched case-insensitively, so PartiPrompts'
`Prompt`/`Category`/`Challenge` header works as it is). Quoted fields (commas, tabs, newlines inside quotes) are
parsed by the csv module. A bad row is reported with its line number and skipped; the rest load.

Ids are data, not paths: `EvalPrompt.slug` is the program-made, filesystem-safe name used for image files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTI_PATH = Path(__file__).parent / "data" / "PartiPrompts.tsv"
PARTI_NAMES = {"parti", "partiprompts"}
MAX_PROMPT_CHARS = 4000
MAX_ID_CHARS = 200
UNSPECIFIED = "unspecified"
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PromptSetError(ValueError):
    """The prompt set cannot be used at all (missing file, no valid rows, unknown filter value)."""


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt of the set, with where it came from."""

    id: str
    prompt: str
    category: str = UNSPECIFIED
    challenge: str = UNSPECIFIED
    line: int = 0

    @property
    def slug(self) -> str:
        """A file-name-safe stem for this prompt: the id when it is already safe, else a sanitised id + hash."""
        if _SAFE_ID.fullmatch(self.id):
            return self.id
        clean = re.sub(r"[^A-Za-z0-9_-]+", "_", self.id).strip("_")[:40] or "id"
        return f"{clean}-{hashlib.sha1(self.id.encode()).hexdigest()[:8]}"


@dataclass
class LoadReport:
    """What loading found: the prompts, and one message per skipped row."""

    prompts: list[EvalPrompt]
    problems: list[str]


def load_prompt_set(source: str) -> LoadReport:
    """Load `parti` (the bundled PartiPrompts) or a TSV/CSV/JSONL file by path."""
    if source.strip().lower() in PARTI_NAMES:
        return _load_table(PARTI_PATH, "\t", id_prefix="parti-")
    path = Path(source)
    if not path.is_file():
        raise PromptSetError(
            f"prompt file {source!r} not found (give a .tsv, .csv or .jsonl file, or 'parti')."
        )
    suffix = path.suffix.lower()
    if suffix in {".tsv", ".tab"}:
        report = _load_table(path, "\t")
    elif suffix == ".csv":
        report = _load_table(path, ",")
    elif suffix in {".jsonl", ".ndjson"}:
        report = _load_jsonl(path)
    else:
        raise PromptSetError(f"prompt file {source!r}: unknown type {suffix!r}; use .tsv, .csv or .jsonl.")
    if not report.prompts:
        detail = "; ".join(report.problems[:5]) or "the file is empty"
        raise PromptSetError(f"prompt file {source!r} has no valid rows ({detail}).")
    return report


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark that would otherwise join the header.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise PromptSetError(f"prompt file {str(path)!r} is not UTF-8 text (byte {e.start}).") from e
    except OSError as e:
        raise PromptSetError(f"prompt file {str(path)!r} cannot be read: {e.strerror}.") from e


class _Rows:
    """Builds EvalPrompts from raw fields, collecting problems and rejecting duplicate ids and slugs."""

    def __init__(self, path: Path):
        self.name = path.name
        self.prompts: list[EvalPrompt] = []
        self.problems: list[str] = []
        self._ids: dict[str, int] = {}
        self._slugs: dict[str, int] = {}

    def bad(self, line: int, why: str) -> None:
        self.problems.append(f"{self.name} line {line}: {why}; row skipped")

    def add(self, line: int, prompt, id_, category, challenge, default_id: str) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            return self.bad(line, "empty or missing prompt")
        if "\x00" in prompt:
            return self.bad(line, "prompt contains a NUL byte")
        prompt = prompt.strip()
        if len(prompt) > MAX_PROMPT_CHARS:
            return self.bad(line, f"prompt is {len(prompt)} characters (at most {MAX_PROMPT_CHARS})")
        if id_ is None or (isinstance(id_, str) and not id_.strip()):
            id_ = default_id
        if isinstance(id_, bool) or not isinstance(id_, str | int):
            return self.bad(line, f"id must be a string or an integer, got {type(id_).__name__}")
        id_ = str(id_).strip()
        if len(id_) > MAX_ID_CHARS:
            return self.bad(line, f"id is longer than {MAX_ID_CHARS} characters")
        for label, value in (("category", category), ("challenge", challenge)):
            if value is not None and not isinstance(value, str):
                return self.bad(line, f"{label} must be a string, got {type(value).__name__}")
        item = EvalPrompt(
            id=id_,
            prompt=prompt,
            category=(category or "").strip() or UNSPECIFIED,
            challenge=(challenge or "").strip() or UNSPECIFIED,
            line=line,
        )
        if id_ in self._ids:
            return self.bad(line, f"duplicate id {id_!r} (first on line {self._ids[id_]})")
        if item.slug in self._slugs:
            return self.bad(line, f"id {id_!r} maps to the same file name as line {self._slugs[item.slug]}")
        self._ids[id_] = line
        self._slugs[item.slug] = line
        self.prompts.append(item)


def _load_table(path: Path, delimiter: str, id_prefix: str = "row-") -> LoadReport:
    text = _read_text(path)
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    rows = _Rows(path)
    try:
        header = next(reader)
    except StopIteration:
        return LoadReport([], [f"{path.name}: empty file"])
    except csv.Error as e:
        raise PromptSetError(f"prompt file {str(path)!r}: unreadable header ({e}).") from e
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    if "prompt" not in columns:
        raise PromptSetError(
            f"prompt file {str(path)!r}: the header line has no 'prompt' column (found: {', '.join(header)})."
        )
    start = reader.line_num + 1
    data_rows = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            rows.bad(start, f"malformed quoting ({e})")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1  # a quoted field may span lines; report where the row began
        if not any(f.strip() for f in fields):
            continue
        data_rows += 1
        if len(fields) != len(header):
            rows.bad(line, f"expected {len(header)} fields, got {len(fields)}")
            continue

        get = {name: fields[i] for name, i in columns.items()}.get
        # Bundled-set ids count data rows (header excluded), the way the set's own documentation numbers them;
        # a user's file without ids gets its line number, which a person can find in an editor.
        default_id = f"{id_prefix}{data_rows:04d}" if id_prefix == "parti-" else f"{id_prefix}{line}"
        rows.add(line, get("prompt"), get("id"), get("category"), get("challenge"), default_id)
    return LoadReport(rows.prompts, rows.problems)


def _load_jsonl(path: Path) -> LoadReport:
    rows = _Rows(path)
    for n, raw in enumerate(_read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            rows.bad(n, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            rows.bad(n, f"expected a JSON object, got {type(obj).__name__}")
            continue
        keys = {str(k).lower(): v for k, v in obj.items()}
        rows.add(
            n, keys.get("prompt"), keys.get("id"), keys.get("category"), keys.get("challenge"), f"row-{n}"
        )
    return LoadReport(rows.prompts, rows.problems)


def _match(kind: str, wanted: list[str], present: list[str]) -> set[str]:
    by_lower = {p.lower(): p for p in present}
    unknown = [w for w in wanted if w.strip().lower() not in by_lower]
    if unknown:
        raise PromptSetError(
            f"unknown {kind} {', '.join(repr(u) for u in unknown)}; this prompt set has: "
            + ", ".join(sorted(present))
        )
    return {by_lower[w.strip().lower()] for w in wanted}


def filter_prompts(
    prompts: list[EvalPrompt], categories: list[str] | None = None, challenges: list[str] | None = None
) -> list[EvalPrompt]:
    """Keep prompts in any of `categories` and any of `challenges` (case-insensitive; None or [] keeps all)."""
    # Both are checked against the whole set, so a valid value is never called unknown because the other
    # filter removed its prompts.
    cats = _match("category", categories, sorted({p.category for p in prompts})) if categories else None
    chals = _match("challenge", challenges, sorted({p.challenge for p in prompts})) if challenges else None
    kept = [
        p for p in prompts if (cats is None or p.category in cats) and (chals is None or p.challenge in chals)
    ]
    if not kept:
        raise PromptSetError(
            f"no prompt has category in {sorted(cats or [])} and challenge in {sorted(chals or [])}"
        )
    return kept


def sample_prompts(prompts: list[EvalPrompt], limit: int | None, seed: int = 0) -> list[EvalPrompt]:
    """A reproducible sample of `limit` prompts, kept in file order.

    The sample is the first `limit` of a seeded permutation, so a larger limit with the same seed contains the
    smaller one: raising `--limit` on an existing output folder only adds work.
    """
    if limit is None or limit >= len(prompts):
        return list(prompts)
    if limit < 1:
        raise PromptSetError(f"--limit must be at least 1, got {limit}")
    order = np.random.default_rng(seed).permutation(len(prompts))[:limit]
    return [prompts[i] for i in sorted(order)]
