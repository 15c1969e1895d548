"""The command line from the settings' fields: flags generated from `RunSettings`, parsed flags back to settings.

A field with a `Flag` in its metadata is a flag of the commands of its group; its help is the field's
description, its choices the Literal's, its type the field's. Every flag defaults to None (absent), so
`settings_from_args` can tell what the user typed from what was left out, and apply, in this order: the flag,
what the brief itself asks for (`brief_settings`), `CD_<FIELD>`, the field's default.
"""

from __future__ import annotations

import argparse
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from agent.settings import Flag, RunSettings, SettingsError, resolve_size, split_commas
from tools.film import BriefReading

__all__ = [
    "add_settings_arguments",
    "brief_settings",
    "describe_reading",
    "flag_fields",
    "settings_from_args",
]


def _flag(name: str) -> Flag | None:
    return next((m for m in RunSettings.model_fields[name].metadata if isinstance(m, Flag)), None)


def _base_type(annotation) -> tuple[Any, bool]:
    """(the type without None, whether it is a list)."""
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not NoneType)
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is list:
        return get_args(annotation)[0], True
    return annotation, False


def _threshold(item: str) -> tuple[str, float]:
    name, sep, value = item.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        sep = ""
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--threshold {item!r} is not NAME=NUMBER")
    return name.strip(), float(value)


def flag_fields(*groups: str) -> list[str]:
    """The settings fields that are flags of these groups, in the order the fields are declared."""
    return [n for n in RunSettings.model_fields if (f := _flag(n)) and f.group in groups]


def add_settings_arguments(parser, names: list[str]) -> None:
    """Add one flag per settings field in `names` to an argparse parser or argument group.

    Every flag's default is None (absent), so `settings_from_args` can tell a flag the user gave from one left
    out; the field's default, the brief's reading or CD_<FIELD> then applies.
    """
    for name in names:
        info = RunSettings.model_fields[name]
        flag = _flag(name) or Flag("models")
        kind, is_list = _base_type(info.annotation)
        helptext = flag.help or (info.description or "").rstrip(".")
        word = helptext.split(" ", 1)[0]
        if word[1:].islower():  # argparse's own lines start in lower case; names such as OpenAI keep theirs
            helptext = helptext[0].lower() + helptext[1:]
        default = info.get_default(call_default_factory=True)
        if (
            default is not None
            and default is not False
            and default not in ("", [], {})
            and "default" not in helptext
        ):
            helptext += f" (default {default})"
        kw: dict[str, Any] = {"dest": name, "default": None, "help": helptext}
        if flag.metavar:
            kw["metavar"] = flag.metavar
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction if flag.negatable else "store_true"
        elif name == "thresholds":
            kw.update(action="append", type=_threshold)
        elif get_origin(kind) is Literal:
            kw["choices"] = list(get_args(kind))
        elif flag.split:
            kw["type"] = split_commas
        elif is_list or flag.append:
            kw["action"] = "append"
        elif kind in (int, float):
            kw["type"] = kind
        if flag.nargs:
            kw.update(nargs=flag.nargs, const=flag.const)
        parser.add_argument(flag.name or "--" + name.replace("_", "-"), **kw)


def _flag_name(name: str) -> str:
    flag = _flag(name)
    return flag.name if flag and flag.name else "--" + name.replace("_", "-")


def brief_settings(reading: BriefReading | None) -> dict[str, Any]:
    """What the brief's own words ask of the settings: duration, platform (a comma list) and language."""
    if reading is None:
        return {}
    asked: dict[str, Any] = {}
    if reading.duration:
        asked["duration"] = reading.duration
    platforms = []
    for p in reading.platforms:
        try:
            platforms.append(resolve_size(p, None)[0])
        except SettingsError:
            continue  # a platform the planner read but this program has no preset for: it has no size
    if platforms:
        asked["platform"] = ",".join(dict.fromkeys(platforms))
    elif reading.aspect:
        try:
            asked["platform"] = resolve_size(reading.aspect, None)[0]
        except SettingsError:
            pass
    if reading.lang:
        asked["lang"] = reading.lang
    return asked


def describe_reading(reading: BriefReading | None) -> str | None:
    """One line: what was read from the brief, e.g. "15 s, tiktok + instagram, copy: 'Slow mornings', ¥899"."""
    if reading is None:
        return None
    parts = []
    if reading.duration:
        parts.append(f"{reading.duration:g} s")
    if reading.platforms:
        parts.append(" + ".join(reading.platforms))
    elif reading.aspect:
        parts.append(reading.aspect)
    if reading.lang:
        parts.append(reading.lang)
    if reading.product:
        parts.append(f"product: {reading.product}")
    copy = [f"'{s}'" for s in reading.slogans] + [c for c in (reading.price, reading.cta) if c]
    if copy:
        parts.append("copy: " + ", ".join(copy))
    if reading.claims:
        parts.append("claims: " + ", ".join(reading.claims))
    return ", ".join(parts) or None


def _shown(name: str, value: Any) -> str:
    if name == "duration":
        return f"{float(value):g} s"
    return str(value).replace(",", " + ")


def settings_from_args(
    args: argparse.Namespace, run_dir: str, reading: BriefReading | None = None, **fixed: Any
) -> tuple[RunSettings, str | None]:
    """RunSettings from parsed flags (any command whose flags came from `add_settings_arguments`).

    Returns the settings and, when a flag the user gave differs from what the brief asks for, one line that says
    so (the flag wins). `--platform a,b` and `--size WxH` set platform, platforms, width and height. `fixed` are
    values the command sets itself (run_dir-like, not flags). Raises SettingsError with the flags named.
    """
    given = {
        name: value
        for name in RunSettings.model_fields
        if name not in ("platform", "width", "height") and (value := getattr(args, name, None)) is not None
    }
    if "thresholds" in given:
        given["thresholds"] = dict(given["thresholds"])
    platform_flag, size = getattr(args, "platform", None), getattr(args, "size", None)
    if platform_flag is not None:
        given["platform"] = platform_flag
    asked = brief_settings(reading)
    conflicts = [
        (name, asked[name], given[name])
        for name in asked
        if name in given and _shown(name, asked[name]) != _shown(name, given[name])
    ]
    fields = {**{k: v for k, v in asked.items() if k not in given}, **given, **fixed, "run_dir": run_dir}
    if "platform" in fields or size:
        _frame(fields, size, explicit=platform_flag is not None or "platform" in asked)
    return _validated(fields), _conflict_line(conflicts)


def _frame(fields: dict, size: str | None, explicit: bool) -> None:
    """`--platform a,b` and `--size WxH` into platform, width and height (and platforms, when more than one
    platform is named or the platform was asked for at all)."""
    names = split_commas(fields.pop("platform", None) or "youtube")
    if not names:
        raise SettingsError("--platform is empty: give a preset such as tiktok, or a ratio such as 9:16")
    label, width, height = resolve_size(names[0], size)
    fields.update(platform=label, width=width, height=height)
    if len(names) > 1 or explicit:
        fields["platforms"] = [resolve_size(n, None)[0] for n in names]


def _validated(fields: dict) -> RunSettings:
    """RunSettings, or SettingsError naming each bad flag."""
    from pydantic import ValidationError

    try:
        return RunSettings(**fields)
    except ValidationError as err:
        problems = "; ".join(
            (
                f"{_flag_name(str(e['loc'][0]))}: "
                if e["loc"] and e["loc"][0] in RunSettings.model_fields
                else ""
            )
            + e["msg"].removeprefix("Value error, ")
            for e in err.errors()
        )
        raise SettingsError(problems) from None


def _conflict_line(conflicts: list[tuple[str, Any, Any]]) -> str | None:
    """One line saying what the brief asked for and which flag won, or None."""
    if not conflicts:
        return None
    return (
        "the brief asks for "
        + " and ".join(_shown(n, a) for n, a, _ in conflicts)
        + "; "
        + " and ".join(
            f"{_flag_name(n)} {g:g}" if isinstance(g, float) else f"{_flag_name(n)} {g}"
            for n, _, g in conflicts
        )
        + (" wins" if len(conflicts) == 1 else " win")
    )
