"""A push's echo is fingerprinted from the record's own mapping (``remap_pushed``): the same values and fingerprint
``map_record`` gives the pushed record, mapping again only the fields that read a pushed CRM field."""

from __future__ import annotations

from typing import Any

import pytest

from sync.connector import CrmRecord
from sync.mapping import load_mapping_config, map_record, remap_pushed, set_path

MAPPING = load_mapping_config(
    {
        "mappings": {
            "memcrm": {
                "accounts": {
                    "link": "sfdc_id",
                    "account_id_field": "PostHog_Id",
                    "fields": [
                        {"source": "name", "target": "name"},
                        {"source": ["ext", "PostHog_Id"], "target": "external_id"},  # falls back on a pushed field
                        {"target": "properties.slack_channel_id", "transforms": [{"template": "{name}-{PostHog_Id}"}]},
                        {"source": "Owner.Email", "target": "roles.csm", "direction": "both"},
                        {"source": "tier", "target": "tags"},
                        {"source": "segment", "target": "tags", "transforms": ["lower"]},
                    ],
                }
            }
        }
    }
).object("memcrm", "accounts")

FIELDS: dict[str, Any] = {"name": "Acme", "Owner": {"Email": "ana@acme.com"}, "tier": "Gold", "segment": "SMB"}


def pushed_record(fields: dict[str, Any], pushed: dict[str, Any]) -> CrmRecord:
    for path, value in pushed.items():
        fields = set_path(fields, path, value)
    return CrmRecord("memcrm", "accounts", "001", fields)


@pytest.mark.parametrize(
    "pushed",
    [
        {"PostHog_Id": "acct-1"},  # read by a fallback and by a template
        {"Owner.Email": "bo@acme.com"},  # a `both` field written back
        {"Owner": {"Email": "cy@acme.com"}},  # a parent of a path the mapping reads
        {"PostHog_Id": "acct-1", "Owner.Email": None, "segment": "ENT"},  # several, one cleared, one of two tags
    ],
)
def test_the_echo_maps_as_the_pushed_record_does(pushed: dict[str, Any]) -> None:
    record = CrmRecord("memcrm", "accounts", "001", FIELDS)
    echo = remap_pushed(map_record(record, MAPPING), record, pushed, MAPPING)
    expected = map_record(pushed_record(FIELDS, pushed), MAPPING)
    assert echo.values == expected.values
    assert echo.fingerprint("m") == expected.fingerprint("m")
    assert echo.fingerprint("m") != map_record(record, MAPPING).fingerprint("m")


def test_a_push_the_mapping_does_not_read_reuses_the_mapped_record() -> None:
    record = CrmRecord("memcrm", "accounts", "001", {**FIELDS, "ext": "e-1"})
    patch = map_record(record, MAPPING)
    assert remap_pushed(patch, record, {"Unmapped__c": "x", "Other.Path": "y"}, MAPPING) is patch
