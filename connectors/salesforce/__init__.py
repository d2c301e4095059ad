"""Salesforce: Accounts through SOQL ``queryAll``, push-back through sObject Collections, Outbound Messages.

See ``docs/connectors/salesforce.md``.

Names are imported on first use, so reading ``connectors.salesforce.facts`` does not import the SDK.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.salesforce.config import (
        ClientCredentialsAuth,
        JwtAuth,
        PasswordAuth,
        SalesforceConfig,
        SessionAuth,
        load_salesforce_config,
    )
    from connectors.salesforce.connector import SalesforceConnector
    from connectors.salesforce.cursor import SalesforceCursor
    from connectors.salesforce.fields import mapping_fields

_EXPORTS: dict[str, str] = {
    "ClientCredentialsAuth": "connectors.salesforce.config",
    "JwtAuth": "connectors.salesforce.config",
    "PasswordAuth": "connectors.salesforce.config",
    "SalesforceConfig": "connectors.salesforce.config",
    "SessionAuth": "connectors.salesforce.config",
    "load_salesforce_config": "connectors.salesforce.config",
    "SalesforceConnector": "connectors.salesforce.connector",
    "mapping_fields": "connectors.salesforce.fields",
    "SalesforceCursor": "connectors.salesforce.cursor",
}

__all__ = [
    "ClientCredentialsAuth",
    "JwtAuth",
    "PasswordAuth",
    "SalesforceConfig",
    "SalesforceConnector",
    "SalesforceCursor",
    "SessionAuth",
    "load_salesforce_config",
    "mapping_fields",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
