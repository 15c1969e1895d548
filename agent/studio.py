"""The web studio at `/` and the API's own documentation, every file served by this process (no CDN).

The studio is plain HTML, CSS and JavaScript in agent/static/ calling the /v1 API. A browser cannot put a
Bearer header on an EventSource or a <video>, so `POST /v1/session` with a valid key sets the `cd_key` cookie
(HttpOnly, SameSite=Strict); without a key `/` answers 401 with only the sign-in form.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from agent.auth import COOKIE, caller

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js", "app.css", "i18n.js"}
DOCS_ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}

router = APIRouter()


class Session(BaseModel):
    key: str = Field(min_length=1, max_length=512)


def _signed_in(request: Request) -> bool:
    try:
        caller(request)
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


@router.get("/studio/{name}", include_in_schema=False, dependencies=[Depends(caller)])
def studio_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(STATIC / name)


@router.get("/studio/cjk.otf", include_in_schema=False, dependencies=[Depends(caller)])
def studio_font() -> Response:
    """The bundled CJK face cut to the studio's own Chinese words: a browser without CJK fonts still reads them."""
    return Response(_cjk_subset(), media_type="font/otf", headers={"Cache-Control": "max-age=86400"})


@functools.cache
def _cjk_subset() -> bytes:
    from tools.fonts import font_subset

    text = "".join((STATIC / n).read_text(encoding="utf-8") for n in ("i18n.js", "index.html"))
    return font_subset("".join(ch for ch in text if ord(ch) > 0x2E7F))


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
        swagger_favicon_url="/docs-assets/favicon-32x32.png",
    )


@router.get("/docs-assets/{name}", include_in_schema=False, dependencies=[Depends(caller)])
def docs_asset(name: str) -> FileResponse:
    import swagger_ui_bundle

    if name not in DOCS_ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(Path(swagger_ui_bundle.swagger_ui_path) / name)
