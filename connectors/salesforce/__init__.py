"""Salesforce: Accounts through SOQL ``queryAll``, push-back through sObject Collections, Outbound Messages.

See ``docs/connectors/salesforce.md``.
"""

from connectors.salesforce.config import (
    ClientCredentialsAuth,
    JwtAuth,
    PasswordAuth,
    SalesforceConfig,
    SessionAuth,
    load_salesforce_config,
)
from connectors.salesforce.connector import SalesforceConnector, mapping_fields
from connectors.salesforce.cursor import SalesforceCursor

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
