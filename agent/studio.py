"""The web studio at `/` and the API's own documentation, every file served by this process (no CDN).

The studio is plain HTML, CSS and JavaScript in agent/static/ calling the /v1 API. A browser cannot put a
Bearer header on an EventSource or a <video>, so `POST /v1/session` with a valid key sets the `cd_key` cookie
(HttpOnly, SameSite=Strict); without a key `/` answers 401 with only the sign-in form.
"""

from __future__ import annotations

import asyncio
import functools
import io
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from agent.auth import COOKIE, caller, identify
from tools.fonts import is_cjk

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js", "app.css", "i18n.js"}
# Swagger UI 5 as fastapi-offline ships it: the 4.x of swagger-ui-bundle cannot read FastAPI's OpenAPI 3.1 and
# showed "Unable to render this definition" instead of the API.
DOCS_ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}

router = APIRouter()


class Session(BaseModel):
    key: str = Field(min_length=1, max_length=512)


def _signed_in(request: Request) -> bool:
    try:
        identify(request)
    except HTTPException as err:
        if err.status_code == 429:
            raise
        return False
    return True


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def studio(request: Request) -> Response:
    if not _signed_in(request):
        return FileResponse(STATIC / "login.html", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


# The font routes come before /studio/{name}: Starlette takes the first route that matches, and the old order
# answered the font with 404, so the Chinese interface drew empty boxes in a browser without CJK fonts.
@router.get("/studio/cjk-ui.woff", include_in_schema=False, dependencies=[Depends(caller)])
def studio_font() -> Response:
    """The project's CJK face (tools/fonts.py) cut to the studio's own Chinese words, as WOFF: a browser
    without CJK fonts still reads the interface. A few kilobytes, made in under a second, kept in memory."""
    return Response(ui_font(), media_type="font/woff", headers={"Cache-Control": "max-age=86400"})


@router.get("/studio/cjk-text.woff", include_in_schema=False, dependencies=[Depends(caller)])
async def studio_text_font(request: Request) -> Response:
    """The same face cut to the 3,755 common characters (GB 2312 level 1), for Chinese briefs and storyboards.
    About a megabyte; made once (about a minute on a loaded 2-core machine) into the state folder and served
    from there. The browser fetches it only for a character the interface subset lacks (unicode-range)."""
    path = await asyncio.to_thread(text_font, request.app.state.service.state_dir / "fonts")
    return FileResponse(path, media_type="font/woff", headers={"Cache-Control": "max-age=86400"})


@router.get("/studio/{name}", include_in_schema=False, dependencies=[Depends(caller)])
def studio_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(STATIC / name)


def studio_chinese() -> str:
    """Every CJK character the studio's own files show (its strings in i18n.js, the pages, the script)."""
    text = "".join(
        (STATIC / n).read_text(encoding="utf-8") for n in ("i18n.js", "index.html", "login.html", "app.js")
    )
    return "".join(sorted({ch for ch in text if is_cjk(ch)}))


def _woff(otf: bytes) -> bytes:
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(otf))
    font.flavor = "woff"  # zlib: fontTools writes it with no extra package (WOFF2 would need brotli)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@functools.cache
def ui_font() -> bytes:
    from tools.fonts import font_subset

    return _woff(font_subset(studio_chinese()))


_TEXT_FONT_LOCK = threading.Lock()


def common_chinese() -> str:
    """GB 2312 level 1: the 3,755 most used Simplified Chinese characters, with CJK punctuation."""
    chars = [
        bytes([hi, lo]).decode("gb2312")
        for hi in range(0xB0, 0xD8)
        for lo in range(0xA1, 0xFF)
        if (hi, lo) < (0xD7, 0xFA)
    ]
    return "".join(chars) + "，。、；：？！「」『』《》（）【】—…“”‘’·"


def text_font(folder: Path) -> Path:
    from tools.fonts import font_subset

    path = folder / "cjk-text.woff"
    with _TEXT_FONT_LOCK:  # one maker; a second request waits for the first's file
        if not path.exists():
            from tools.files import write_atomic

            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, _woff(font_subset(common_chinese() + studio_chinese())))
    return path


@router.post("/v1/session", status_code=204, tags=["studio"])
def sign_in(body: Session, request: Request) -> Response:
    """Check a key and keep it in an HttpOnly cookie for the studio's page, stream and player."""
    if request.app.state.keys.enabled and request.app.state.keys.owner(body.key) is None:
        raise HTTPException(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"})
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE, body.key, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(caller)])
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, dependencies=[Depends(caller)])
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="creative-director API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon.png",
    )


@router.get("/docs-assets/{name}", include_in_schema=False, dependencies=[Depends(caller)])
def docs_asset(name: str) -> FileResponse:
    import fastapi_offline

    if name not in DOCS_ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(Path(fastapi_offline.__file__).parent / "static" / name)
