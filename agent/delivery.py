"""Delivering the film for other platforms: the kept still framed for another aspect ratio (a variant), and the
clips a platform's own cut is made of.

The cut node and the `adapt` node call these; each result is recorded in the run directory, so a resumed run
reuses it.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.retry import retry
from agent.rundir import RunDir, write_atomic, write_json
from agent.settings import RunSettings
from tools.film import Clip, ShotResult, Take, Variant

if TYPE_CHECKING:
    from tools.film import Shot


PLATFORM_WORKERS = 4  # shots animated at once for another platform's cut (ffmpeg runs outside the GIL)


def cut_platforms(settings: RunSettings) -> list[str]:
    """The platforms a cut is made for, first (final.mp4) first: --platforms, else the run's own platform.

    The first cut is always at the run's own frame size; the others at their preset's size."""
    from agent.settings import resolve_size

    labels = [resolve_size(p, None)[0] for p in settings.platforms] or [settings.platform]
    return list(dict.fromkeys(labels))


def file_label(platform: str) -> str:
    """A platform label as it appears in file names: tiktok, 4x5."""
    return platform.replace(":", "x")


def platform_clip(shot: Shot, result: ShotResult, platform: str, settings: RunSettings, run: RunDir) -> Clip:
    """The shot's clip for `platform`: its kept take framed for that aspect (the --variants still if one was
    made, else outpainted now), animated with the shot's own motion, seed and length into
    clips/<shot>-<platform>.mp4. A recorded clip of the same take is reused."""
    from agent.rundir import read_json
    from agent.settings import resolve_size
    from tools.animate import AnimateRequest

    kept = next(t for t in result.takes if t.n == result.best)
    main = result.clip
    path = run.clip_path(shot.id).with_name(f"{shot.id}-{file_label(platform)}.mp4")
    record = path.with_suffix(".json")
    if record.exists() and path.exists():
        clip = Clip.model_validate(read_json(record))
        if clip.take == kept.n and clip.duration == main.duration:
            return clip
    variant = next((v for v in result.variants if v.platform == platform and v.error is None), None)
    variant = variant or run.load_variant(shot.id, platform, kept.n)
    if variant is None:
        variant = make_variant(shot, kept, platform, settings, run)
    if variant.error is not None:
        raise RuntimeError(
            f"{shot.id} could not be framed for {platform}: {variant.error}; "
            f"re-run with --resume, or leave {platform} out of --platforms"
        )
    _, width, height = resolve_size(platform, None)
    seed = int(main.parameters.get("seed", kept.seed))
    req = AnimateRequest(
        image_path=run.abs(variant.path).as_posix(),
        output_path=path.as_posix(),
        prompt=kept.prompt,
        negative_prompt=kept.negative_prompt,
        duration=main.duration,
        fps=settings.fps,
        width=width,
        height=height,
        motion=main.motion,
        seed=seed,
    )
    start = time.perf_counter()
    made = settings.backends()["video"].animate(req)
    clip = Clip(
        shot_id=shot.id,
        take=kept.n,
        path=run.rel(path),
        backend=made.backend,
        model=made.model,
        motion=main.motion,
        duration=main.duration,
        fps=settings.fps,
        width=width,
        height=height,
        parameters={**made.parameters, "seed": seed, "platform": platform, "still": variant.path},
        timings={"wall_s": round(time.perf_counter() - start, 3), **made.timings},
    )
    write_json(record, clip)
    return clip


AHEAD_NICE = 5  # how far below the run the segments of a clip not yet checked are encoded
PREPARE_MIN_CPUS = 8  # the head start pays where cores idle while the GPU renders; on a small CPU it competes


def pre_cut(settings: RunSettings, run: RunDir, made: Clip | None = None) -> bool:
    """Encode the first cut's segments that the clips on disk allow, while other shots still render (a shot
    branch calls this once its clip is made), so that the cut after the last clip has little left to do.
    `made`: a clip written but not recorded yet (its check is running): its segments are made too. True when
    every shot had its clip: nothing is left for a later call to prepare.

    Only a head start: a failure here is logged and left to the cut, which encodes whatever is missing. Skipped
    on machines of fewer than `PREPARE_MIN_CPUS` cores, where the encodes would take cores from the renders and
    critics of other shots (and a voice line that retimes the film would make them wasted work)."""
    import logging
    import os

    if (os.cpu_count() or 1) < PREPARE_MIN_CPUS:
        return False

    from agent.rundir import read_json
    from tools.cut import CutConfig, prepare_cut
    from tools.film import Storyboard

    try:
        storyboard = Storyboard.model_validate(read_json(run.root / "storyboard.json"))
        clips = {s.id: run.load_clip(s.id) for s in storyboard.shots}
        if made is not None:
            clips[made.shot_id] = made
        config = settings.config(CutConfig).model_copy(update={"platform": cut_platforms(settings)[0]})
        # A clip still in its check may be made again: its segments yield the cores to the work needed now.
        prepare_cut(storyboard.shots, clips, run.root, config, nice=AHEAD_NICE if made else 0)
    except Exception as err:  # noqa: BLE001 - the cut makes the same segments and reports its own errors
        logging.getLogger(__name__).warning("segments not prepared ahead of the cut: %s", err)
        return False
    return all(clips.values())


VARIANT_TRIES = 2  # a variant that fails its critique (or the backend) is made once more with another seed


def _make_variant(
    shot, kept: Take, platform: str, settings: RunSettings, run: RunDir, attempt: int
) -> Variant:
    """The kept take for `platform`: resized when the aspect ratio matches, else outpainted; then critiqued."""
    from agent.settings import resolve_size
    from tools.critique import CritiqueConfig, CritiqueRequest, critique_image

    _, width, height = resolve_size(platform, None)
    source, out = run.abs(kept.path), run.variant_path(shot.id, platform)
    same_aspect = abs(width / height - settings.width / settings.height) < 0.01
    backend = settings.backends()["image"]
    seed = kept.seed + 7919 * attempt  # the variant's own seed, another on the second attempt
    variant = Variant(
        shot_id=shot.id,
        platform=platform,
        take=kept.n,
        path=run.rel(out),
        width=width,
        height=height,
        mode="resize" if same_aspect else "outpaint",
        backend=backend.name,
        model=backend.model,
        seed=seed,
        parameters={"attempt": attempt},
    )
    start = time.perf_counter()
    if same_aspect:
        _resize_variant(variant, source, out)
    else:
        _outpaint_variant(variant, backend, kept, shot, source, out)
    variant.timings = {"wall_s": round(time.perf_counter() - start, 3)}
    if variant.error is None:
        req = CritiqueRequest(
            image_path=out.as_posix(),
            prompt=shot.prompt,
            width=width,
            height=height,
            expect_text=shot.expect_text,
        )
        variant.critique = critique_image(req, settings.config(CritiqueConfig))
    return variant


def _resize_variant(variant: Variant, source: Path, out: Path) -> None:
    from PIL import Image

    with Image.open(source) as im:
        resized = im.convert("RGB").resize((variant.width, variant.height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    resized.save(buf, format="PNG")
    write_atomic(out, buf.getvalue())
    variant.backend, variant.model = "resize", "lanczos"


def _outpaint_variant(variant: Variant, backend, kept: Take, shot, source: Path, out: Path) -> None:
    """The kept take outpainted to the variant's frame by the run's image backend; a backend error is kept on
    the variant (it is made once more), not raised."""
    from tools.generate_image import BackendError, ImageRequest

    req = ImageRequest(
        prompt=kept.prompt,
        negative_prompt=kept.negative_prompt,
        width=variant.width,
        height=variant.height,
        seed=variant.seed,
        output_path=out.as_posix(),
        shot=shot,
        init_image=source.as_posix(),
        outpaint=True,
    )
    try:
        result = backend.generate(req)
    except BackendError as err:
        variant.error = str(err)
    else:
        variant.backend, variant.model = result.backend, result.model
        variant.parameters.update(result.parameters)


def _variant_accepted(variant: Variant) -> bool:
    # A resize made again would be the same image: it is accepted whatever its critique says.
    return variant.error is None and (variant.critique.passed or variant.mode == "resize")


def make_variant(shot: Shot, kept: Take, platform: str, settings: RunSettings, run: RunDir) -> Variant:
    """The kept take framed for `platform`, made again once with another seed when it fails; recorded."""
    variant = retry(
        VARIANT_TRIES,
        lambda k, _: _make_variant(shot, kept, platform, settings, run, k),
        _variant_accepted,
    )
    run.save_variant(variant)
    return variant
