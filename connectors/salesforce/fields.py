"""Which Salesforce fields a connector reads and writes, from the fields its mapping names (``StreamFields``).

The connector is given the ``mappings.salesforce.Account`` section's fields (``sync.connector.StreamFields``),
never the mapping config itself. Every path it reads must be one SOQL can address (``Field`` or
``Relationship.Field``) and every field it writes a plain field; a path that is not fails at start-up naming the
mapping key. A legacy connector setting that repeats what the mapping says must agree with it
(``connectors.mapped``).
"""

from __future__ import annotations

from connectors.mapped import check_setting
from connectors.salesforce.config import FIELD_RE, PATH_RE, SalesforceConfig, unique_paths
from sync.connector import StreamFields
from sync.errors import ConfigError


def mapping_fields(fields: StreamFields) -> tuple[set[str], set[str]]:
    """The field paths a stream's mapping reads (its written fields included) and the fields it writes, checked
    against what SOQL can address. A path that is not ``Field`` or ``Relationship.Field`` raises ``ConfigError``
    naming the mapping key."""
    written = set(fields.write)
    for name in written:
        if not FIELD_RE.match(name):
            raise ConfigError(fields.key, f"{name!r}: only plain Salesforce fields can be written")
    read: set[str] = set(written)
    for path, key in zip(fields.read, fields.read_keys, strict=True):
        if not PATH_RE.match(path):
            raise ConfigError(key, f"{path!r}: expected Field or Relationship.Field")
        read.add(path)
    return read, written


def written_fields(
    config: SalesforceConfig, fields: StreamFields | None, key: str = "sources.salesforce.config"
) -> tuple[str, ...]:
    """The fields push-back writes, which every read selects too: the mapping's (``StreamFields.write``), or
    without a mapping the config's legacy settings or their defaults. A legacy ``account_id_field`` or
    ``outbound_fields`` that names other fields than the mapping raises ``ConfigError`` naming ``<key>.<setting>``
    (``connectors.mapped``)."""
    if fields is None:
        return config.default_written
    check_setting(
        f"{key}.account_id_field",
        config.account_id_field,
        fields.account_id_field,
        f"{fields.key}.account_id_field",
        fold_case=True,
    )
    others = [name for name in fields.write if name != fields.account_id_field]
    check_setting(
        f"{key}.outbound_fields",
        config.outbound_fields,
        others,
        f"{fields.key} (link_fields and fields with direction: outbound)",
        fold_case=True,
    )
    return unique_paths(fields.write)
