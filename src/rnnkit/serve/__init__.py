"""``rnnkit serve``: a small web page and a JSON API for a trained run, on FastAPI + uvicorn.

    GET  /             the page (static/index.html + app.js + style.css, served from the package: no CDN)
    GET  /api/info     the run's app, its form fields, the limits
    POST /api/predict  JSON in, JSON out (class probabilities, a forecast, a translation with attention)
    POST /api/stream   JSON in, the generated text streamed piece by piece (text/plain, chunked)
    GET  /healthz      "ok"

FastAPI (Starlette) with uvicorn: maintained, ASGI, streaming responses and request validation built
in; the model work runs in Starlette's thread pool, at most ``Limits.max_concurrent`` requests at a
time (others wait). Every refusal is one JSON line ``{"error": "..."}`` with a 4xx status: 400 bad
JSON, 404 unknown path, 405 wrong method, 411 no Content-Length, 413 body over the limit, 415 not
JSON, 422 a field out of range or text the model cannot read. Files (an image, a WAV clip) travel as
base64 in the JSON (or a ``data:`` URL), up to ``Limits.max_upload_bytes``: over it 413, not an image
or not a WAV file 415, a damaged one 422. What each app shows and accepts lives
in :mod:`rnnkit.serve.handlers`.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at run time.
import json
import math
import threading
from pathlib import Path

from rnnkit._files import read_json_object
from rnnkit.errors import InputError
from rnnkit.serve.handlers import HANDLERS, Field, Handler, Limits, register

STATIC = Path(__file__).parent / "static"


def load_handler(run: str | Path, limits: Limits | None = None) -> Handler:
    """The handler for the run's app, with the run loaded; one clear line for anything else."""
    run = Path(run)
    if not (run / "app.json").is_file():
        raise InputError(f"{run} is not a finished rnnkit run (no app.json); pass the --out of a training run")
    app = read_json_object(run / "app.json").get("app")
    if app not in HANDLERS:
        raise InputError(f"{run} is a {app} run; rnnkit serve has pages for {', '.join(sorted(HANDLERS))}")
    return HANDLERS[app](run, limits or Limits())


def _not_json(constant: str):
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's json reads but JSON does not have."""
    raise ValueError(f"{constant} is not a JSON number")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _checked(handler: Handler, body: object) -> dict:
    """The request's fields, typed and in range as the handler's form says; defaults filled in."""
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    known = {f.name: f for f in handler.form}
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}; this page takes {sorted(known)}")
    request = {}
    for name, field in known.items():
        value = body.get(name, field.default)
        if value is None:
            if field.required:
                raise InputError(f"{name!r} is required")
            request[name] = None
            continue
        if field.kind in ("number", "integer"):
            integer = field.kind == "integer"
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise InputError(f"{name!r} must be {'an integer' if integer else 'a number'}, got {value!r}")
            if not integer and not _finite(value):
                raise InputError(f"{name!r} must be a finite number, got {value!r}")
            if (field.minimum is not None and value < field.minimum) or \
                    (field.maximum is not None and value > field.maximum):
                low = field.minimum if field.minimum is not None else "-inf"
                high = field.maximum if field.maximum is not None else "inf"
                raise InputError(f"{name!r} must be in [{low}, {high}], got {value}")
        request[name] = value
    return request


def create_app(run: str | Path, limits: Limits | None = None, *, handler: Handler | None = None):
    """The ASGI application serving ``run`` (``uvicorn.run(app)`` or a test client); ``handler``: the run
    already loaded by :func:`load_handler`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.staticfiles import StaticFiles

    limits = limits or Limits()
    handler = handler or load_handler(run, limits)
    slots = threading.BoundedSemaphore(limits.max_concurrent)
    app = FastAPI(title=f"rnnkit {handler.app}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.handler = handler

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        messages = {404: f"no such page: {request.url.path}", 405: f"{request.method} is not allowed here"}
        return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return error(422, "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return error(411, "send the body with a Content-Length header")
            if not length.isdigit() or int(length) > handler.body_limit():
                return error(413, f"the request body is over the limit of {handler.body_limit()} bytes")
            if "json" not in request.headers.get("content-type", ""):
                return error(415, "send the body as JSON (Content-Type: application/json)")
        return await call_next(request)

    async def read(request: Request) -> dict | JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw, parse_constant=_not_json)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            return error(400, f"the body is not valid JSON ({exc})")
        except RecursionError:
            return error(400, "the body is not valid JSON here (nested too deeply)")
        try:
            return _checked(handler, body)
        except InputError as exc:
            return error(422, str(exc))

    def guarded(function, *args):
        with slots:
            return function(*args)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def health():
        return PlainTextResponse("ok")

    @app.get("/api/info")
    async def info():
        return handler.info()

    @app.post("/api/predict")
    async def predict(request: Request):
        checked = await read(request)
        if isinstance(checked, JSONResponse):
            return checked
        try:
            return await run_in_threadpool(guarded, handler.predict, checked)
        except InputError as exc:  # an upload's refusal carries its own status (413, 415)
            return error(getattr(exc, "status", 422), str(exc))

    @app.post("/api/stream")
    async def stream(request: Request):
        checked = await read(request)
        if isinstance(checked, JSONResponse):
            return checked
        try:  # the first piece inside the request, so a refusal is a 4xx and not a broken stream
            pieces = handler.stream(checked)
            first = await run_in_threadpool(guarded, next, pieces, None)
        except InputError as exc:
            return error(422, str(exc))

        def rest():
            if first is not None:
                yield first
            while True:
                piece = guarded(next, pieces, None)
                if piece is None:
                    return
                yield piece

        return StreamingResponse(rest(), media_type="text/plain; charset=utf-8",
                                 headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(run: str | Path, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          handler: Handler | None = None) -> None:
    """Serve ``run`` until interrupted (uvicorn)."""
    import uvicorn

    app = create_app(run, limits, handler=handler)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["Field", "HANDLERS", "Handler", "Limits", "create_app", "load_handler", "register", "serve"]
