"""The endpoint's routes, one module per family: the Worker-compatible API (batches.py) and the
dashboard with `/metrics` (dashboard.py); and what every route does to its query string and answers."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


def known_query(request: Request, known: set[str]) -> dict[str, str]:
    """The query string as one value per name; an unknown name (a misspelt filter would otherwise be
    silently ignored) or a NUL (PostgreSQL text cannot hold one; no stored value has one) is a 400."""
    query = dict(request.query_params)
    unknown = sorted(set(query) - known)
    if unknown:
        raise HTTPException(400, f"Bad request: unknown query parameter {unknown[0][:40]!r}")
    for name, value in query.items():
        if "\x00" in value:
            raise HTTPException(400, f"Bad request: {name[:40]} must not contain NUL")
    return query


def json_answer(body: object, status: int = 200) -> JSONResponse:
    """An answer as JSON, kept out of shared caches: it may have been read with a token."""
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})
