"""The shared stand-in machinery: counters, faults, admin routes, the in-process server."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from sandbox.common import install_sandbox, serving


def _fault(status: int, retry_after: float) -> Response:
    return JSONResponse({"error": status}, status_code=status)


def _app() -> FastAPI:
    app = FastAPI()
    install_sandbox(app, _fault)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def test_counts_by_route_template_and_status() -> None:
    with serving(_app()) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/items/1").status_code == 200
        assert http.get("/items/2").status_code == 200
        assert http.get("/items/x").status_code == 422
        stats = http.get("/_sandbox/stats").json()
    rows = {(r["method"], r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows == {("GET", "/items/{item_id}", 200): 2, ("GET", "/items/{item_id}", 422): 1}
    assert stats["total"] == 3


def test_faults_are_injected_then_cleared() -> None:
    with serving(_app()) as server, httpx.Client(base_url=server.url) as http:
        http.post("/_sandbox/faults", json={"rate_429": 1.0, "retry_after_s": 2})
        response = http.get("/items/1")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        http.post("/_sandbox/faults", json={})
        assert http.get("/items/1").status_code == 200
        stats = http.get("/_sandbox/stats").json()
        assert stats["faults_injected"] == {"429": 1}
        http.post("/_sandbox/reset")
        assert http.get("/_sandbox/stats").json()["total"] == 0


def test_seeded_faults_are_reproducible() -> None:
    def statuses() -> list[int]:
        with serving(_app()) as server, httpx.Client(base_url=server.url) as http:
            http.post("/_sandbox/faults", json={"rate_429": 0.3, "rate_5xx": 0.2, "seed": 42})
            return [http.get("/items/1").status_code for _ in range(40)]

    first = statuses()
    assert first == statuses()
    assert {200, 429, 500} <= set(first)
