"""The steps of one catalogue unit: what the product is (`Subject`), one take, its critique, each platform's image.

With a product photo on a plain background the product is never generated: it is cut out (tools/cutout.py) and
either placed on pure white (a marketplace's main image) or placed into a generated scene with a contact shadow
(tools/composite.py), and the fidelity critic checks the product's pixels survived. A photo that is not on a
plain background is used as a reference image instead, and a missing or corrupt photo means the product is
generated from its fields; each fallback is said in the record's notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.critique import CritiqueRequest, critique_image, grade, thresholds_for
from tools.files import write_png
from tools.film import CriticResult, Critique, Issue, Shot, Take
from tools.generate_image import BackendError, ImageRequest
from tools.images import ImageError, open_image
from tools.platforms import Platform, load_platforms
from tools.scene_templates import scene_prompt

if TYPE_CHECKING:
    from agent.backends import Backends
    from agent.catalogue_unit import Unit, UnitContext

SCENE_FILL = 0.55  # share of the frame a product placed into a scene spans: room left for the scene
ANCHOR = "bottom"  # a product stands on the scene's ground, where its contact shadow falls
WHITE_MARGIN = 0.03  # above the platform's minimum fill, so a rounding of the cut-out never falls short
DRAFT_KIND = "establishing"  # a draft scene's framing: the horizon it draws sits behind the placed product


@dataclass
class Subject:
    """The product as this unit shows it: the prompt, the cut-out (or a reference photo), the brand."""

    prompt: str
    negative: str = "text, watermark, logo, blurry, deformed"
    cutout: Any = None
    reference: str | None = None
    brand: Any = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, unit: Unit, ctx: UnitContext) -> Subject:
        prompt = scene_prompt(
            unit.product, unit.scene, ctx.templates_dir, white=unit.white, shadow=unit.shadow
        )
        if unit.note:
            prompt = f"{prompt}. Reviewer's note: {unit.note}"
        subject = cls(prompt=prompt)
        if ctx.brand_path:
            from tools.brand import load_brand, palette_phrase

            subject.brand = load_brand(ctx.brand_path)
            if not unit.white:  # a scene takes the brand's colours; a main on white stays pure white
                subject.prompt = (
                    f"{prompt}, {palette_phrase(subject.brand.palette)} for the set and the props"
                )
        if unit.product.image:
            subject._photo(unit.product, ctx)
            if subject.cutout is not None and not unit.shadow:
                subject.cutout = subject.cutout.without_shadow()
        if not _has_category(unit.product.category, ctx.templates_dir):
            subject.notes.append(
                f"category {unit.product.category!r} has no scene templates; the default ones are used"
            )
        return subject

    def _photo(self, product, ctx: UnitContext) -> None:
        from tools.cutout import cut_out

        folder = Path(ctx.images_dir or ".").resolve()
        path = (folder / product.image).resolve()
        if not path.is_relative_to(folder):
            self.notes.append(
                f"photo {product.image!r} is outside the images folder; generated from its fields"
            )
            return
        try:
            photo = open_image(path)
        except FileNotFoundError:
            self.notes.append(f"photo {product.image} not found in {folder}; generated from its fields")
            return
        except (ImageError, OSError) as e:
            self.notes.append(f"photo {product.image} cannot be read ({e}); generated from its fields")
            return
        cut = cut_out(photo)
        if cut.plain_background:
            self.cutout = cut
        else:
            self.reference = str(path)
            self.notes.append(
                f"photo {product.image} is not on a plain background ({cut.reason}); "
                "the scene is generated with the photo as a reference"
            )

    def shot(self, unit: Unit) -> Shot:
        """The unit as the repair step sees a shot."""
        p = unit.product
        return Shot(
            id="s01",
            index=1,
            kind="hero",
            description=f"{p.name}, {unit.scene.replace('_', ' ')} product image",
            camera="product shot, eye level",
            lighting="even studio light" if unit.white else "natural light",
            mood="clean, commercial",
            duration=2.0,
            prompt=self.prompt,
            negative_prompt=self.negative,
        )


def _has_category(category: str, templates_dir: str | None) -> bool:
    from tools.scene_templates import CATALOGUE_DIR

    return any((Path(f) / category).is_dir() for f in (templates_dir, CATALOGUE_DIR) if f)


def _fill(unit: Unit) -> float:
    if not unit.white:
        return SCENE_FILL
    return min(0.98, max(p.min_fill for p in load_platforms(unit.platforms)) + WHITE_MARGIN)


def render_take(
    unit: Unit,
    subject: Subject,
    backends: Backends,
    path: Path,
    n: int,
    prompt: str,
    negative: str,
    seed: int,
    steps: int | None,
) -> Take:
    """Take `n` of the unit, written to `path`: composited around the cut-out, or rendered by the backend."""
    base = {
        "shot_id": "s01",
        "n": n,
        "path": str(path),
        "seed": seed,
        "prompt": prompt,
        "negative_prompt": negative,
    }
    if subject.cutout is not None and unit.white:
        return _white_composite(unit, subject, path, base)
    req = _request(unit, subject, backends, base, steps)
    try:
        result = backends.image.generate(req)
    except BackendError as e:
        return Take(**base, backend=backends.image.name, model=backends.image.model, error=str(e)[:500])
    take = Take(
        **base,
        backend=result.backend,
        model=result.model,
        parameters=result.parameters,
        timings=result.timings,
    )
    if subject.cutout is not None:
        _place_product(take, subject, path)
    elif unit.white:
        _whiten(take, unit, path)
    return take


def _white_composite(unit: Unit, subject: Subject, path: Path, base: dict) -> Take:
    """A main image on white from the photo: no model, the cut-out at the platforms' fill on exact 255."""
    from tools.composite import white_product_shot

    img, mask = white_product_shot(subject.cutout, (unit.width, unit.height), _fill(unit))
    write_png(path, img)
    write_png(path.with_suffix(".product.png"), mask)
    return Take(**base, backend="composite", model="white-product-shot", parameters={"fill": _fill(unit)})


def _request(unit: Unit, subject: Subject, backends: Backends, base: dict, steps: int | None) -> ImageRequest:
    """What the backend is asked for (`base`: the take's fields): the scene around the masked product, or the
    whole picture."""
    path, prompt, negative, seed = Path(base["path"]), base["prompt"], base["negative_prompt"], base["seed"]
    if subject.cutout is not None and backends.image.name != "draft":
        from tools.composite import background_request

        # The backend paints the scene around the product (its pixels masked); placing the cut-out on top
        # afterwards keeps them exact whatever the model did at the mask's edge.
        return background_request(
            subject.cutout,
            (unit.width, unit.height),
            prompt,
            output_path=path,
            seed=seed,
            fill=SCENE_FILL,
            anchor=ANCHOR,
            negative_prompt=negative,
            num_inference_steps=steps,
        )
    req = ImageRequest(
        prompt=prompt,
        negative_prompt=negative,
        width=unit.width,
        height=unit.height,
        seed=seed,
        num_inference_steps=steps,
        output_path=str(path),
        take=base["n"],
        reference_images=[subject.reference] if subject.reference else [],
    )
    if subject.cutout is not None:
        from tools.draft_panel import NO_SUBJECT

        # A draft panel does not inpaint: it draws the place alone, with no subject of its own, and the real
        # product is placed into it afterwards, so the picture shows one product in its scene.
        update = {"kind": DRAFT_KIND, "subject_kind": NO_SUBJECT, "prompt": prompt}
        req.shot = subject.shot(unit).model_copy(update=update)
    return req


def _place_product(take: Take, subject: Subject, path: Path) -> None:
    """The photo's own pixels over the rendered scene, its shadow under them; the scene kept for re-framing."""
    from tools.composite import place

    scene = open_image(path)
    write_png(path.with_suffix(".scene.png"), scene)  # each platform re-places the photo at its own size
    img, mask = place(scene, subject.cutout, SCENE_FILL, ANCHOR)
    write_png(path, img)
    write_png(path.with_suffix(".product.png"), mask)
    take.parameters = {**take.parameters, "composite": "cutout-placed", "fill": SCENE_FILL}


def _whiten(take: Take, unit: Unit, path: Path) -> None:
    """A generated main image on white: the product cut out of its own render and set on exact 255 at the
    platform's fill. A render whose background is not plain is left as it is, for the platform check to judge."""
    from tools.composite import white_product_shot
    from tools.cutout import cut_out

    cut = cut_out(open_image(path))
    if not cut.plain_background:
        return
    if not unit.shadow:
        cut = cut.without_shadow()
    img, _ = white_product_shot(cut, (unit.width, unit.height), _fill(unit))
    write_png(path, img)
    take.parameters = {**take.parameters, "composite": "render-on-white", "fill": _fill(unit)}


def critique_take(take: Take, unit: Unit, subject: Subject, ctx: UnitContext) -> Critique:
    """Every critic that can run on the take, plus fidelity (a placed product) and brand colour (a brand file)."""
    if take.error:
        issue = Issue(category="backend", reason=take.error, critic="technical")
        return grade([CriticResult(name="technical", ran=True, passed=False, issues=[issue])])
    req = CritiqueRequest(image_path=take.path, prompt=take.prompt, width=unit.width, height=unit.height)
    critique = critique_image(req, ctx.critique)
    extra = []
    if subject.cutout is not None:
        from tools.critics.fidelity import fidelity

        extra.append(fidelity(open_image(take.path), subject.cutout, _mask(take.path)))
    if subject.brand is not None:
        from tools.critics.brand_colour import brand_colour

        # The product's own colours are not the brand's to judge: only the scene around it is measured.
        placed = subject.cutout is not None and Path(take.path).with_suffix(".product.png").is_file()
        exclude = _mask(take.path) if placed else None
        extra.append(brand_colour(open_image(take.path), subject.brand.palette, exclude=exclude))
    if unit.white:
        strictest = max(load_platforms(unit.platforms), key=lambda p: p.min_fill)
        extra.append(platform_critic(open_image(take.path), strictest))
    return grade([*critique.critics, *extra])


def _mask(path: str):
    from PIL import Image

    with Image.open(Path(path).with_suffix(".product.png")) as m:
        return m.convert("L")


def _copy(unit: Unit, platform: Platform) -> bool:
    p = unit.product
    wanted = bool(p.price or p.promo or p.claims)
    return wanted and (platform.text_on_main or not unit.main)


def _platform_image(best: Take, subject: Subject, size: tuple[int, int]):
    """(image, product mask or None) at the platform's size. A composite is made again at that size from the
    photo itself (the scene resized, the product never), so the real product stays sharp on a 2000 px main
    image rendered at 1024; anything else is resized."""
    from PIL import Image

    from tools.composite import place, white_product_shot

    mode = best.parameters.get("composite")
    if subject.cutout is not None and best.backend == "composite":
        return white_product_shot(subject.cutout, size, best.parameters["fill"])
    if subject.cutout is not None and mode == "cutout-placed":
        scene = open_image(Path(best.path).with_suffix(".scene.png")).resize(size, Image.Resampling.LANCZOS)
        return place(scene, subject.cutout, best.parameters["fill"], ANCHOR)
    img = open_image(best.path)
    return (img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)), None


def finish_platform(best: Take, unit: Unit, subject: Subject, platform: Platform, ctx: UnitContext):
    """The platform's image from the kept take: resized, the copy laid out and read back. (Critique, rel path)."""

    rel = f"{platform.name}/{unit.slug}/{unit.scene}.png"
    if best.error:
        return best.critique, ""
    size = (platform.width, platform.height)
    img, mask = _platform_image(best, subject, size)
    critics = list(best.critique.critics)
    if mask is not None:
        from tools.critics.fidelity import fidelity

        critics = [c for c in critics if c.name != "fidelity"]
        critics.append(fidelity(img, subject.cutout, mask))
    if unit.white:
        critics = [c for c in critics if c.name != "platform"]
        critics.append(platform_critic(img, platform))
    if _copy(unit, platform):
        from tools.copy_layout import check_copy, lay_out

        p = unit.product
        img, texts, boxes = lay_out(
            img,
            price=p.price,
            promo=p.promo,
            claims=p.claims,
            brand=subject.brand,
            avoid=mask,
            with_boxes=True,
        )
        critics = [c for c in critics if c.name != "ocr"]
        critics.append(check_copy(img, texts, thresholds_for(ctx.critique), boxes=boxes))
    write_png(Path(ctx.out_dir) / rel, img)
    return grade(critics), rel


def platform_critic(img, platform: Platform) -> CriticResult:
    """A pure-white main image as the platform asks: the border at 255 and the product spanning `min_fill`.

    The border ring (2% of each side) must be white: at least 98% of its pixels at 250 or above in every channel.
    Fill is the non-white bounding box's longer side over the frame's (the usual reading of "fills 85%").
    """
    import numpy as np

    a = np.asarray(img.convert("RGB"))
    h, w = a.shape[:2]
    rw, rh = max(1, w // 50), max(1, h // 50)
    white = (a >= 250).all(axis=2)
    ring = np.concatenate(
        [white[:rh].ravel(), white[-rh:].ravel(), white[:, :rw].ravel(), white[:, -rw:].ravel()]
    )
    border = float(ring.mean())
    ys, xs = np.nonzero(~white)
    fill = max((xs.max() - xs.min() + 1) / w, (ys.max() - ys.min() + 1) / h) if len(xs) else 0.0
    scores = {
        f"{platform.name}.white_border": round(border, 4),
        f"{platform.name}.fill": round(float(fill), 4),
    }
    issues = []
    if border < 0.98:
        reason = (
            f"{platform.name} main image: background is not pure white ({border:.0%} of the border at 255)"
        )
        issues.append(Issue(category="composition", reason=reason, critic="platform"))
    if fill < platform.min_fill:
        reason = f"{platform.name} main image: the product spans {fill:.0%} of the frame, at least {platform.min_fill:.0%} asked"
        issues.append(Issue(category="composition", reason=reason, critic="platform"))
    return CriticResult(name="platform", ran=True, passed=not issues, scores=scores, issues=issues)
