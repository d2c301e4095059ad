"""Which accounts the ledger knows were really deleted in PostHog (``SyncEngine.reconcile_accounts``).

PostHog lists accounts by limit and offset (``/work/shared/reference/posthog-accounts-api.md``: "Pagination:
limit/offset, no maximum"). An account deleted while the walk is under way shifts every later row one place
towards the start, so the row that moved across the page boundary is never listed. Taking "not listed" for
"deleted" then forgets a live account, and the ``recreate`` rule creates it a second time. So a missing account
is only a candidate: one ``GET`` of it confirms the deletion (404, PostHog's answer for an unknown id: "DELETE →
204, hard delete. Unknown id → 404"), anything else keeps it. The cost is one request per candidate, usually none.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync.posthog.client import PostHogClient
from sync.posthog.errors import PostHogNotFound

PAGE_SIZE = 1000
"""Accounts per page of the reconcile listing."""


def listed_account_ids(posthog: PostHogClient) -> set[str]:
    """Every account id one walk of PostHog's listing returns (one may be missed: see the module docstring)."""
    return {a.id for page in posthog.iter_account_pages(page_size=PAGE_SIZE) for a in page}


def confirmed_deleted(posthog: PostHogClient, candidates: Iterable[str]) -> list[str]:
    """Of ``candidates`` (known to the ledger, not listed), those PostHog answers 404 for."""
    gone = []
    for account_id in candidates:
        try:
            posthog.get_account(account_id)
        except PostHogNotFound:
            gone.append(account_id)
    return gone
