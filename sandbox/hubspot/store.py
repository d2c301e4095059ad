"""The HubSpot portal the stand-in serves: deals, companies, owners, properties and deal-company links.

Everything lives in memory behind one lock. Records are kept by id with a sorted id list per state
(active, archived), so paging by id is a bisect; merged-away ids are remembered only to answer 404.
Every write bumps the record's ``hs_lastmodifieddate``/``updatedAt`` (strictly increasing per record) and
reports what changed, as ``Change`` events, to the listener the app wires to webhooks.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.errors import HubSpotError, bad_request, invalid_properties, not_found
from sandbox.hubspot.links import DealCompanyLinks
from sandbox.hubspot.model import COMPANIES, DEALS, Change, ObjectType, Owner, Record
from sandbox.hubspot.properties import (
    PropertyDef,
    ValueIssue,
    default_company_properties,
    default_deal_properties,
    normalize_value,
    property_from_create,
)
from sandbox.hubspot.seeding import SeedPlan, owner_for, plan_seed
from sandbox.hubspot.timefmt import iso_ms, now_ms

ChangeListener = Callable[[list[Change]], None]


@dataclass
class ObjectTable:
    """Records of one object type, with the sorted id lists and unique-value indexes that serve reads."""

    type: ObjectType
    properties: dict[str, PropertyDef]
    records: dict[int, Record] = field(default_factory=dict)
    active: list[int] = field(default_factory=list)
    archived: list[int] = field(default_factory=list)
    merged_into: dict[int, int] = field(default_factory=dict)
    unique: dict[str, dict[str, int]] = field(default_factory=dict)
    next_id: int = 0

    def __post_init__(self) -> None:
        self.next_id = self.type.api_id_base
        for definition in self.properties.values():
            if definition.has_unique_value:
                self.unique.setdefault(definition.name, {})


def _remove_sorted(ids: list[int], record_id: int) -> None:
    index = bisect.bisect_left(ids, record_id)
    if index < len(ids) and ids[index] == record_id:
        del ids[index]


def _add_sorted(ids: list[int], record_id: int) -> None:
    index = bisect.bisect_left(ids, record_id)
    if index == len(ids) or ids[index] != record_id:
        ids.insert(index, record_id)


class HubSpotStore:
    """One portal's CRM data; thread-safe. Methods raise ``HubSpotError`` with HubSpot's status and category."""

    def __init__(self, portal_id: int, listener: ChangeListener | None = None) -> None:
        self.portal_id = portal_id
        self.listener = listener
        self._lock = threading.RLock()
        self.tables: dict[str, ObjectTable] = {}
        self.owners: dict[int, Owner] = {}
        self.links = DealCompanyLinks()
        self.reset()

    # ----------------------------------------------------------------- set-up

    def reset(self) -> None:
        """Back to a fresh portal: no records, ten owners, the default properties."""
        with self._lock:
            self.tables = {
                DEALS.plural: ObjectTable(DEALS, {p.name: p for p in default_deal_properties()}),
                COMPANIES.plural: ObjectTable(COMPANIES, {p.name: p for p in default_company_properties()}),
            }
            self.owners = {}
            self.links = DealCompanyLinks()
            self.ensure_owners(10)

    def ensure_owners(self, count: int) -> None:
        """Make owners ``0..count-1`` exist (``sales_rep_email(k)``); deterministic ids."""
        with self._lock:
            for k in range(count):
                owner = owner_for(k)
                self.owners.setdefault(owner.id, owner)

    def table(self, object_type: ObjectType) -> ObjectTable:
        return self.tables[object_type.plural]

    # ------------------------------------------------------------------ reads

    def get(self, object_type: ObjectType, record_id: int, *, archived: bool = False) -> Record | None:
        """The record, if it exists in the asked state (active, or archived when ``archived``)."""
        with self._lock:
            record = self.table(object_type).records.get(record_id)
            if record is None or record.archived != archived:
                return None
            return record

    def resolve(
        self, object_type: ObjectType, key: str, id_property: str | None, *, archived: bool = False
    ) -> Record | None:
        """Find a record by its id, or by the value of a unique property when ``id_property`` is given."""
        with self._lock:
            table = self.table(object_type)
            if id_property and id_property != "hs_object_id":
                index = table.unique.get(id_property)
                if index is None:
                    raise bad_request(
                        f"Unable to perform lookup by non-unique {object_type.type_id} property "
                        f"{id_property} in portal ID {self.portal_id}"
                    )
                record_id = index.get(key)
                if record_id is None:
                    return None
                return self.get(object_type, record_id, archived=archived)
            if not key.isdigit():
                return None
            return self.get(object_type, int(key), archived=archived)

    def page(
        self, object_type: ObjectType, after: int | None, limit: int, *, archived: bool = False
    ) -> tuple[list[Record], int | None]:
        """Records in id order from id ``after`` on; the second value is the next ``after`` (or None)."""
        with self._lock:
            table = self.table(object_type)
            ids = table.archived if archived else table.active
            start = bisect.bisect_left(ids, after) if after is not None else 0
            chosen = ids[start : start + limit]
            has_more = start + limit < len(ids)
            next_after = chosen[-1] + 1 if has_more and chosen else None
            return [table.records[i] for i in chosen], next_after

    def active_records(self, object_type: ObjectType) -> list[Record]:
        """All active records in id order (what search scans)."""
        with self._lock:
            table = self.table(object_type)
            return [table.records[i] for i in table.active]

    def count(self, object_type: ObjectType, *, archived: bool = False) -> int:
        with self._lock:
            table = self.table(object_type)
            return len(table.archived if archived else table.active)

    def associated(self, from_type: ObjectType, record_id: int) -> list[tuple[int, bool]]:
        """Active records of the other type linked to ``record_id``, in id order, with the primary flag."""
        with self._lock:
            other = self.table(COMPANIES if from_type is DEALS else DEALS).records
            return [
                (i, primary)
                for i, primary in self.links.of(from_type, record_id)
                if i in other and not other[i].archived
            ]

    def property_defs(self, object_type: ObjectType) -> dict[str, PropertyDef]:
        with self._lock:
            return dict(self.table(object_type).properties)

    def owner_list(self, *, archived: bool = False) -> list[Owner]:
        with self._lock:
            return [o for _, o in sorted(self.owners.items()) if o.archived == archived]

    # ---------------------------------------------------------------- schema

    def create_property(self, object_type: ObjectType, body: dict[str, Any]) -> PropertyDef:
        """``POST /crm/v3/properties/{objectType}``: 201 with the definition, 409 if the name exists."""
        with self._lock:
            table = self.table(object_type)
            definition = property_from_create(body, table.properties, now_ms())
            table.properties[definition.name] = definition
            if definition.has_unique_value:
                table.unique[definition.name] = {}
            return definition

    # ----------------------------------------------------------- validation

    def _is_owner(self, value: str) -> bool:
        return value.isdigit() and int(value) in self.owners

    def validate(self, object_type: ObjectType, properties: Mapping[str, Any]) -> dict[str, str | None]:
        """Normalised values for a write; one 400 listing every invalid property otherwise."""
        table = self.table(object_type)
        clean: dict[str, str | None] = {}
        issues: list[ValueIssue] = []
        for name, raw in properties.items():
            value, issue = normalize_value(table.properties.get(name), name, raw, self._is_owner)
            if issue is not None:
                issues.append(issue)
            else:
                clean[name] = value
        if issues:
            raise invalid_properties([issue.to_json(self.portal_id) for issue in issues])
        return clean

    def _check_unique(self, table: ObjectTable, record_id: int | None, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            index = table.unique.get(name)
            if index is None or value is None:
                continue
            holder = index.get(value)
            if holder is not None and holder != record_id:
                raise HubSpotError(
                    409,
                    "CONFLICT",
                    f"A {table.type.singular} with {name} '{value}' already exists. Existing ID: {holder}",
                )

    # ---------------------------------------------------------------- writes

    def _emit(self, changes: list[Change]) -> None:
        if changes and self.listener is not None:
            self.listener(changes)

    @staticmethod
    def _bump(record: Record, now: int) -> None:
        record.updated_ms = max(now, record.updated_ms + 1)

    def _apply(
        self,
        table: ObjectTable,
        record: Record,
        values: Mapping[str, str | None],
        now: int,
        source: str,
        changes: list[Change],
    ) -> bool:
        changed: list[tuple[str, str | None]] = []
        for name, value in values.items():
            old = record.values.get(name)
            if old == value:
                continue
            if value is None:
                del record.values[name]
            else:
                record.values[name] = value
            index = table.unique.get(name)
            if index is not None:
                if old is not None and index.get(old) == record.id:
                    del index[old]
                if value is not None:
                    index[value] = record.id
            changed.append((name, value))
        if not changed:
            return False
        self._bump(record, now)
        for name, value in changed:
            changes.append(
                Change("propertyChange", table.type, record.id, record.updated_ms, source, name, value or "")
            )
        return True

    def _insert(self, table: ObjectTable, record: Record) -> None:
        table.records[record.id] = record
        _add_sorted(table.archived if record.archived else table.active, record.id)
        for name, index in table.unique.items():
            value = record.values.get(name)
            if value is not None:
                index[value] = record.id

    @staticmethod
    def _unindex(table: ObjectTable, record: Record) -> None:
        for name, index in table.unique.items():
            value = record.values.get(name)
            if value is not None and index.get(value) == record.id:
                del index[value]

    def _drop(self, table: ObjectTable, record: Record) -> None:
        table.records.pop(record.id, None)
        _remove_sorted(table.active, record.id)
        _remove_sorted(table.archived, record.id)
        self._unindex(table, record)

    def create(
        self,
        object_type: ObjectType,
        properties: Mapping[str, Any],
        source: str,
        associate_with: Iterable[tuple[int, bool]] = (),
    ) -> Record:
        """Create one record (``POST /crm/v3/objects/{type}``), optionally linked to records of the other type."""
        return self.create_many(object_type, [(properties, list(associate_with))], source)[0]

    def create_many(
        self,
        object_type: ObjectType,
        inputs: Sequence[tuple[Mapping[str, Any], list[tuple[int, bool]]]],
        source: str,
    ) -> list[Record]:
        """Create records all-or-nothing: every input is validated before any is stored."""
        with self._lock:
            table = self.table(object_type)
            cleaned = [self.validate(object_type, props) for props, _ in inputs]
            seen: dict[str, set[str]] = {}
            for values in cleaned:
                self._check_unique(table, None, values)
                for name in table.unique:
                    value = values.get(name)
                    if value is None:
                        continue
                    if value in seen.setdefault(name, set()):
                        raise bad_request(f"Duplicate value '{value}' for unique property {name} in batch input")
                    seen[name].add(value)
            other = DEALS if object_type is COMPANIES else COMPANIES
            for _, links in inputs:
                for target, _ in links:
                    if self.get(other, target) is None:
                        raise not_found(f"{other.upper} {target} not found", context={"ids": [str(target)]})
            now = now_ms()
            records: list[Record] = []
            changes: list[Change] = []
            for values, (_, links) in zip(cleaned, inputs, strict=True):
                record_id = table.next_id
                table.next_id += 1
                stored = {k: v for k, v in values.items() if v is not None}
                stored.setdefault("createdate", iso_ms(now))
                record = Record(record_id, stored, now, now)
                self._insert(table, record)
                for target, primary in links:
                    if object_type is DEALS:
                        self.links.link(record_id, target, primary)
                    else:
                        self.links.link(target, record_id, primary)
                records.append(record)
                changes.append(Change("creation", object_type, record_id, now, source))
            self._emit(changes)
            return records

    def update_many(
        self,
        object_type: ObjectType,
        inputs: Sequence[tuple[Record, Mapping[str, Any]]],
        source: str,
    ) -> list[Record]:
        """Apply property writes to existing records, all validated first; one webhook delivery for all."""
        with self._lock:
            table = self.table(object_type)
            cleaned = [self.validate(object_type, props) for _, props in inputs]
            for (record, _), values in zip(inputs, cleaned, strict=True):
                self._check_unique(table, record.id, values)
            now = now_ms()
            changes: list[Change] = []
            for (record, _), values in zip(inputs, cleaned, strict=True):
                self._apply(table, record, values, now, source, changes)
            self._emit(changes)
            return [record for record, _ in inputs]

    def update(self, object_type: ObjectType, record: Record, properties: Mapping[str, Any], source: str) -> Record:
        """``PATCH /crm/v3/objects/{type}/{id}``."""
        return self.update_many(object_type, [(record, properties)], source)[0]

    def upsert_many(
        self,
        object_type: ObjectType,
        inputs: Sequence[tuple[str, str, Mapping[str, Any]]],
        source: str,
    ) -> list[tuple[Record, bool]]:
        """``batch/upsert``: (idProperty, value, properties) each; update the holder of the value or create."""
        with self._lock:
            table = self.table(object_type)
            for id_property, _, _ in inputs:
                if id_property not in table.unique:
                    raise bad_request(
                        f"Unable to perform update/upsert by non-unique {object_type.type_id} property "
                        f"{id_property} in portal ID {self.portal_id}"
                    )
            updates: list[tuple[Record, Mapping[str, Any]]] = []
            creates: list[tuple[Mapping[str, Any], list[tuple[int, bool]]]] = []
            order: list[tuple[bool, int]] = []
            for id_property, value, props in inputs:
                holder = table.unique[id_property].get(value)
                record = table.records.get(holder) if holder is not None else None
                if record is not None and not record.archived:
                    order.append((False, len(updates)))
                    updates.append((record, props))
                else:
                    order.append((True, len(creates)))
                    creates.append(({**props, id_property: value}, []))
            keys = [(id_property, value) for id_property, value, _ in inputs]
            if len(set(keys)) != len(keys):
                raise bad_request("Duplicate IDs found in batch input. IDs must be unique")
            for props, _ in creates:
                self._check_unique(table, None, self.validate(object_type, props))
            updated = self.update_many(object_type, updates, source) if updates else []
            created = self.create_many(object_type, creates, source) if creates else []
            return [(created[i], True) if new else (updated[i], False) for new, i in order]

    def archive(self, object_type: ObjectType, record_id: int, source: str) -> bool:
        """Soft-delete (``DELETE /crm/v3/objects/{type}/{id}``); False if it was not active."""
        return self.archive_many(object_type, [record_id], source) > 0

    def archive_many(self, object_type: ObjectType, record_ids: Iterable[int], source: str) -> int:
        """Archive each active id (unknown ones are skipped, as HubSpot does); frees their unique values."""
        with self._lock:
            table = self.table(object_type)
            now = now_ms()
            changes: list[Change] = []
            for record_id in record_ids:
                record = table.records.get(record_id)
                if record is None or record.archived:
                    continue
                _remove_sorted(table.active, record_id)
                self._unindex(table, record)
                record.archived_ms = now
                self._bump(record, now)
                _add_sorted(table.archived, record_id)
                changes.append(Change("deletion", object_type, record_id, record.updated_ms, source))
            self._emit(changes)
            return len(changes)

    def purge(self, object_type: ObjectType, record_id: int, source: str) -> bool:
        """Delete for good (as a GDPR delete does): afterwards the id is unknown even with ``archived``."""
        with self._lock:
            table = self.table(object_type)
            record = table.records.get(record_id)
            if record is None:
                return False
            was_active = not record.archived
            self._drop(table, record)
            self.links.unlink_all(object_type, record_id)
            if was_active:
                self._emit([Change("deletion", object_type, record_id, now_ms(), source)])
            return True

    def merge(self, object_type: ObjectType, primary_id: int, merged_id: int, source: str) -> Record:
        """Merge ``merged_id`` into ``primary_id``: the survivor keeps its id and fills its empty values
        from the merged record, takes over its links, and lists it in ``hs_merged_object_ids``;
        the merged-away id answers 404 from then on."""
        with self._lock:
            if primary_id == merged_id:
                raise bad_request("Cannot merge an object with itself.")
            table = self.table(object_type)
            primary = self.get(object_type, primary_id)
            merged = self.get(object_type, merged_id)
            missing = [str(i) for i, r in ((primary_id, primary), (merged_id, merged)) if r is None]
            if primary is None or merged is None:
                raise not_found(f"{object_type.upper} {', '.join(missing)} not found.", context={"ids": missing})
            now = now_ms()
            self._drop(table, merged)
            table.merged_into[merged_id] = primary_id
            earlier = [v for v in primary.values.get("hs_merged_object_ids", "").split(";") if v]
            theirs = [v for v in merged.values.get("hs_merged_object_ids", "").split(";") if v]
            fills = {
                name: value
                for name, value in merged.values.items()
                if name not in primary.values and name not in ("hs_merged_object_ids", "createdate")
            }
            fills["hs_merged_object_ids"] = ";".join([*earlier, str(merged_id), *theirs])
            changes: list[Change] = []
            self._apply(table, primary, fills, now, source, changes)
            self.links.move(object_type, merged_id, primary_id)
            merge_event = Change(
                "merge",
                object_type,
                primary_id,
                primary.updated_ms,
                source,
                merged_ids=(merged_id,),
                properties_moved=len(fills) - 1,
            )
            deletion = Change("deletion", object_type, merged_id, primary.updated_ms, source)
            self._emit([merge_event, deletion, *changes])
            return primary

    def set_modified(self, object_type: ObjectType, record_ids: Iterable[int] | None, modified_ms: int) -> int:
        """Give many records one ``hs_lastmodifieddate`` (to build the ">10k share a timestamp" case)."""
        with self._lock:
            table = self.table(object_type)
            ids = list(table.active) if record_ids is None else list(record_ids)
            touched = 0
            for record_id in ids:
                record = table.records.get(record_id)
                if record is not None:
                    record.updated_ms = modified_ms
                    touched += 1
            return touched

    # ------------------------------------------------------------------- seed

    def seed(self, start: int, count: int, *, external_ids: bool = True, notify: bool = False) -> SeedPlan:
        """Seed identities ``start..start+count-1``: a company each, one or two deals each, linked.

        Deterministic: the same arguments give the same ids, values and timestamps. Records already at
        those ids are replaced. ``notify`` sends creation webhooks (off by default: a seed is set-up)."""
        with self._lock:
            plan = plan_seed(start, count, sorted(self.owners), external_ids=external_ids)
            for object_type, records in ((COMPANIES, plan.companies), (DEALS, plan.deals)):
                table = self.table(object_type)
                planned = {record.id for record in records}
                for record in records:
                    for name, index in table.unique.items():
                        holder = index.get(record.values.get(name, ""))
                        if holder is not None and holder not in planned:
                            raise HubSpotError(
                                409,
                                "CONFLICT",
                                f"{object_type.upper} {holder} already has {name} '{record.values[name]}'",
                            )
            changes: list[Change] = []
            for object_type, records in ((COMPANIES, plan.companies), (DEALS, plan.deals)):
                table = self.table(object_type)
                for record in records:
                    old = table.records.get(record.id)
                    if old is not None:
                        self._drop(table, old)
                        self.links.unlink_all(object_type, record.id)
                    table.merged_into.pop(record.id, None)
                    table.records[record.id] = record
                    for name, index in table.unique.items():
                        value = record.values.get(name)
                        if value is not None:
                            index[value] = record.id
                    if notify:
                        changes.append(Change("creation", object_type, record.id, now_ms(), "IMPORT"))
                table.active = sorted({*table.active, *(r.id for r in records)})
            for deal_id, company_id in plan.links:
                self.links.link(deal_id, company_id, True)
            self._emit(changes)
            return plan
