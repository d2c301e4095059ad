"""The stand-in's Account has the ``PostHog_CSM_Email__c`` field the project's mapping writes the CSM into.

A real org set up for crmsync has the custom fields ``PostHog_External_Id__c``, ``PostHog_Account_Id__c`` and
``PostHog_CSM_Email__c`` (``examples/crmsync.yaml`` pushes ``roles.csm`` there); the stand-in lacked the last one,
so every push-back of the example mapping failed with ``INVALID_FIELD``.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.connectors.salesforce.conftest import StandIn


def test_csm_email_field_is_described_writable_and_validated(standin: StandIn) -> None:
    [rid] = standin.seed(1)
    sf = standin.sdk()
    described = sf.restful("sobjects/Account/describe")
    assert described is not None
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["PostHog_CSM_Email__c"]["type"] == "email" and fields["PostHog_CSM_Email__c"]["updateable"]
    sf.restful(f"sobjects/Account/{rid}", method="PATCH", json={"PostHog_CSM_Email__c": "ana@example.com"})
    row = sf.query(f"SELECT PostHog_CSM_Email__c FROM Account WHERE Id = '{rid}'")["records"][0]
    assert row["PostHog_CSM_Email__c"] == "ana@example.com"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful(f"sobjects/Account/{rid}", method="PATCH", json={"PostHog_CSM_Email__c": "not an email"})
    content = info.value.content
    assert isinstance(content, list) and content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
