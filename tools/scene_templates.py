"""Scene prompts for the catalogue: one template file per category and scene, prompts/catalogue/<category>/<scene>.j2.

    scenes_for("electronics")                      -> ["flat_lay", "lifestyle", "studio"]
    scene_prompt(product, "studio")                -> "Studio product photograph of ..."

A user's own folder (`templates_dir`, laid out the same way) is searched first, so a team can add a category or
reword a scene without touching the program. A scene is looked up in the product's category, then in default/,
then default/_any.j2 names the scene in a generic prompt; an unknown category gets the default scenes. Templates
render with a strict undefined in a sandbox: a user's template can read the product's fields and nothing else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from tools.errors import SettingsError
from tools.products import SCENE_NAME, Product

CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "prompts" / "catalogue"

# The scenes a category's main image is made in, in order of preference: the product alone, as marketplaces
# want their first image. A category with none of them has its first scene (sorted) as the main one.
MAIN_SCENES = ("studio", "product_only", "minimal")

__all__ = ["CATALOGUE_DIR", "MAIN_SCENES", "main_first", "scene_prompt", "scenes_for"]


def _folders(templates_dir: str | Path | None) -> list[Path]:
    if templates_dir is None:
        return [CATALOGUE_DIR]
    user = Path(templates_dir)
    if not user.is_dir():
        raise SettingsError(
            f"templates folder {user} not found (give a folder of <category>/<scene>.j2 files)"
        )
    return [user, CATALOGUE_DIR]


@cache
def _environment(folders: tuple[Path, ...]) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def scenes_for(category: str, templates_dir: str | Path | None = None) -> list[str]:
    """The scenes a category has templates for (user folder and built-in), sorted; else the default ones."""
    for folder_name in (category, "default"):
        names = {
            p.stem
            for folder in _folders(templates_dir)
            if (folder / folder_name).is_dir()
            for p in (folder / folder_name).glob("*.j2")
            if not p.stem.startswith("_") and SCENE_NAME.match(p.stem)
        }
        if names:
            return sorted(names)
    return []


def main_first(scenes: list[str]) -> list[str]:
    """`scenes` with the one a main image is made in (MAIN_SCENES, in order) moved to the front."""
    main = next((m for m in MAIN_SCENES if m in scenes), None)
    return [main, *(s for s in scenes if s != main)] if main else list(scenes)


def _template_name(category: str, scene: str, folders: list[Path]) -> str:
    for name in (f"{category}/{scene}.j2", f"default/{scene}.j2"):
        if any((f / name).is_file() for f in folders):
            return name
    return "default/_any.j2"


def scene_prompt(
    product: Product,
    scene: str,
    templates_dir: str | Path | None = None,
    white: bool = False,
    shadow: bool = True,
) -> str:
    """The image prompt for `product` in `scene`, one line; `white` gives the pure-white main image's prompt.

    A user's template that fails (syntax, a variable that does not exist) raises SettingsError naming the file.
    """
    if not SCENE_NAME.match(scene):
        raise SettingsError(f"scene {scene!r} is not a name (lower-case letters, digits, _ or -)")
    folders = _folders(templates_dir)
    name = "white.j2" if white else _template_name(product.category, scene, folders)
    env = _environment(tuple(folders))
    try:
        text = env.get_template(name).render(product=product, scene=scene, shadow=shadow)
    except jinja2.TemplateError as e:
        where = getattr(e, "filename", None) or name
        raise SettingsError(f"scene template {where}: {type(e).__name__}: {e}") from None
    return " ".join(text.split())
