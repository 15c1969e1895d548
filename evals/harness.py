"""The evaluation harness: run prompt strategies over a prompt set, paired by (prompt, seed), and report.

    python main.py eval --prompts parti --limit 10 --strategies raw,template --seeds 2 --out evals/out

The unit of work is one (strategy, prompt, seed): `run_unit` is a function of the unit and the settings only, so
a sweep can later hand units to other processes or machines. Every strategy sees the same (prompt, seed) pairs,
and every image is scored against the *original* prompt (a rewrite must not be judged against its own words).

`results.jsonl` in the output folder is the durable record: one line per finished unit, appended and fsynced.
A rerun of the same command skips the units already recorded, so an interrupted run simply continues; a line cut
off by a kill is dropped and its unit redone. `summary.json` and `report.html` are rebuilt at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.rundir import write_json
from agent.settings import RunSettings, SettingsError, resolve_size
from evals.prompts import EvalPrompt, PromptSetError, filter_prompts, load_prompt_set, sample_prompts
from evals.strategies import STRATEGIES, RewriteFailed, Strategy, StrategyError, check_ready, get_strategies
from tools.film import Shot, Take
from tools.llm import LLMError

RESULTS = "results.jsonl"
CONFIG = "eval.json"
DEFAULT_SIZE = "1024x1024"
_GRADE_POINTS = {"A": 2.0, "B": 1.0, "C": 0.0}
# Settings that change what an image or its scores are; a rerun into the same folder must keep them.
_FINGERPRINT_FIELDS = (
    "image_backend",
    "image_model",
    "image_server",
    "llm_base_url",
    "llm_model",
    "vlm_base_url",
    "vlm_model",
    "clip_model",
    "width",
    "height",
    "max_takes",
    "num_inference_steps",
    "thresholds",
)


class EvalInputError(ValueError):
    """The eval command cannot start as asked; the message says why."""


# --- the unit of work ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One image to make: a strategy applied to one prompt with one seed."""

    strategy: str
    item: EvalPrompt
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.strategy, self.item.id, self.seed)

    def image_rel(self, take: int = 1) -> str:
        """Program-made image path relative to the output folder (never built from raw user text)."""
        suffix = "" if take == 1 else f"-t{take}"
        return f"images/{STRATEGIES[self.strategy].slug}/{self.item.slug}-s{self.seed}{suffix}.png"


def _shot(item: EvalPrompt, prompt: str) -> Shot:
    """The strategy's prompt as a one-shot storyboard, so the director's renderer and repair planner can take it.

    The description is the strategy's prompt too: the draft renderer draws the shot's words, and its panel should
    show what the image model was asked, not the original.
    """
    return Shot(
        id="s01",
        index=1,
        kind="medium",
        description=prompt,
        camera="from the prompt",
        lighting="from the prompt",
        mood="from the prompt",
        duration=1.0,
        prompt=prompt,
    )


def run_unit(unit: Unit, settings: RunSettings) -> dict:
    """Make and score one image (or, for a repair-loop strategy, up to `max_takes` takes); return its record.

    Files go under `settings.run_dir` at paths from `Unit.image_rel`. Content failures (a refused rewrite, a
    backend error) are recorded in the returned row; service outages (the chat endpoint down) raise.
    """
    from agent.nodes import best_take

    start = time.perf_counter()
    strategy = STRATEGIES[unit.strategy]
    row = {
        "strategy": unit.strategy,
        "prompt_id": unit.item.id,
        "seed": unit.seed,
        "category": unit.item.category,
        "challenge": unit.item.challenge,
        "prompt": unit.item.prompt,
    }
    timing = {"rewrite_seconds": 0.0, "render_seconds": 0.0, "critique_seconds": 0.0}
    try:
        prompt = strategy.rewrite(unit.item, unit.seed, settings)
    except RewriteFailed as err:
        timing["rewrite_seconds"] = time.perf_counter() - start
        return _failed_row(row, str(err), timing, start)
    timing["rewrite_seconds"] = time.perf_counter() - start

    takes = _take_loop(unit, prompt, settings.max_takes if strategy.repair_loop else 1, settings)
    timing["render_seconds"] = sum(t.timings.get("wall_s", 0.0) for t in takes)
    timing["critique_seconds"] = sum(t.timings.get("critique_s", 0.0) for t in takes)
    kept = best_take(takes)
    attempts = [_attempt(t) for t in takes]
    if kept is None:
        row = _failed_row(
            row, takes[-1].error or "no take produced an image", timing, start, takes=len(takes)
        )
        row["final_prompt"] = prompt
        row["attempts"] = attempts
        return row
    crit = kept.critique
    row.update(
        final_prompt=kept.prompt,
        image=kept.path,
        backend=kept.backend,
        model=kept.model,
        scores=_scores(kept, takes, timing, start),
        critics_run=crit.critics_run,
        critics_not_run=crit.critics_not_run,
        not_run_reasons={c.name: c.not_run_reason for c in crit.critics if not c.ran},
        grade=crit.grade,
        passed=crit.passed,
        issues=[f"{i.critic}: {i.reason}" for i in crit.issues],
        error=None,
        attempts=attempts,
    )
    return row


def _take_loop(unit: Unit, prompt: str, cap: int, settings: RunSettings) -> list[Take]:
    """The product's own take loop (agent.graph.build_take_graph), up to `cap` takes, recording nothing."""
    from agent.graph import build_take_graph
    from agent.state import TakeState

    loop = TakeState(
        shot=_shot(unit.item, prompt),
        max_takes=cap,
        # Judged against the original prompt: a rewrite must not be judged against its own words.
        judge_prompt=unit.item.prompt,
        first_seed=unit.seed,
        image_paths=[unit.image_rel(n) for n in range(1, cap + 1)],
        record=False,  # results.jsonl is this run's record
    )
    return [Take.model_validate(t) for t in build_take_graph().invoke(loop, context=settings)["takes"]]


def _attempt(t: Take) -> dict:
    return {
        "n": t.n,
        "seed": t.seed,
        "prompt": t.prompt,
        "image": None if t.error else t.path,
        "grade": t.critique.grade,
        "passed": t.critique.passed,
        "actions": t.repair.actions if t.repair else [],
        "error": t.error,
    }


def _scores(kept: Take, takes: list[Take], timing: dict, start: float) -> dict:
    """The kept take's scores, with each critic's pass, the unit's cost in seconds and its grade points."""
    crit = kept.critique
    scores = dict(crit.scores)
    if "ocr.cer" in scores:
        scores["ocr.accuracy"] = max(0.0, 1.0 - scores["ocr.cer"])
    for c in crit.critics:
        if c.ran and c.passed is not None:
            scores.setdefault(f"{c.name}.pass", 1.0 if c.passed else 0.0)
    gpu = [t.timings["gpu_s"] for t in takes if "gpu_s" in t.timings]
    if gpu:
        scores["gpu_seconds"] = sum(gpu)
    scores.update(
        passed=1.0 if crit.passed else 0.0,
        grade_points=_GRADE_POINTS[crit.grade],
        takes=float(len(takes)),
        seconds=time.perf_counter() - start,
        **timing,
    )
    return scores


def _failed_row(row: dict, error: str, timing: dict, start: float, takes: int = 0) -> dict:
    """The record of a unit that produced no image: it counts as not accepted, with its cost."""
    row.update(
        final_prompt=None,
        image=None,
        scores={"passed": 0.0, "takes": float(takes), "seconds": time.perf_counter() - start, **timing},
        critics_run=[],
        critics_not_run=[],
        not_run_reasons={},
        grade=None,
        passed=False,
        issues=[],
        error=error,
    )
    return row


# --- results.jsonl ------------------------------------------------------------------------------------------


def row_key(row: dict) -> tuple[str, str, int]:
    return (row["strategy"], str(row["prompt_id"]), int(row["seed"]))


def load_results(path: Path) -> tuple[dict[tuple, dict], list[str]]:
    """The recorded rows by key, and what was dropped and why.

    A line that is not a complete JSON record (a run killed mid-write leaves one at the end) is dropped, and
    the file is rewritten without it so that later appends start on a fresh line; its unit is redone.
    """
    if not path.exists():
        return {}, []
    data = path.read_bytes()
    rows: dict[tuple, dict] = {}
    dropped: list[str] = []
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            key = row_key(row)
        except (ValueError, KeyError, TypeError) as e:
            where = "an unfinished last line" if n == len(lines) else f"line {n}"
            dropped.append(
                f"{path.name}: {where} is not a complete record ({type(e).__name__}); it will be redone"
            )
            continue
        if key in rows:
            dropped.append(f"{path.name}: line {n} repeats {key}; the first record is kept")
            continue
        rows[key] = row
    clean = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows.values())
    if clean != data:
        from agent.rundir import write_atomic

        write_atomic(path, clean)
    return rows, dropped


def append_result(path: Path, row: dict) -> None:
    """Append one record and make it durable before the next unit starts."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- the command --------------------------------------------------------------------------------------------


def backends(settings: RunSettings) -> dict:
    """The run's backends (agent/nodes.py), imported when an eval runs: every command's parser imports this
    module, and parsing needs none of the director's graph (langgraph)."""
    from agent.nodes import backends as chosen

    return chosen(settings)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The `eval` command's flags (backend flags use the same names as `run`)."""
    g = parser.add_argument_group("prompt set")
    g.add_argument(
        "--prompts", required=True, help="'parti' (bundled PartiPrompts) or a .tsv/.csv/.jsonl file"
    )
    g.add_argument(
        "--category", action="append", default=[], help="keep only this category (repeatable, or a,b)"
    )
    g.add_argument(
        "--challenge", action="append", default=[], help="keep only this challenge (repeatable, or a,b)"
    )
    g.add_argument("--limit", type=int, help="sample this many prompts (after filtering)")
    g.add_argument("--sample-seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    g = parser.add_argument_group("design")
    g.add_argument(
        "--strategies",
        default="raw,template",
        help=f"comma-separated, the first is the baseline (default raw,template; registered: {', '.join(STRATEGIES)})",
    )
    g.add_argument(
        "--seeds", type=int, default=1, help="image seeds per prompt: 0..N-1 plus --seed (default 1)"
    )
    g.add_argument("--seed", type=int, default=0, help="first image seed (default 0)")
    g.add_argument("--out", required=True, help="output folder; rerun the same command to resume")
    g = parser.add_argument_group("backends (as for `run`)")
    g.add_argument("--image-backend", choices=["auto", "draft", "diffusers", "remote"])
    g.add_argument("--image-model", help="diffusers model id or local folder")
    g.add_argument("--image-server", help="OpenAI-compatible image server base URL")
    g.add_argument("--llm-base-url", help="OpenAI-compatible chat endpoint (llm strategies, repair rewrites)")
    g.add_argument("--llm-model", help="chat model name")
    g.add_argument("--vlm-base-url", help="OpenAI-compatible vision endpoint for the VLM critic")
    g.add_argument("--vlm-model", help="vision model name")
    g.add_argument("--clip-model", help="open_clip model name or local folder for the CLIP critic")
    g.add_argument("--size", default=DEFAULT_SIZE, help=f"image size WxH (default {DEFAULT_SIZE})")
    g.add_argument("--max-takes", type=int, help="take cap of repair-loop strategies (default 3)")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@dataclass
class EvalPlan:
    """Everything a run needs, checked before any work starts."""

    settings: RunSettings
    strategies: list[Strategy]
    prompts: list[EvalPrompt]
    seeds: list[int]
    problems: list[str]
    config: dict

    def units(self) -> list[Unit]:
        # Prompt-major order: an interrupted run leaves complete (prompt, seed) pairs across strategies.
        return [Unit(s.name, p, seed) for p in self.prompts for seed in self.seeds for s in self.strategies]


def plan_eval(args: argparse.Namespace) -> EvalPlan:
    """Check the command's input and build the plan; raises EvalInputError (or a subclass's) with the cause."""
    strategies = get_strategies(_split([args.strategies]))
    _check_counts(args)
    out = Path(args.out)
    settings = _eval_settings(args, out)
    check_ready(strategies, settings)
    try:
        backends(settings)
    except ValueError as e:  # the backend asked for cannot run here; say so before any work
        raise EvalInputError(str(e)) from e

    loaded = load_prompt_set(args.prompts)
    prompts = filter_prompts(loaded.prompts, _split(args.category), _split(args.challenge))
    prompts = sample_prompts(prompts, args.limit, args.sample_seed)
    config = {
        "prompts": args.prompts,
        "category": _split(args.category),
        "challenge": _split(args.challenge),
        "limit": args.limit,
        "sample_seed": args.sample_seed,
        "strategies": [s.name for s in strategies],
        "seeds": list(range(args.seed, args.seed + args.seeds)),
        "settings": settings.model_dump(mode="json", include=set(_FINGERPRINT_FIELDS)),
    }
    _check_out(out, config)
    return EvalPlan(settings, strategies, prompts, config["seeds"], loaded.problems, config)


def _check_counts(args: argparse.Namespace) -> None:
    if args.seeds < 1:
        raise EvalInputError(f"--seeds must be at least 1, got {args.seeds}")
    if args.limit is not None and args.limit < 1:
        raise EvalInputError(f"--limit must be at least 1, got {args.limit}")
    if args.max_takes is not None and not 1 <= args.max_takes <= 10:
        raise EvalInputError(f"--max-takes must be between 1 and 10, got {args.max_takes}")


def _eval_settings(args: argparse.Namespace, out: Path) -> RunSettings:
    _, width, height = resolve_size("1:1", args.size)
    overrides = {
        "image_backend": args.image_backend,
        "image_model": args.image_model,
        "image_server": args.image_server,
        "llm_base_url": args.llm_base_url,
        "llm_model": args.llm_model,
        "vlm_base_url": args.vlm_base_url,
        "vlm_model": args.vlm_model,
        "clip_model": args.clip_model,
        "max_takes": args.max_takes,
    }
    return RunSettings(
        run_dir=str(out),
        platform="1:1",
        width=width,
        height=height,
        seed=args.seed,
        **{k: v for k, v in overrides.items() if v is not None},
    )


def _check_out(out: Path, config: dict) -> None:
    """--out is new, empty, or an eval run made with the same settings (its numbers would be meaningless mixed)."""
    if out.exists() and not out.is_dir():
        raise EvalInputError(f"--out {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG).exists():
        raise EvalInputError(
            f"--out {str(out)!r} is not empty and holds no eval run ({CONFIG}); pick another folder"
        )
    if (out / CONFIG).exists():
        before = json.loads((out / CONFIG).read_text(encoding="utf-8"))["settings"]
        changed = {k: (before.get(k), v) for k, v in config["settings"].items() if before.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            raise EvalInputError(
                f"{out} holds results made with other settings ({detail}); mixing them would make the numbers "
                "meaningless. Use a new --out, or the same settings."
            )


def run_eval(args: argparse.Namespace) -> int:
    """`main.py eval`: returns the exit code (2 for bad input, 1 for a service failure mid-run)."""
    try:
        plan = plan_eval(args)
    except (EvalInputError, PromptSetError, StrategyError, SettingsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)  # messages stay one line each (greppable logs)
    for problem in plan.problems:
        console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    out = Path(plan.settings.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"error: another eval is writing to {out}; wait for it or use another --out", file=sys.stderr
            )
            return 2
        return _run_locked(plan, out, console)


def _run_locked(plan: EvalPlan, out: Path, console) -> int:
    import openai

    from evals.report import write_report, write_summary

    write_json(out / CONFIG, plan.config)
    done, dropped = load_results(out / RESULTS)
    for note in dropped:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)
    units = plan.units()
    todo = [u for u in units if u.key not in done]
    chosen = backends(plan.settings)
    backend, why = chosen["image"], chosen["image_why"]
    _announce(plan, backend, why, len(units), len(todo), console)
    if todo:
        # Loading the renderer and critics (weights, OCR models) costs seconds once per process; paying it on a
        # throwaway image keeps it out of the first strategy's `seconds`, which would otherwise look slower.
        with tempfile.TemporaryDirectory() as tmp:
            run_unit(
                Unit("raw", todo[0].item, todo[0].seed), plan.settings.model_copy(update={"run_dir": tmp})
            )
    start = time.perf_counter()
    try:
        _make_units(plan, todo, done, out, console)
    except (openai.APIError, LLMError) as e:
        print(
            f"error: the chat endpoint failed ({type(e).__name__}: {e}); finished units are saved in "
            f"{out / RESULTS}; rerun the same command to continue",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; rerun the same command to continue from {out / RESULTS}", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    rows = [done[u.key] for u in units]
    meta = {
        "config": plan.config,
        "image_backend": backend.name,
        "image_backend_reason": why,
        "units": len(units),
        "made_this_run": len(todo),
        "wall_seconds_this_run": round(elapsed, 3),
    }
    summary = write_summary(rows, [s.name for s in plan.strategies], out, meta)
    report = write_report(rows, summary, [s.name for s in plan.strategies], out)
    console.print(
        f"made {len(todo)} images in {elapsed:.1f} s; summary: {out / 'summary.json'}", highlight=False
    )
    print(report)
    return 0


def _announce(plan: EvalPlan, backend, why: str, units: int, todo: int, console) -> None:
    console.print(f"image backend: {backend.name} ({why})", highlight=False)
    if backend.name == "draft":
        console.print(
            "[yellow]draft backend:[/] images are storyboard panels, not model renders; the numbers test the "
            "harness, not the strategies.",
            highlight=False,
        )
    console.print(
        f"{len(plan.prompts)} prompts x {len(plan.seeds)} seeds x {len(plan.strategies)} strategies = "
        f"{units} images; {units - todo} already in {RESULTS}, {todo} to make",
        highlight=False,
    )


def _make_units(plan: EvalPlan, todo: list[Unit], done: dict, out: Path, console) -> None:
    """Each unit made and its row appended (and kept in `done`) as soon as it is made."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("eval", total=len(todo))
        for unit in todo:
            progress.update(task, description=f"{unit.strategy} {unit.item.id} s{unit.seed}")
            row = run_unit(unit, plan.settings)
            append_result(out / RESULTS, row)
            done[unit.key] = row
            progress.advance(task)
