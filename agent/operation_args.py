"""What the director's operations take and return: typed arguments (pydantic, so an LLM's tool call is
validated as a surface's is) and the `Change` record each one hands back. The operations are agent/operations.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.film import ShotKind


class OperationError(ValueError):
    """A request this run cannot carry out; the message says why and what to do instead."""


class Change(BaseModel):
    """What an operation did."""

    op: str
    message: str = Field(description="One line for the person: what happened.")
    shots: list[str] = Field(
        default_factory=list, description="Ids of the shots affected (after the change)."
    )
    before: list[str] = Field(default_factory=list, description="One line per affected shot, before.")
    after: list[str] = Field(default_factory=list, description="One line per affected shot, after.")
    version: int | None = Field(default=None, description="Storyboard version written, if any.")
    paths: dict[str, str] = Field(default_factory=dict, description="Files a person may open (sheet, film).")


# --- arguments ------------------------------------------------------------------------------------------------


class PlanArgs(BaseModel):
    """Plan the storyboard for a brief; the film then waits for approval."""

    brief: str = Field(description="The brief or script text.")
    source: str = Field(default="chat", description="Where the brief came from.")


class ReviseShot(BaseModel):
    """Change one or more fields of shots already on the storyboard."""

    shots: list[int] = Field(min_length=1, description="1-based shot numbers to change.")
    kind: ShotKind | None = Field(default=None, description="New shot size / framing.")
    description: str | None = Field(default=None, max_length=600, description="What the shot shows now.")
    look: str | None = Field(
        default=None,
        max_length=200,
        description="Time of day or kind of light in plain words (night, dawn, rain); sets lighting and mood.",
    )
    lighting: str | None = Field(default=None, max_length=200)
    mood: str | None = Field(default=None, max_length=200)
    camera: str | None = Field(default=None, max_length=200)
    motion: Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"] | None = None
    subtitle: str | None = Field(default=None, max_length=200, description="The shot's line ('' to clear).")
    duration: float | None = Field(default=None, gt=0, le=60, description="Seconds on screen.")
    prompt: str | None = Field(default=None, max_length=2000, description="The image prompt, as given.")


class AddShot(BaseModel):
    """Add a shot after or before shot N, or at the end."""

    description: str = Field(min_length=1, max_length=600)
    after: int | None = Field(default=None, ge=0, description="Insert after this shot (0: at the start).")
    before: int | None = Field(default=None, ge=1, description="Insert before this shot.")
    kind: ShotKind | None = None
    duration: float | None = Field(default=None, gt=0, le=60)


class ShotRef(BaseModel):
    shot: int = Field(description="1-based shot number.")


class MoveShot(BaseModel):
    shot: int = Field(description="1-based shot number to move.")
    to: int = Field(description="1-based position it ends at.")


class SwapShots(BaseModel):
    a: int
    b: int


class SetFilm(BaseModel):
    """Film-wide settings: length, platform(s), style words, subtitle language, a reference image."""

    duration: float | None = Field(default=None, gt=0, le=600)
    platforms: list[str] | None = Field(
        default=None, description="Platform presets or ratios; first is main."
    )
    style: str | None = Field(default=None, max_length=200, description="Style words added to every shot.")
    lang: Literal["en", "zh"] | None = None
    reference: str | None = Field(default=None, max_length=1000, description="A user's image path.")


class SetLine(BaseModel):
    """A shot's line (subtitle), or the film's slogan (on the last shot, as subtitle and on-image text)."""

    text: str = Field(max_length=200)
    shot: int | None = Field(default=None, description="None: the slogan, on the last shot.")


class SetVoiceover(BaseModel):
    """The line the voice-over speaks during a shot ('' for none); on a finished film, the film is re-cut with
    only that line spoken again."""

    shot: int
    text: str = Field(max_length=300)


class RedoArgs(BaseModel):
    shot: int
    note: str = Field(default="", max_length=1000)


class DeliverArgs(BaseModel):
    platform: str = Field(max_length=40)


# The operations (functions of agent/operations.py by name) an interpreter may choose, with their arguments;
# the JSON schema of each model is what an LLM's tool definition will carry.
OPERATIONS: dict[str, type[BaseModel] | None] = {
    "revise_shot": ReviseShot,
    "add_shot": AddShot,
    "remove_shot": ShotRef,
    "move_shot": MoveShot,
    "swap_shots": SwapShots,
    "set_film": SetFilm,
    "set_line": SetLine,
    "set_voiceover": SetVoiceover,
    "undo": None,
    "show": None,
    "approve": None,
    "status": None,
    "redo": RedoArgs,
    "deliver": DeliverArgs,
    "takes": ShotRef,
}
