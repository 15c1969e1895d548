"""What `set_film` changes in a run: the settings and storyboard updates for new platforms, style words, a
language or a reference image, and the shots at a new length (scaled, or planned again)."""

from __future__ import annotations

from pathlib import Path

from agent import reference_image
from agent.operation_args import OperationError, SetFilm
from agent.rundir import read_json
from agent.settings import RunSettings, SettingsError, resolve_size
from agent.shot_edit import scale_durations
from tools.film import Brief, Storyboard


def film_updates(
    root: Path, args: SetFilm, storyboard: Storyboard, settings: RunSettings
) -> tuple[dict, dict, list[str]]:
    """What set_film changes in the settings and in the storyboard, and a note for each change."""
    notes: list[str] = []
    update: dict = {}
    board: dict = {}
    if args.platforms:
        try:
            sizes = [resolve_size(p, None) for p in args.platforms]
        except SettingsError as err:
            raise OperationError(str(err).replace("--platform ", "platform ")) from None
        labels = list(dict.fromkeys(s[0] for s in sizes))
        update |= {"platform": labels[0], "platforms": labels, "width": sizes[0][1], "height": sizes[0][2]}
        board |= {"width": sizes[0][1], "height": sizes[0][2]}
        notes.append(f"platform {', '.join(labels)}: {sizes[0][1]}×{sizes[0][2]}")
    if args.style:
        words = [w.strip() for w in args.style.split(",") if w.strip()]
        have = [w.strip() for w in storyboard.style.split(",") if w.strip()]
        style = ", ".join(dict.fromkeys(have + words))
        update["style"] = board["style"] = style
        notes.append(f"style: {style}")
    if args.lang:
        update["lang"] = args.lang
        notes.append(
            f"subtitle language {args.lang}"
            + (
                f" (the offline planner does not translate: lines stay in {storyboard.lang})"
                if args.lang != storyboard.lang and settings.planner == "offline"
                else ""
            )
        )
    if args.reference:
        rel = reference_image.copy_reference(root, args.reference, settings)
        update["reference"] = [*settings.reference, rel]
        notes.append(f"reference image {rel}: every shot is conditioned on it")
    if args.duration:
        update["duration"] = args.duration
    return update, board, notes


def retime(
    root: Path, duration: float, storyboard: Storyboard, settings: RunSettings, board: dict, notes: list[str]
):
    """The shots at a new length: every shot's time scaled, or the brief planned again when the shots cannot
    fit in it. Returns the storyboard and its shots."""
    from tools.plan import PlanError, plan_storyboard

    scaled = scale_durations(list(storyboard.shots), duration)
    if scaled is not None:
        notes.append(f"{duration:g} s: every shot's time scaled")
        return storyboard, scaled
    try:
        replanned = plan_storyboard(
            Brief.model_validate(read_json(root / "brief.json")),
            settings.model_copy(update={"shots": None}),
        )
    except PlanError as err:
        raise OperationError(str(err)) from None
    storyboard = replanned.model_copy(update=board)
    shots = list(storyboard.shots)
    notes.append(f"{duration:g} s: re-planned as {len(shots)} shots (undo brings the old ones back)")
    return storyboard, shots
