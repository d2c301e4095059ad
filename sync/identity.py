"""Which PostHog account a CRM record belongs to.

Resolution order for one record: its ledger link (the account it was applied to before) → the account index
(its CRM id property, then ``external_id``) → create. The index is built by listing every account once, then
kept fresh by listing ``ordering=-updated_at`` down to a watermark at the start of each run; the worker's own
writes update it directly. Because a create carries the ``external_id``, a create that races another worker
(or a person) answers 409, and the engine then finds the account with an exact ``external_id`` search.
"""

from __future__ import annotations

from collections.abc import Iterator

from sync.ledger import Ledger
from sync.posthog.client import PostHogClient
from sync.posthog.models import ID_KEYS, Account, AccountFilter, AccountOrdering, account_ts


def index_pairs(external_id: str | None, properties: dict[str, object]) -> list[tuple[str, str]]:
    """The (kind, value) index entries that point at an account with these fields."""
    pairs: list[tuple[str, str]] = []
    if external_id:
        pairs.append(("external_id", external_id))
    for key in ID_KEYS:
        value = properties.get(key)
        if isinstance(value, str) and value:
            pairs.append((key, value))
    return pairs


class AccountIndex:
    """external_id and CRM ids → account id, stored in the ledger and refreshed from PostHog."""

    def __init__(self, client: PostHogClient, ledger: Ledger, page_size: int = 1000) -> None:
        self.client = client
        self.ledger = ledger
        self.page_size = page_size

    def refresh(self, full: bool = False) -> int:
        """Index accounts changed since the watermark (all of them the first time, or with ``full``) and remember
        each as seen, so a later PATCH starts from it without a GET; returns how many. One list request when
        nothing changed; ``full`` (a full sync's drift repair) reads every account once."""
        indexed = 0
        walk = ChangedAccounts(self.client, None if full else self.ledger.index_watermark(), self.page_size)
        for fresh in walk:
            index = {pair: a.id for a in fresh for pair in index_pairs(a.external_id, a.properties.payload())}
            self.ledger.commit(index=index)
            self.ledger.remember_seen(fresh)
            indexed += len(fresh)
        if walk.newest is not None:
            self.ledger.set_index_watermark(walk.newest)
        return indexed

    def find_by_external_id(self, external_id: str) -> Account | None:
        """An exact ``external_id`` match through PostHog's search (which is a substring match)."""
        for account in self.client.iter_accounts(AccountFilter(search=external_id), page_size=100):
            if account.external_id == external_id:
                return account
        return None


class ChangedAccounts:
    """Pages of the accounts changed since ``watermark`` (every account when None), newest first, read down to the
    watermark and no further (``>=``: the boundary is read again; callers are idempotent). After the walk,
    ``newest`` is the watermark to store next time (None when nothing was read)."""

    def __init__(self, client: PostHogClient, watermark: str | None, page_size: int = 1000) -> None:
        self.client = client
        self.watermark = watermark
        self.page_size = page_size
        self.newest: str | None = None

    def __iter__(self) -> Iterator[list[Account]]:
        newest_first = AccountFilter(ordering=AccountOrdering.UPDATED_AT_DESC)
        for accounts in self.client.iter_account_pages(newest_first, self.page_size):
            fresh = [a for a in accounts if self.watermark is None or account_ts(a) >= self.watermark]
            if fresh:
                self.newest = self.newest or account_ts(fresh[0])
                yield fresh
            if len(fresh) < len(accounts):
                return  # reached accounts older than the watermark
