"""Benchmark: the LLM planner against a local OpenAI-compatible server (llama.cpp's llama-server, vLLM, Ollama).

Plans a fixed set of briefs and scripts (English and Chinese) with `--planner llm` and prints, per storyboard and
in all: whether it succeeded, the chat calls it took, prompt and completion tokens (when the server reports
usage) and seconds. A storyboard succeeds when the planner returns one (its own validation passed); a failure
prints the planner's one-line error. docs/LOCAL_LLM.md has the figures measured with llama.cpp on a 2-core CPU.

    python evals/bench_llm_plan.py --llm-base-url http://127.0.0.1:8088/v1 --llm-model qwen2.5-0.5b \\
        [--llm-timeout 120] [--llm-retries 2] [--llm-max-tokens N] [--llm-temperature T] [--limit 10] \\
        [--llm-plan auto|whole|batches] [--llm-batch 3] [--only NAME ...] [--json out.json] \\
        [--answers answers.jsonl]

Calls and tokens are counted at the openai client (every chat completion the planner makes, whichever way it
builds its requests), so the figures do not depend on the planner's internals; retries made inside the openai
client itself (a client built with max_retries > 0) are not seen, which tools.llm clients never make.
`--answers` writes one line per chat completion: the brief, the response_format type asked for, finish_reason,
seconds, tokens and the answer's text (or the exception), so that a rejected answer can be read whole; the
planner's warnings (why it asked again) go into each row's `problems`.

What the storyboard is made of, per row: `offline_shots` (shots wholly the offline planner's), `offline_subtitles`
(the offline planner's copy on the model's picture), `rule_repairs`, and `rebuilt`: how many shots had their
description or prompt rebuilt by the director's rules, by source (`tools.plan_review.rebuilt_by_rule`): "the
outline's beat" (the model's own beats), "the offline planner's beat", "the shot's fields" (a prompt built from
the model's description, camera, lighting and mood), "the offline planner's prompt"; `outline` counts beats of the
short calls' outline that are the offline planner's. The totals count storyboards with no offline shot
(`all_shots_by_the_model`) and, of those, with no description, prompt or beat from the offline planner
(`all_pictures_from_the_model`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (name, brief, shots): short product briefs, longer briefs with copy, and screenplay-like scripts, en and zh.
BRIEFS: list[tuple[str, str, int]] = [
    ("headphones-en", "A 20-second launch film for wireless noise-cancelling headphones, for Instagram. "
     "A commuter on a loud train puts them on and the city goes quiet. Slogan: \"Silence, redesigned.\"", 4),
    ("mug-en", "A 12-second Xiaohongshu clip for a handmade ceramic coffee mug, slogan 'Slow mornings'. "
     "Steam at dawn, hands around the mug, the glaze up close.", 4),
    ("bottle-en", "A 15-second spot for an insulated steel water bottle: hikers on a ridge at noon, ice still "
     "clinking after a long climb. Claim: cold for 24 hours. Price $39.", 4),
    ("shoe-en", "A 10-second teaser for a running shoe, vertical for TikTok: a runner at night in the rain, "
     "neon reflections, the sole hitting a puddle in slow motion. End card: 'Run the city.'", 4),
    ("script-en", "INT. SUBWAY CAR - NIGHT\nMAYA (30s, tired nurse in scrubs) slumps in a seat.\n"
     "MAYA: One more stop.\nShe opens a thermos; steam rises.\nSUPER: Warm all shift.\n"
     "EXT. HOSPITAL - DAWN\nMaya walks out into pink light, smiling.", 4),
    ("phone-en", "A 30-second film for a folding phone: a designer sketches on the open screen in a sunlit "
     "studio, folds it into her pocket, and takes a call on a windy bridge. Call to action: Pre-order now.", 6),
    ("tea-zh", "15秒的抖音短片，竖屏：桂花乌龙茶。清晨的茶园，桂花飘落，热水冲入玻璃杯，茶叶舒展。口号：「一口秋天」。", 4),
    ("skincare-zh", "一支20秒的小红书广告：保湿面霜。夜晚的浴室，柔和灯光，女孩涂抹面霜，特写质地。价格¥899。", 4),
    ("ev-zh", "半分钟的电动汽车广告：城市夜景，汽车驶过雨后的街道，车内安静，充电十分钟续航两百公里。", 6),
    ("script-zh", "内景 咖啡馆 - 白天\n阿明（二十多岁，程序员）盯着电脑叹气。\n阿明：又是一个bug。\n"
     "服务员端来一杯拿铁。\n字幕：今天，慢一点。\n外景 街道 - 黄昏\n阿明合上电脑，走进夕阳。", 4),
]  # fmt: skip


class Counter:
    """Counts every chat completion made through the openai client while installed, and keeps each answer."""

    def __init__(self, brief: str):
        self.brief = brief
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.usage_seen = False
        self.answers: list[dict] = []

    def install(self):
        from openai.resources.chat.completions import Completions

        original = Completions.create
        counter = self

        def create(self, *args, **kwargs):
            counter.calls += 1
            record = {
                "brief": counter.brief,
                "call": counter.calls,
                "response_format": (kwargs.get("response_format") or {}).get("type", "none"),
                "max_tokens": kwargs.get("max_tokens") or kwargs.get("max_completion_tokens"),
            }
            counter.answers.append(record)
            start = time.perf_counter()
            try:
                completion = original(self, *args, **kwargs)
            except Exception as exc:
                record |= {"seconds": round(time.perf_counter() - start, 2), "error": _one_line(exc)}
                raise
            record["seconds"] = round(time.perf_counter() - start, 2)
            if completion.choices:
                choice = completion.choices[0]
                record |= {"finish_reason": choice.finish_reason, "content": choice.message.content}
            if usage := getattr(completion, "usage", None):
                counter.usage_seen = True
                counter.prompt_tokens += usage.prompt_tokens or 0
                counter.completion_tokens += usage.completion_tokens or 0
                record |= {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
            return completion

        Completions.create = create
        return lambda: setattr(Completions, "create", original)


class Problems(logging.Handler):
    """The planner's warnings (an answer asked again, and why) while one storyboard is planned."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_one_line(record.getMessage(), 400))

    def progress(self, line: str) -> None:
        """The planner's progress lines, printed as they come (a slow server is seen working) and kept."""
        print(f"    {line}", flush=True)
        if "not usable" in line or "failed" in line:
            self.lines.append(_one_line(line, 400))


def _one_line(text, limit: int = 300) -> str:
    if isinstance(text, BaseException):
        text = f"{type(text).__name__}: {text}"
    return " ".join(str(text).split())[:limit]


def _offline_count(note: str) -> int:
    """Shots a planner note says came from the offline planner ('shot(s) 3, 4 from the offline planner')."""
    if "from the offline planner" not in note or not note.startswith("shot(s) ") or "subtitle only" in note:
        return 0
    return len(note.removeprefix("shot(s) ").split(" from ")[0].split(","))


def plan_one(name: str, brief_text: str, shots: int, args) -> tuple[dict, list[dict]]:
    from agent.settings import RunSettings
    from tools.plan import plan_storyboard, read_brief
    from tools.plan_review import rebuilt_by_rule

    counter = Counter(name)
    uninstall = counter.install()
    problems = Problems()
    logging.getLogger("tools").addHandler(problems)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(
            run_dir=tmp,
            planner="llm",
            llm_base_url=args.llm_base_url,
            llm_model=args.llm_model,
            llm_timeout=args.llm_timeout,
            llm_retries=args.llm_retries,
            llm_max_tokens=args.llm_max_tokens,
            llm_temperature=args.llm_temperature,
            llm_plan=args.llm_plan,
            llm_batch=args.llm_batch,
            shots=shots,
        )
        notes: list[str] = []
        try:
            board = plan_storyboard(read_brief(brief_text), settings, notes, on_progress=problems.progress)
            ok, error, got = True, "", len(board.shots)
        except Exception as exc:  # noqa: BLE001 - a benchmark records every failure and goes on
            ok, error, got = False, _one_line(exc), 0
        finally:
            uninstall()
            logging.getLogger("tools").removeHandler(problems)
    row = {
        "ok": ok,
        "shots_asked": shots,
        "shots": got,
        "calls": counter.calls,
        "prompt_tokens": counter.prompt_tokens if counter.usage_seen else None,
        "completion_tokens": counter.completion_tokens if counter.usage_seen else None,
        "seconds": round(time.perf_counter() - start, 2),
        "error": error,
        # Shots the model did not write (the offline planner's, with a note): a storyboard that is the model's
        # own has none.
        "offline_shots": sum(_offline_count(n) for n in notes),
        # What the director's rules mended in the model's answers (tools/plan_review.py), one per note.
        "rule_repairs": sum(1 for n in notes if n.startswith(("shot ", "outline beat"))),
        # Shots whose copy (subtitle) is the offline planner's while the picture is the model's.
        "offline_subtitles": sum(
            _offline_count(n.replace("subtitle only", "")) for n in notes if "subtitle only" in n
        )
        + sum(1 for n in notes if n.startswith("shot ") and "took the offline planner's copy" in n),
        # Shots whose description or image prompt the rules rebuilt, by what from ("the outline's beat" is the
        # model's own outline; "the offline planner's beat" / "prompt" are not the model's words).
        "rebuilt": rebuilt_by_rule(notes),
        "notes": notes,
        "problems": problems.lines,
    }
    return row, counter.answers


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    names = [name for name, _, _ in BRIEFS]
    if unknown := sorted(set(args.only or ()) - set(names)):
        parser.error(f"--only: no brief named {', '.join(unknown)}; the briefs are {', '.join(names)}")
    chosen = [b for b in BRIEFS if not args.only or b[0] in args.only][: args.limit]
    if args.answers:
        args.answers.write_text("")
    rows = []
    for name, text, shots in chosen:
        row, answers = plan_one(name, text, shots, args)
        row = {"brief": name, **row}
        rows.append(row)
        if args.answers:
            with args.answers.open("a") as out:
                out.writelines(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
        tokens = (
            f"{row['prompt_tokens']}+{row['completion_tokens']}" if row["prompt_tokens"] is not None else "-"
        )
        status = "ok  " if row["ok"] else "FAIL"
        rebuilt = "; ".join(
            f"{k} {v}x {src}" for k, sources in row["rebuilt"].items() for src, v in sources.items()
        )
        print(
            f"{status} {name:14} {row['shots']}/{shots} shots  {row['calls']} calls  {tokens:>11} tokens  "
            f"{row['seconds']:7.1f} s  {row['offline_shots']} offline  {row['rule_repairs']} mended  {row['error']}"
            + (f"\n     rebuilt by rule: {rebuilt}" if rebuilt else ""),
            flush=True,
        )
    totals = _totals(rows)
    print(json.dumps(totals, indent=2))
    if args.json:
        keys = ("llm_timeout", "llm_retries", "llm_max_tokens", "llm_temperature", "llm_plan", "llm_batch")
        settings = {k: getattr(args, k) for k in keys}
        report = {"model": args.llm_model, "settings": settings, "rows": rows, "totals": totals}
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if rows and totals["succeeded"] == len(rows) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-base-url", required=True)
    parser.add_argument("--llm-model", required=True)
    parser.add_argument("--llm-timeout", type=float, default=120.0)
    parser.add_argument("--llm-retries", type=int, default=2)
    parser.add_argument("--llm-max-tokens", type=int, default=None)
    parser.add_argument("--llm-temperature", type=float, default=None)
    parser.add_argument("--llm-plan", choices=("auto", "whole", "batches"), default="auto")
    parser.add_argument("--llm-batch", type=int, default=3)
    parser.add_argument("--limit", type=int, default=len(BRIEFS))
    parser.add_argument("--only", nargs="+", metavar="NAME", help="plan only these briefs (names as printed)")
    parser.add_argument("--json", type=Path, help="also write the rows and totals here")
    parser.add_argument("--answers", type=Path, help="write every chat completion here, one JSON line each")
    return parser


def _offline_words(row: dict) -> int:
    """Shots whose description or prompt the rules took from the offline planner."""
    return sum(n for sources in row["rebuilt"].values() for src, n in sources.items() if "offline" in src)


def _totals(rows: list[dict]) -> dict:
    done = [r for r in rows if r["ok"]]
    return {
        "storyboards": len(rows),
        "succeeded": len(done),
        "all_shots_by_the_model": sum(1 for r in done if not r["offline_shots"]),
        # ... and of those, how many have every description and prompt in the model's own words (its answer,
        # its outline, or a prompt built from its fields), none from the offline planner's beats or prompts.
        "all_pictures_from_the_model": sum(
            1 for r in done if not r["offline_shots"] and not _offline_words(r)
        ),
        "success_rate": round(len(done) / len(rows), 3) if rows else 0.0,
        "calls_per_storyboard": round(sum(r["calls"] for r in rows) / len(rows), 2) if rows else 0.0,
        "seconds_per_storyboard": round(sum(r["seconds"] for r in rows) / len(rows), 1) if rows else 0.0,
        "max_seconds": max((r["seconds"] for r in rows), default=0.0),
        "within_120_s": sum(1 for r in done if r["seconds"] <= 120.0),
        "completion_tokens_per_storyboard": (
            round(sum(r["completion_tokens"] for r in rows) / len(rows))
            if rows and all(r["completion_tokens"] is not None for r in rows)
            else None
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
