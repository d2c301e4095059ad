"""The PostHog side: a typed httpx client for the Customer API (accounts, usage metrics, members)."""

from sync.posthog.client import UNSET, ClientStats, PostHogClient, client_from_env
from sync.posthog.models import (
    Account,
    AccountFilter,
    AccountOrdering,
    AccountProperties,
    Member,
    MetricDisplay,
    MetricFormat,
    MetricMath,
    Page,
    Role,
    UsageMetric,
    UsageMetricSpec,
)

__all__ = [
    "UNSET",
    "Account",
    "AccountFilter",
    "AccountOrdering",
    "AccountProperties",
    "ClientStats",
    "Member",
    "MetricDisplay",
    "MetricFormat",
    "MetricMath",
    "Page",
    "PostHogClient",
    "Role",
    "UsageMetric",
    "UsageMetricSpec",
    "client_from_env",
]
