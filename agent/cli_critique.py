"""`critique`: judge existing images against a prompt, as a table or JSON."""

from __future__ import annotations

import json

from agent.cli_input import make_settings


def cmd_critique(args, console) -> int:
    from agent.settings import resolve_size
    from tools.critique import CritiqueConfig, critique_files

    width = height = None
    if args.size:
        _, width, height = resolve_size(None, args.size)
    settings = make_settings(args, ".")
    results = critique_files(
        args.images, args.prompt, args.expect_text, width, height, settings.config(CritiqueConfig)
    )
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if "error" in r:
                console.print(f"[red]{r['path']}: {r['error']}[/]")
                continue
            verdict = "pass" if r["pass"] else "FAIL"
            console.print(f"{r['path']}: {verdict} grade {r['grade']}")
            for issue in r["issues"]:
                console.print(f"   - {issue['category']}: {issue['reason']}")
    return 1 if any("error" in r for r in results) else 0
