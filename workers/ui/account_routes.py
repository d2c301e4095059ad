"""The account routes of the status page (``/ui/accounts``, ``/ui/accounts/<id>``), added to its app by
``create_ui_app``; what they show is built in ``workers.ui.accounts`` from Redis only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from workers.logs import masked
from workers.runtime import Runtime
from workers.ui import accounts
from workers.ui.links import RecordLinks

SEARCH_MAX = 200
"""Longest search text accepted (an id or a name is far shorter)."""

Page = Callable[..., HTMLResponse]


def add_account_routes(app: FastAPI, runtime: Runtime, links: RecordLinks, page: Page) -> None:
    @app.get("/ui/accounts", response_class=HTMLResponse)
    def account_search(request: Request, search: str = "") -> HTMLResponse:
        query = search.strip()[:SEARCH_MAX]
        found: list[Any] = accounts.search(runtime, query) if query else []
        return page(
            request, "accounts.html", search=query, found=masked([vars(m) for m in found]), limit=accounts.SEARCH_LIMIT
        )

    @app.get("/ui/accounts/{account_id}", response_class=HTMLResponse)
    def account(request: Request, account_id: str) -> HTMLResponse:
        detail = accounts.account_detail(runtime, account_id, links)
        if detail is None:
            raise HTTPException(404, "no such account in the ledger")
        return page(request, "account.html", account=masked(detail))
