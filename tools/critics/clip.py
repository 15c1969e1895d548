"""The CLIP critic (open_clip): how well a take matches its prompt, and how consistent it is with reference shots.

Runs only when the weights are on this machine: a run never downloads them. Without weights it is recorded as not
run, with the reason and what to do.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tools.critics.images import load_rgb
from tools.critics.inputs import CritiqueConfig, CritiqueRequest, Thresholds
from tools.film import CriticResult, Issue

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # where open_clip publishes the default's weights
_HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ClipUnavailable(RuntimeError):
    """CLIP weights are not on this machine (we never download them during a run); the message says what to do."""


def _resolve_clip(spec: str | None) -> tuple[str, str | None, str]:
    """Turn `CritiqueConfig.clip_model` into (open_clip model name, pretrained file or None, label for the manifest).

    Accepted: a local folder laid out like a Hugging Face open_clip repo (open_clip_config.json + weights),
    `NAME:/path/to/weights`, `NAME` or `NAME:TAG` of a published model, or `hf-hub:org/repo`; the last two only
    when the weights are already in the local Hugging Face cache.
    """
    spec = (spec or f"{DEFAULT_CLIP_MODEL}:{DEFAULT_CLIP_PRETRAINED}").strip()
    if spec.lower() in {"none", "off"}:
        raise ClipUnavailable(f"CLIP critic turned off (clip_model={spec})")
    if spec == f"{DEFAULT_CLIP_MODEL}:{DEFAULT_CLIP_PRETRAINED}":
        # Ask the cache before importing open_clip (and torch): an offline run must not pay ~10 s to learn "no".
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError as e:
            raise ClipUnavailable(f"open_clip is not installed ({e}): pip install -e '.[models]'") from e

        if not any(isinstance(try_to_load_from_cache(DEFAULT_CLIP_REPO, f), str) for f in _HUB_WEIGHT_FILES):
            raise ClipUnavailable(
                f"CLIP weights {DEFAULT_CLIP_REPO} are not in the local Hugging Face cache; download them once "
                f"(huggingface-cli download {DEFAULT_CLIP_REPO}) or set clip_model to a local folder"
            )
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache
    except ImportError as e:
        raise ClipUnavailable(f"open_clip is not installed ({e}): pip install -e '.[models]'") from e
    if Path(spec).is_dir():
        if not (Path(spec) / "open_clip_config.json").is_file():
            raise ClipUnavailable(f"CLIP folder {spec} has no open_clip_config.json")
        return f"local-dir:{Path(spec).resolve()}", None, spec
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:") :].strip("/")
        name, tag = spec, None
    else:
        name, _, tag = spec.partition(":")
        if name not in open_clip.list_models():
            raise ClipUnavailable(f"unknown CLIP model {name!r} and no such folder")
        if tag and Path(tag).is_file():
            return name, tag, spec
        tags = open_clip.list_pretrained_tags_by_model(name)
        tag = tag or (
            DEFAULT_CLIP_PRETRAINED if DEFAULT_CLIP_PRETRAINED in tags else (tags[0] if tags else "")
        )
        repo = (open_clip.get_pretrained_cfg(name, tag).get("hf_hub") or "").strip("/")
        if not repo:
            raise ClipUnavailable(f"no published weights for CLIP {name}:{tag}; give a local folder")
    for filename in _HUB_WEIGHT_FILES:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            if name.startswith("hf-hub:"):
                return f"local-dir:{Path(cached).parent}", None, spec
            return name, cached, f"{name}:{tag}"
    raise ClipUnavailable(
        f"CLIP weights {repo} are not in the local Hugging Face cache; download them once "
        f"(huggingface-cli download {repo}) or set clip_model to a local folder"
    )


_clip_cache: dict[str, tuple] = {}
_clip_lock = threading.Lock()


def load_clip(spec: str | None):
    """(model, preprocess, tokenizer, label), loaded once per process. Raises ClipUnavailable without weights."""
    with _clip_lock:
        key = spec or ""
        if key not in _clip_cache:
            name, pretrained, label = _resolve_clip(spec)
            import open_clip

            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, require_pretrained=True
            )
            model.eval()
            _clip_cache[key] = (model, preprocess, open_clip.get_tokenizer(name), label)
        return _clip_cache[key]


def _image_features(paths: list[str], model, preprocess, batch_size: int):
    import torch

    feats = []
    for i in range(0, len(paths), batch_size):
        batch = torch.stack([preprocess(load_rgb(p)) for p in paths[i : i + batch_size]])
        with torch.no_grad():
            feats.append(torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1))
    return torch.cat(feats)


def clip_alignment(
    image_paths: list[str], prompts: list[str], config: CritiqueConfig, batch_size: int = 16
) -> list[float]:
    """Cosine similarity of each image with its prompt (batched). Raises ClipUnavailable without weights."""
    import torch

    if len(image_paths) != len(prompts):
        raise ValueError(f"{len(image_paths)} images but {len(prompts)} prompts")
    model, preprocess, tokenizer, _ = load_clip(config.clip_model)
    images = _image_features(image_paths, model, preprocess, batch_size)
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)).float(), dim=-1)
    return [float(v) for v in (images * text).sum(-1)]


def clip_consistency(
    image_paths: list[str], reference_paths: list[str], config: CritiqueConfig, batch_size: int = 16
) -> list[float]:
    """Mean cosine similarity of each image with the reference images (batched)."""
    model, preprocess, _, _ = load_clip(config.clip_model)
    images = _image_features(image_paths, model, preprocess, batch_size)
    refs = _image_features(reference_paths, model, preprocess, batch_size)
    return [float(v) for v in (images @ refs.T).mean(-1)]


def clip_critic(req: CritiqueRequest, config: CritiqueConfig, th: Thresholds) -> CriticResult:
    """Prompt alignment and, when reference shots are given, consistency with them."""
    try:
        _, _, _, label = load_clip(config.clip_model)
    except ClipUnavailable as e:
        return CriticResult(name="clip", ran=False, not_run_reason=str(e))
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        return CriticResult(
            name="clip", ran=False, not_run_reason=f"CLIP could not load: {type(e).__name__}: {e}"
        )
    scores = {"clip.alignment": clip_alignment([req.image_path], [req.prompt], config)[0]}
    refs = [r for r in req.reference_images if Path(r).resolve() != Path(req.image_path).resolve()]
    if refs:
        scores["clip.consistency"] = clip_consistency([req.image_path], refs, config)[0]
    issues, review = [], []
    a = scores["clip.alignment"]
    if a < th.clip_alignment_fail:
        issues.append(
            Issue(
                category="subject",
                reason=f"image does not match the prompt (CLIP {a:.3f}, {label})",
                critic="clip",
            )
        )
    elif a < th.clip_alignment_review:
        review.append(
            Issue(category="subject", reason=f"weak match with the prompt (CLIP {a:.3f})", critic="clip")
        )
    if "clip.consistency" in scores:
        c = scores["clip.consistency"]
        if c < th.clip_consistency_fail:
            issues.append(
                Issue(
                    category="style",
                    reason=f"inconsistent with the other shots (CLIP {c:.3f})",
                    critic="clip",
                )
            )
        elif c < th.clip_consistency_review:
            review.append(
                Issue(category="style", reason=f"drifting from the other shots (CLIP {c:.3f})", critic="clip")
            )
    return CriticResult(name="clip", ran=True, passed=not issues, scores=scores, issues=issues + review)
