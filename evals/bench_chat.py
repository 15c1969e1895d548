"""The offline chat parser on the request set (tests/data/chat_requests.jsonl), and the reply time of a change.

    python -m evals.bench_chat            # accuracy table, then reply times over a planned storyboard

Each request has the operation a person meant (with the arguments that matter), or "ask" for an ambiguous one,
or "refuse" for one the director cannot do. A request is *done* when the parser picks that operation with
those arguments (or asks / refuses when it should); *asked or refused* when it asks or says it cannot instead;
*wrong* when it picks any change that was not meant: the one figure that must be zero.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from agent.chat_parser import parse

REQUESTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "chat_requests.jsonl"
N_SHOTS = 8  # the requests are written against an 8-shot storyboard


def load_requests(path: Path = REQUESTS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge(request: dict) -> str:
    """'done', 'asked' (asked or refused where an operation was meant) or 'wrong' for one request."""
    got = parse(request["text"], N_SHOTS)
    want = request["expect"]
    if want in ("ask", "refuse"):
        if got.op is not None:
            return "wrong"
        return "done" if (got.question if want == "ask" else got.refusal) else "asked"
    if got.op is None:
        return "asked"
    if got.op != want:
        return "wrong"
    for key, value in request.get("args", {}).items():
        if got.args.get(key) != value:
            return "wrong"
    return "done"


def score(requests: list[dict]) -> dict:
    verdicts = [judge(r) for r in requests]
    meant = [v for v, r in zip(verdicts, requests, strict=True) if r["expect"] not in ("ask", "refuse")]
    n = len(requests)
    return {
        "requests": n,
        "operations_meant": len(meant),
        "done_pct": 100 * verdicts.count("done") / n,
        "op_done_pct": 100 * meant.count("done") / max(1, len(meant)),
        "asked_pct": 100 * verdicts.count("asked") / n,
        "wrong_pct": 100 * verdicts.count("wrong") / n,
        "wrong": [r["text"] for v, r in zip(verdicts, requests, strict=True) if v == "wrong"],
        "asked": [r["text"] for v, r in zip(verdicts, requests, strict=True) if v == "asked"],
    }


def reply_times(repeats: int = 5) -> dict[str, float]:
    """Median seconds of a chat reply to a storyboard change (operation, new version written, logged; the sheet
    is redrawn in the background), and of the replies that draw the sheet before answering."""
    from agent.chat import Chat
    from agent.settings import RunSettings

    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        root = Path(tmp) / "run"
        chat = Chat(root, RunSettings(run_dir=str(root)))
        start = time.perf_counter()
        chat.handle(
            "A 20-second launch film for wireless headphones. A runner at dawn. The slogan 'Hear the city'."
        )
        first = time.perf_counter() - start
        times: dict[str, list[float]] = {}
        messages = [
            "make shot 3 a close-up at night",
            "add a shot of the logo after shot 2",
            "swap shots 2 and 4",
            "第三个镜头改成夜景特写",
            "warmer, more cinematic",
            "undo",
        ]
        for _ in range(repeats):
            for message in messages:
                t = time.perf_counter()
                chat.handle(message)
                times.setdefault(message, []).append(time.perf_counter() - t)
        chat.wait()
        start = time.perf_counter()
        chat.handle("show the storyboard")
        sheet = time.perf_counter() - start
        return {
            "brief → storyboard (sheet drawn)": first,
            **{m: statistics.median(v) for m, v in times.items()},
            "show the storyboard (sheet drawn)": sheet,
        }


def main() -> None:
    result = score(load_requests())
    print(f"requests: {result['requests']} ({result['operations_meant']} meant an operation)")
    print(
        f"intended operation done: {result['op_done_pct']:.1f}% of those; all requests handled right: "
        f"{result['done_pct']:.1f}%"
    )
    print(f"asked or refused instead: {result['asked_pct']:.1f}%   wrong change: {result['wrong_pct']:.1f}%")
    for text in result["asked"]:
        print(f"  asked: {text}")
    for text in result["wrong"]:
        print(f"  WRONG: {text}")
    for message, seconds in reply_times().items():
        print(f"reply {seconds * 1000:7.0f} ms  {message}")


if __name__ == "__main__":
    main()
