"""Tool: generate image. Renders one take of a shot as a still.

Backends (chosen by `RunSettings.image_backend`, never by the graph):
- `draft`: the offline default; draws a legible storyboard panel (no weights, no network).
- `diffusers`: text-to-image through a diffusers pipeline loaded by id or local folder (see tools/models.py).
- `remote`: an OpenAI-compatible `/v1/images/generations` server (SGLang Diffusion, vLLM-Omni, OpenAI).

Input is an `ImageRequest`, output an `ImageResult`. A backend that fails for reasons of content or service
(refusal, timeout, bad answer) raises `BackendError`; the graph records it on the take and re-shoots.
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from pathlib import Path

from pydantic import BaseModel, Field

from tools.film import Provenance, Shot


class BackendError(RuntimeError):
    """The backend could not produce this take (server error, refusal, timeout, out of memory after retry)."""


class ImageRequest(BaseModel):
    """One still to render. Argument names follow diffusers."""

    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    seed: int
    num_inference_steps: int | None = Field(default=None, description="None: the model's default.")
    guidance_scale: float | None = Field(default=None, description="None: the model's default.")
    output_path: str = Field(description="Absolute path of the PNG to write.")
    shot: Shot | None = Field(default=None, description="The shot, for backends that draw from its fields.")
    take: int = 1
    init_image: str | None = Field(
        default=None, description="Image to edit (img2img / inpaint), absolute path."
    )
    mask_region: tuple[int, int, int, int] | None = Field(default=None, description="Box to inpaint.")
    mask_image: str | None = Field(
        default=None,
        description="Mask PNG to inpaint, any shape (white: paint), absolute path; over mask_region.",
    )
    outpaint: bool = Field(
        default=False,
        description="Extend init_image to width x height (another aspect ratio): paint new borders.",
    )
    reference_images: list[str] = Field(default_factory=list, description="Reference images for consistency.")
    strength: float | None = None


class ImageResult(Provenance):
    path: str
    seed: int


class ImageBackend(ABC):
    """Base of image backends: `name` and `model` go into the manifest; `generate` renders one request."""

    name: str = "base"
    model: str = ""

    @abstractmethod
    def generate(self, req: ImageRequest) -> ImageResult:
        """Make one result from the request; raise BackendError when the service cannot."""


# --- draft: the offline storyboard panel ---------------------------------------------------------------------


class DraftBackend(ImageBackend):
    """The offline default: an animatic frame drawn from the shot, no weights and no network.

    The frame (tools/draft_panel.py) shows the scene's look (interior or exterior, time of day, weather), the
    subject at the shot's framing (the reference photo cut out, else a silhouette of its kind) and any text the
    shot asks for on the image. `annotate=True` adds the shot's number, kind and caption block, as the
    storyboard sheet shows it; film frames leave them off. The seed moves the details, so two takes differ.
    """

    name = "draft"
    model = "draft-panel-v1"

    def __init__(self, annotate: bool = False):
        self.annotate = annotate

    def generate(self, req: ImageRequest) -> ImageResult:
        from tools.draft_panel import annotate_panel, render_panel
        from tools.files import write_atomic

        t0 = time.perf_counter()
        if req.width < 8 or req.height < 8:
            raise ValueError(
                f"panel size {req.width}x{req.height} is too small; each side must be at least 8 px"
            )
        if req.outpaint:
            return self._extend(req, t0)
        img, drawn = render_panel(
            width=req.width,
            height=req.height,
            seed=req.seed,
            prompt=req.prompt,
            shot=req.shot,
            reference_images=req.reference_images,
        )
        if self.annotate:
            img = annotate_panel(img, req.shot, req.take, req.prompt)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=3)
        t1 = time.perf_counter()
        write_atomic(Path(req.output_path), buf.getvalue())
        return ImageResult(
            path=req.output_path,
            backend=self.name,
            model=self.model,
            seed=req.seed,
            parameters={"width": req.width, "height": req.height, **drawn, "take": req.take},
            timings={"render_s": round(t1 - t0, 4), "write_s": round(time.perf_counter() - t1, 4)},
        )

    def _extend(self, req: ImageRequest, t0: float) -> ImageResult:
        """Draft outpaint: the take centred in the new frame over a blurred stretch of itself (no model)."""
        from tools.edit_image import outpaint_canvas
        from tools.files import write_atomic
        from tools.images import open_image

        canvas, _, box = outpaint_canvas(open_image(req.init_image), req.width, req.height)
        buf = io.BytesIO()
        canvas.save(buf, format="PNG", compress_level=3)
        write_atomic(Path(req.output_path), buf.getvalue())
        return ImageResult(
            path=req.output_path,
            backend=self.name,
            model=self.model,
            seed=req.seed,
            parameters={"mode": "outpaint", "fill": "blurred-stretch", "kept_box": list(box)},
            timings={"render_s": round(time.perf_counter() - t0, 4)},
        )


class DiffusersImageBackend(ImageBackend):
    """Text-to-image (and edits, through tools/edit_image.py) with a diffusers pipeline by id or local folder.

    The model runs at the request's size rounded up to its multiple (tools/models.py's table); the image is then
    centre-cropped back to exactly the requested size, so the critic sees the size it asked for. Text-to-image
    goes through the manager's render queue, which batches the requests of parallel shots that share a size and
    steps; the timings say what the take cost apart from its wait (`queue_wait_s`, `gpu_s`, `run_s`, `save_s`,
    and `wall_s` for all of it).
    """

    name = "diffusers"

    def __init__(self, model: str, manager=None, num_inference_steps: int | None = None):
        from tools.models import ModelManager

        self.model = model
        self.manager = manager or ModelManager()
        self.num_inference_steps = num_inference_steps

    def preload(self):
        """Start loading the model on a thread (ModelManager.preload): a new run calls this before it plans, so
        the weights are read while the process imports and plans rather than after. Returns the thread."""
        return self.manager.preload(self.model)

    def generate(self, req: ImageRequest) -> ImageResult:
        from tools.models import OutOfMemory

        start = time.perf_counter()
        steps = req.num_inference_steps or self.num_inference_steps
        try:
            if req.init_image or req.reference_images:
                image, params, cost = self._edit(req, steps)
            else:
                image, params, cost = self._text_to_image(req, steps)
        except OutOfMemory as e:
            raise BackendError(str(e)) from e
        saving = time.perf_counter()
        Path(req.output_path).parent.mkdir(parents=True, exist_ok=True)
        image.save(req.output_path)
        end = time.perf_counter()
        timings = {**(cost.timings() if cost else {}), "save_s": round(end - saving, 4)}
        return ImageResult(
            path=req.output_path,
            backend=self.name,
            model=self.model,
            seed=req.seed,
            parameters=params,
            timings={**timings, "wall_s": round(end - start, 3)},
        )

    def _text_to_image(self, req: ImageRequest, steps: int | None):
        from tools.models import call_kwargs, fit_to, round_size

        spec = self.manager.spec(self.model)
        gw, gh = round_size(req.width, req.height, spec.size_multiple)
        kw = call_kwargs(spec, req.prompt, req.negative_prompt, steps, req.guidance_scale)
        prompt, negative = kw.pop("prompt"), kw.pop("negative_prompt", None)
        done = self.manager.queue.render(
            self.model, prompt, req.seed, negative_prompt=negative, height=gh, width=gw, **kw
        )
        params = {**kw, **({"negative_prompt": negative} if negative is not None else {})}
        params.update(mode="t2i", generated_size=[gw, gh], pipeline=spec.pipelines["t2i"])
        return fit_to(done.image, req.width, req.height), params, done.cost

    def _edit(self, req: ImageRequest, steps: int | None):
        from tools.edit_image import EditRequest, run_edit

        mode = (
            "reference"
            if req.reference_images and not req.init_image
            else (
                "outpaint" if req.outpaint else "inpaint" if req.mask_region or req.mask_image else "img2img"
            )
        )
        edit = EditRequest(
            mode=mode,
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            image=req.init_image,
            mask_region=req.mask_region,
            mask_image=req.mask_image,
            reference_images=req.reference_images,
            width=req.width,
            height=req.height,
            seed=req.seed,
            strength=req.strength,
            num_inference_steps=steps,
            guidance_scale=req.guidance_scale,
            output_path=req.output_path,
        )
        image, params = run_edit(self.manager, self.model, edit)
        return image, params, self.manager.last_cost()


class RemoteImageBackend(ImageBackend):
    """An OpenAI-compatible image server: `/v1/images/generations`, and `/v1/images/edits` for edits.

    SGLang Diffusion, vLLM-Omni and OpenAI speak this API. Answers come as `b64_json`. Each request has a total
    deadline of `timeout` seconds (connect, first byte and the whole body, through tools/deadline.py), so a
    server that drips its answer is cut off there. A refused connection, HTTP 5xx or 429 is asked again, at
    most `max_retries` times and within `timeout * (max_retries + 1)` seconds in all; a timeout is not (the
    server is still busy with the abandoned image). Every failure is a one-line `BackendError` naming the
    server and what it did. The answer is decoded through tools/images.py (pixel limit) after a body limit.
    """

    name = "remote"
    max_body_bytes = 64 * 2**20  # base64 of a PNG far larger than any take; past it the answer is refused

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ):
        import openai

        from tools.deadline import deadline_transport

        self.model = model or "default"
        self.base_url = base_url
        self.timeout = timeout
        self.retries = max_retries
        # Retries are ours (bounded in count and total time); the client's would restart the deadline each time.
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=deadline_transport()),
        )

    def generate(self, req: ImageRequest) -> ImageResult:
        from tools.files import write_atomic
        from tools.models import fit_to

        start = time.perf_counter()
        size = f"{req.width}x{req.height}"
        # Servers read the diffusers-style extras they know (SGLang Diffusion: seed, steps, guidance).
        extra = {"seed": req.seed}
        if req.negative_prompt:
            extra["negative_prompt"] = req.negative_prompt
        if req.num_inference_steps:
            extra["num_inference_steps"] = req.num_inference_steps
        if req.guidance_scale is not None:
            extra["guidance_scale"] = req.guidance_scale
        edit_source = req.init_image or (req.reference_images[0] if req.reference_images else None)
        keep = None  # outpaint: (original scaled, box) put back over the middle of the answer
        ask = {"model": self.model, "prompt": req.prompt, "size": size, "n": 1, "response_format": "b64_json"}
        if edit_source and req.outpaint:
            canvas, mask, keep = _outpaint_upload(edit_source, req.width, req.height)
            call = self.client.images.with_streaming_response.edit
            ask.update(image=("canvas.png", canvas, "image/png"), mask=("mask.png", mask, "image/png"))
        elif edit_source:
            call = self.client.images.with_streaming_response.edit
            ask["image"] = ("take.png", Path(edit_source).read_bytes(), "image/png")
            if req.mask_region or req.mask_image:
                mask = _alpha_mask(edit_source, req.mask_region, req.mask_image)
                ask["mask"] = ("mask.png", mask, "image/png")
        else:
            call = self.client.images.with_streaming_response.generate
        body, calls = self._ask(call, {**ask, "extra_body": extra})
        image = self._decode(body)
        image = fit_to(image, req.width, req.height)
        if keep is not None:
            image.paste(keep[0], keep[1][:2])
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        write_atomic(Path(req.output_path), buf.getvalue())  # a kill mid-write leaves no half a take
        params = {
            "size": size,
            **extra,
            "endpoint": "edits" if edit_source else "generations",
            "server": self.base_url,
        }
        if keep is not None:
            params.update(mode="outpaint", kept_box=list(keep[1]))
        return ImageResult(
            path=req.output_path,
            backend=self.name,
            model=self.model,
            seed=req.seed,
            parameters=params,
            timings={"wall_s": round(time.perf_counter() - start, 3), "remote_calls": calls},
        )

    def _fail(self, what: str) -> BackendError:
        return BackendError(f"image server {self.base_url} {what}")

    def _ask(self, call, ask: dict) -> tuple[bytes, int]:
        """The answer's body and the requests it took, within the retries and the total time; every failure a
        BackendError."""
        answers = self.retries + 1
        until = time.monotonic() + self.timeout * answers
        last = ""
        for n in range(1, answers + 1):
            left = until - time.monotonic()
            if left < 0.05:
                break
            try:
                return self._once(call, ask, min(self.timeout, left)), n
            except _Retry as retry:
                last = str(retry)
            if n < answers:
                time.sleep(min(0.5 * 2.0 ** (n - 1), max(0.0, until - time.monotonic() - 0.5)))
        tries = f"{n} {'try' if n == 1 else 'tries'}"
        raise self._fail(f"{last}; gave up after {tries} (--image-server-retries {self.retries})")

    def _once(self, call, ask: dict, seconds: float) -> bytes:
        import httpx2
        import openai

        from tools.deadline import deadline

        resp = None
        try:
            with deadline(seconds), call(**ask) as resp:
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise self._fail(
                            f"sent an answer larger than {self.max_body_bytes // 2**20} MB; "
                            "ask for a smaller --size"
                        )
                return bytes(body)
        except (openai.APITimeoutError, httpx2.TimeoutException):  # the body is read outside the client
            raise self._fail(
                f"timed out after {seconds:.3g} s total (connect, first byte and whole answer); "
                "raise --image-server-timeout"
            ) from None
        except openai.APIStatusError as e:
            said = e.body.get("message") if isinstance(e.body, dict) else None  # the server's own words
            message = " ".join(str(said or e.message).split())[:300]
            if e.status_code >= 500 or e.status_code == 429:
                raise _Retry(f"failed (HTTP {e.status_code}: {message})") from None
            kind = "refused the prompt" if e.status_code in (400, 403, 422) else "failed"
            raise self._fail(f"{kind} (HTTP {e.status_code}): {message}") from None
        except openai.APIConnectionError as e:
            cause = " ".join(str(e.__cause__ or e).split())[:200]
            raise _Retry(f"could not be reached ({cause})") from None
        except httpx2.TransportError as e:
            raise _Retry(f"broke off its answer ({' '.join(str(e).split())[:200]})") from None
        except httpx2.DecodingError as e:
            # e.g. an HTML page (a proxy's, a login wall's) whose headers claim a gzip it does not have
            encoding = resp.headers.get("content-encoding", "?") if resp is not None else "?"
            raise self._fail(
                f"sent a body that does not decode as its content-encoding {encoding!r} says "
                f"({' '.join(str(e).split())[:120]})"
            ) from None
        except (httpx2.HTTPError, openai.APIError) as e:
            # Anything else the HTTP layer refuses is this take's failure, not the run's.
            said = " ".join(str(e).split())[:200]
            raise self._fail(f"answered in a way the client refused ({type(e).__name__}: {said})") from None

    def _decode(self, body: bytes):
        import base64
        import binascii
        import json

        from tools.images import ImageError, ImageTooLarge, open_image

        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: arrays nested past the parser's depth
            shown = body[:60].decode("utf-8", "replace").encode("unicode_escape").decode()
            raise self._fail(f"answered with a body that is not JSON (starts {shown!r})") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        b64 = (
            data[0].get("b64_json") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        )
        if not b64 or not isinstance(b64, str):
            raise self._fail("answered without an image (no data[0].b64_json)")
        try:
            return open_image(base64.b64decode(b64, validate=True))
        except ImageTooLarge as e:
            raise self._fail(f"sent an image too large: {e}") from None
        except (ImageError, binascii.Error) as e:
            raise self._fail(f"sent data that is not an image: {e}") from None


class _Retry(Exception):
    """A failure that asking again may mend (connection refused or reset, HTTP 5xx or 429)."""


def _alpha_mask(
    image_path: str, box: tuple[int, int, int, int] | None, mask_image: str | None = None
) -> bytes:
    """OpenAI-style edit mask: a PNG the size of the image, transparent where the image may change."""
    from PIL import Image, ImageDraw

    from tools.images import open_image

    size = open_image(image_path).size
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    if mask_image:
        paint = open_image(mask_image).convert("L").resize(size, Image.Resampling.NEAREST)
        mask.putalpha(paint.point(lambda v: 0 if v > 127 else 255))
    else:
        ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(0, 0, 0, 0))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    return buf.getvalue()


def _outpaint_upload(path: str, width: int, height: int):
    """(canvas PNG, OpenAI-style mask PNG: transparent on the new borders, (original scaled, box))."""
    from PIL import Image

    from tools.edit_image import outpaint_canvas
    from tools.images import open_image

    original = open_image(path)
    canvas, mask, box = outpaint_canvas(original, width, height)
    alpha = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    alpha.putalpha(mask.point(lambda v: 255 - v))  # OpenAI edits paint where the mask is transparent
    image_buf, mask_buf = io.BytesIO(), io.BytesIO()
    canvas.save(image_buf, format="PNG")
    alpha.save(mask_buf, format="PNG")
    keep = original.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    return image_buf.getvalue(), mask_buf.getvalue(), (keep, box)


def reference_mode(backend: ImageBackend) -> str:
    """One plain line: how this backend uses --reference images and the --anchor take."""
    if isinstance(backend, DiffusersImageBackend):
        from tools.edit_image import DEFAULT_STRENGTH

        spec = backend.manager.spec(backend.model)
        if "reference" in spec.pipelines:
            return f"{backend.model} is conditioned on them through {spec.pipelines['reference']}"
        return (
            f"{backend.model} has no reference pipeline: it starts img2img from the first reference at "
            f"strength {DEFAULT_STRENGTH['reference']} (for real reference conditioning use Z-Image Omni or "
            "Qwen-Image-Edit with --image-model)"
        )
    if isinstance(backend, RemoteImageBackend):
        return "the first reference goes to the server's /v1/images/edits with the shot's prompt"
    return "draft panels place the first reference in the frame, cut out, and take their colours from it"


def select_image_backend(settings, manager=None) -> tuple[ImageBackend, str]:
    """Pick the image backend for a run and say why, in one plain line.

    One branch per backend: an explicit choice is honoured or fails with what is missing; `auto` takes the best
    backend this machine can run (diffusers and remote plug in above the draft fallback). `manager` returns the
    run's ModelManager; it is called only when a diffusers backend is chosen (default: a new one from settings).
    """
    choice = settings.image_backend
    if choice == "draft":
        return DraftBackend(), "draft: asked for with --image-backend draft"
    from tools.denoiser_graph import cuda_graphs_unavailable
    from tools.errors import SettingsError
    from tools.models import DEFAULT_IMAGE_MODEL, ManagerConfig, ModelManager, ready_on_gpu
    from tools.speed import fp8_unavailable

    def diffusers(model: str) -> DiffusersImageBackend:
        # The run's ModelManager, sized by --gpu-memory, with --compile, --quantize and --lora applied.
        owner = manager() if manager else ModelManager.from_config(settings.config(ManagerConfig))
        return DiffusersImageBackend(model, owner, settings.num_inference_steps)

    def remote() -> RemoteImageBackend:
        return RemoteImageBackend(
            settings.image_server,
            settings.image_server_model,
            timeout=settings.image_server_timeout,
            max_retries=settings.image_server_retries,
        )

    if settings.quantize == "fp8":  # asked for explicitly: fail now, not at the first take
        problem = fp8_unavailable()
        if problem:
            raise SettingsError(problem)
    problem = settings.cuda_graphs and cuda_graphs_unavailable()
    if problem:
        raise SettingsError(problem)

    if choice == "diffusers":
        model = settings.image_model or DEFAULT_IMAGE_MODEL
        return diffusers(model), f"diffusers: {model} (asked for)"
    if choice == "remote":
        if not settings.image_server:
            raise SettingsError("--image-backend remote needs --image-server URL")
        return remote(), (
            f"remote: {settings.image_server} ({settings.image_server_model or 'server default model'})"
        )
    if choice != "auto":
        raise ValueError(f"unknown image backend {choice!r}; use auto, draft, diffusers or remote")
    if settings.image_model:
        return diffusers(settings.image_model), (f"diffusers: {settings.image_model} (--image-model)")
    if settings.image_server:
        return remote(), f"remote: {settings.image_server} (--image-server)"
    if ready_on_gpu(DEFAULT_IMAGE_MODEL):
        return diffusers(DEFAULT_IMAGE_MODEL), (
            f"diffusers: {DEFAULT_IMAGE_MODEL} (CUDA GPU and cached weights found)"
        )
    why = "no --image-model or --image-server, and no CUDA GPU with Z-Image-Turbo in the Hugging Face cache"
    return DraftBackend(), f"draft: {why}; drawing storyboard panels (offline, no weights)"
