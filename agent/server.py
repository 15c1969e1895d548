"""The director as a service: one long-lived process with warm models, a durable queue, the API and the studio.

    app = create_app(ServerConfig(state_dir="serve-state", keys=["..."]))   # uvicorn.run(app, ...)

`python main.py serve` builds the config from its flags. The app's parts: agent/api.py (the /v1 routes),
agent/studio.py (the web studio at / and the docs), agent/auth.py (keys and limits), agent/service.py (the
queue's web side and the worker processes), agent/worker.py (the jobs, with warm backends and the GPU lock),
agent/jobs.py (the SQLite queue both sides share). CORS stays off: no cross-origin page may call the API.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.auth import Keys, RateLimit
from agent.service import FilmService

MAX_BODY = 48 * 1024 * 1024  # four base64 reference images and a brief fit; nothing larger is read


class ServerConfig(BaseModel):
    state_dir: str = Field(
        description="Folder of the job queue (jobs.sqlite) and the films' run directories."
    )
    base: dict = Field(
        default_factory=dict, description="Model and endpoint settings every film renders with."
    )
    workers: int = Field(default=2, ge=0, le=64, description="Jobs run at once (0: queue only, for tests).")
    worker_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Processes the jobs run in, each with its own warm models (0: threads of the web process).",
    )
    keys: list[str] = Field(default_factory=list)
    no_auth: bool = False
    rate_limit: int = Field(default=600, ge=0, description="Requests per minute per key (0: no limit).")
    max_queued: int = Field(default=25, ge=1, description="Films one key may have queued or running.")
    max_body: int = Field(default=MAX_BODY, ge=1024)


class BodyLimit:
    """413 for a request body over `limit` bytes, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException passes through FastAPI's body parsing and becomes the 413 response.
                    raise HTTPException(413, f"the request body is larger than {self.limit // 2**20} MiB")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"the request body is larger than {limit // 2**20} MiB"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(config: ServerConfig, service: FilmService | None = None) -> FastAPI:
    """The FastAPI app over the state folder; its workers start with the app and stop with it."""
    from agent import api, api_catalogues, studio

    svc = service or FilmService(Path(config.state_dir), config.base, config.workers, config.worker_processes)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(
        title="creative-director",
        version="0.1.0",
        description="Brief → storyboard → critiqued takes → clips → subtitled cut, as a service.",
        docs_url=None,  # served by agent/studio.py from local files, behind the key
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.keys = Keys(config.keys, enabled=not config.no_auth)
    app.state.rate = RateLimit(config.rate_limit)
    app.state.max_queued = config.max_queued
    app.include_router(api.router)
    app.include_router(api_catalogues.router)
    app.include_router(studio.router)
    app.add_middleware(BodyLimit, limit=config.max_body)
    return app
