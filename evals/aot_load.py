"""Where the load of `--compile-aot`'s packages goes, in a fresh process: `import torch._inductor`, then each
package of a cache folder through `torch._inductor.aoti_load_package`, timed, with cProfile's top entries of
the slowest load. Run after a film has filled the folder (evals/gpu_device.sh step aot-load).

    python evals/aot_load.py --cache /tmp/cd-aot --out load.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="the --compile-cache folder (its aot/ holds the packages)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    import torch

    row = {"import_torch_s": round(time.perf_counter() - t, 3)}
    t = time.perf_counter()
    import torch._inductor

    row["import_inductor_s"] = round(time.perf_counter() - t, 3)
    if torch.cuda.is_available():
        t = time.perf_counter()
        torch.zeros(1, device="cuda")
        row["cuda_init_s"] = round(time.perf_counter() - t, 3)
    loads, slowest = [], (0.0, "")
    for path in sorted((Path(args.cache) / "aot").glob("*.pt2")):
        profile = cProfile.Profile()
        t = time.perf_counter()
        profile.enable()
        torch._inductor.aoti_load_package(str(path))
        profile.disable()
        seconds = time.perf_counter() - t
        loads.append(
            {"package": path.name, "mib": round(path.stat().st_size / 2**20, 2), "s": round(seconds, 3)}
        )
        if seconds > slowest[0]:
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
            slowest = (seconds, text.getvalue())
    row |= {"loads": loads, "slowest_profile": slowest[1][-6000:]}
    print(json.dumps({k: v for k, v in row.items() if k != "slowest_profile"}, indent=1))
    print(slowest[1][-6000:])
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1))
    return row


if __name__ == "__main__":
    main()
