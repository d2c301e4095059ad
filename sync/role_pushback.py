"""PostHog → CRM for role holders on current servers, where roles live on relationships.

A person who reassigns an account's CSM in PostHog changes a relationship row: the account's ``updated_at`` does
not move, so the push-back pass's walk of accounts changed since its watermark never sees it, and the account body no
longer carries role keys at all. Reading every account's relationships each pass would cost a request per account
per run. PostHog emits ``$account_relationship_changed`` for each change (``products/customer_analytics/backend/
events.py``, from ``logic/relationships.py``'s ``_record_transition``), so the change feed over its query API
(``sync/posthog/changes.py``, shared with custom values) answers "which roles changed since the watermark" in one
request per pass (per 500 changes), whatever the number of accounts. The query asks for both kinds of change, as
the custom values' pass does, so inside one push-back run (``SharedQueries.sharing()``) the two passes send it once.

``apply_relationship_changes`` lays the newest change per (account, definition) onto the account's ledger entry
(``AccountEntry.roles``), under the accounts' locks, so the ownership rules see the holder PostHog has (a
``posthog_wins`` CSM stays PostHog's) and crmsync's own assignments, read back from the feed, change nothing. The
engine then pushes every account the feed names (since this pass's watermark) like any other changed account
(``PushBackWriter._push_accounts``), from the ledger's last copy of each account with the holders laid over it: no
request to PostHog per account. Every account named, not only those whose ledger entry changed: the entry is one
per account, the passes are one per CRM stream, so the first pass of a run records the new holder and the others
would otherwise see no change and push nothing. The push fingerprint of each record decides what is sent, so a
holder a record already has (or an event re-read in the lookback) costs no CRM request.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync.ledger import Ledger
from sync.posthog.changes import ChangeEvent, QueryClient, latest_relationships, read_changes
from sync.roles import DEFINITION_NAMES

ROLE_BY_DEFINITION = {name: key for key, name in DEFINITION_NAMES.items()}


def holder_of(event: ChangeEvent) -> dict[str, object] | None:
    """The holder after the change: ``{"id", "email"}``, or None when the role was ended."""
    props = event.properties
    user_id, email = props.get("current_user_id"), props.get("current_user_email")
    if props.get("change_type") == "unassigned" or user_id is None or not email:
        return None
    try:
        return {"id": int(str(user_id)), "email": str(email).strip().lower()}
    except ValueError:
        return None


def apply_relationship_changes(ledger: Ledger, events: Iterable[ChangeEvent], commit: bool = True) -> list[str]:
    """Record the newest holder of each changed role in the accounts' ledger entries (one lock round trip, one
    read, one commit; none with ``commit=False``, a dry run); returns the ids of every account with a role change
    in ``events``, whether or not its entry already held it (another stream's pass of the run may have recorded
    it: the records of this stream still need it)."""
    latest = {
        (account_id, ROLE_BY_DEFINITION[name]): event
        for (account_id, name), event in latest_relationships(events).items()
        if name in ROLE_BY_DEFINITION
    }
    accounts = sorted({account_id for account_id, _ in latest})
    if not accounts:
        return []
    changed: list[str] = []
    with ledger.locks([f"acct:{a}" for a in accounts]):
        entries = dict(zip(accounts, ledger.get_accounts(accounts), strict=True))
        for (account_id, key), event in sorted(latest.items()):
            entry, holder = entries[account_id], holder_of(event)
            if entry.roles.get(key) == holder or (holder is None and key not in entry.roles):
                continue
            if holder is None:
                entry.roles.pop(key, None)
            else:
                entry.roles[key] = holder
            if account_id not in changed:
                changed.append(account_id)
        if changed and commit:
            ledger.commit(accounts={a: entries[a] for a in changed})
    return accounts


def read_relationship_changes(
    client: QueryClient, ledger: Ledger, wm_key: str, dry_run: bool = False
) -> tuple[list[str], str | None, int]:
    """Read the feed since ``wm_key``'s watermark and apply it (not on a dry run); returns (the ids of the accounts
    whose roles changed since then, the watermark to store once they are pushed, the requests spent)."""
    batch = read_changes(client, ledger.get_cursor("posthog", wm_key))  # both kinds: a read other passes share
    return apply_relationship_changes(ledger, batch.events, commit=not dry_run), batch.watermark, batch.requests
