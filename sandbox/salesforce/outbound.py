"""Outbound Messages: the SOAP notifications Salesforce workflow posts when an Account is saved.

Each message is a SOAP 1.1 envelope whose body holds ``notifications`` (namespace
``http://soap.sforce.com/2005/09/outbound``) with ``OrganizationId``, ``ActionId``, ``SessionId`` (a live
access token for the API user, usable to call back), ``EnterpriseUrl``, ``PartnerUrl`` and up to 100
``Notification`` elements, each an ``Id`` (``04l...``) and an ``sObject`` of ``xsi:type="sf:Account"``
(``sf`` = ``urn:sobject.enterprise.soap.sforce.com``) carrying the fields chosen in the message definition;
here every Account field, null ones omitted. Headers: ``Content-Type: text/xml; charset=utf-8`` and
``SOAPAction: ""``; there is no signature (Salesforce identifies itself by organization id, and optionally
by a client certificate).

A delivery counts only when the listener answers 2xx with ``<Ack>true</Ack>`` in a ``notificationsResponse``;
anything else is retried with backoff, as Salesforce retries until acknowledged. As on the real platform,
saves (create, update, upsert, undelete) send messages; deletes do not, since workflow does not run on
delete. Messages are delivered in order by ``WebhookSender``'s background thread.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx

from sandbox.common import WebhookSender
from sandbox.salesforce import ids
from sandbox.salesforce.auth import TokenStore
from sandbox.salesforce.schema import ObjectSpec, format_soap_datetime
from sandbox.salesforce.store import ADMIN_USER_ID, Record

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS_PER_MESSAGE = 100
ACTION_ID = ids.make_id(ids.OUTBOUND_ACTION_PREFIX, "Sd", 1)


@dataclass(frozen=True)
class Notification:
    """One ``Notification``: its id and the sObject's fields as (name, text) pairs, ``Id`` first."""

    id: str
    sobject: str
    fields: tuple[tuple[str, str], ...]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_soap_datetime(value)
    return str(value)


def envelope(
    org_id: str,
    session_id: str,
    enterprise_url: str,
    partner_url: str,
    notifications: Sequence[Notification],
    action_id: str = ACTION_ID,
) -> bytes:
    """The exact bytes Salesforce posts for ``notifications``."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:xsi="{XSI_NS}">',
        "<soapenv:Body>",
        f'<notifications xmlns="{OUTBOUND_NS}">',
        f"<OrganizationId>{escape(org_id)}</OrganizationId>",
        f"<ActionId>{escape(action_id)}</ActionId>",
        f"<SessionId>{escape(session_id)}</SessionId>",
        f"<EnterpriseUrl>{escape(enterprise_url)}</EnterpriseUrl>",
        f"<PartnerUrl>{escape(partner_url)}</PartnerUrl>",
    ]
    for note in notifications:
        parts.append(f"<Notification><Id>{escape(note.id)}</Id>")
        parts.append(f'<sObject xsi:type={quoteattr("sf:" + note.sobject)} xmlns:sf="{SOBJECT_NS}">')
        parts.extend(f"<sf:{name}>{escape(text)}</sf:{name}>" for name, text in note.fields)
        parts.append("</sObject></Notification>")
    parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
    return "".join(parts).encode()


def ack_response(ack: bool = True) -> bytes:
    """The SOAP answer a listener sends back; only ``ack=True`` stops Salesforce's retries."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}">'
        f'<soapenv:Body><notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>{"true" if ack else "false"}</Ack>'
        "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def is_ack(body: bytes) -> bool:
    """True when ``body`` is a SOAP answer with ``<Ack>true</Ack>`` in the outbound namespace."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return False
    ack = root.find(f".//{{{OUTBOUND_NS}}}Ack")
    return ack is not None and (ack.text or "").strip().lower() == "true"


def parse_envelope(body: bytes) -> dict[str, Any]:
    """Read a message back: header fields and each notification's ``{"Id", "sObject": {field: text}}``.

    For tests and demo listeners; a connector should parse the XML itself against the namespaces above.
    """
    root = ET.fromstring(body)
    notifications = root.find(f".//{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        raise ValueError("not an outbound message")

    def child(name: str) -> str:
        node = notifications.find(f"{{{OUTBOUND_NS}}}{name}")
        return (node.text or "") if node is not None else ""

    out: dict[str, Any] = {
        name: child(name) for name in ("OrganizationId", "ActionId", "SessionId", "EnterpriseUrl", "PartnerUrl")
    }
    out["Notification"] = []
    for note in notifications.findall(f"{{{OUTBOUND_NS}}}Notification"):
        sobject = note.find(f"{{{OUTBOUND_NS}}}sObject")
        fields = {} if sobject is None else {el.tag.split("}", 1)[1]: el.text or "" for el in sobject}
        out["Notification"].append(
            {
                "Id": (note.findtext(f"{{{OUTBOUND_NS}}}Id") or ""),
                "type": "" if sobject is None else sobject.get(f"{{{XSI_NS}}}type", ""),
                "sObject": fields,
            }
        )
    return out


class OutboundMessageSender(WebhookSender):
    """``WebhookSender`` that counts a delivery only when the listener acknowledges it with ``<Ack>true``."""

    def _deliver(self, url: str, body: bytes, sign: Callable[[bytes], dict[str, str]]) -> None:
        for attempt in range(self.max_attempts):
            self.attempts += 1
            try:
                response = self._client.post(url, content=body, headers=sign(body))
                if response.status_code < 300 and is_ack(response.content):
                    self.delivered += 1
                    return
            except httpx.HTTPError:
                pass
            time.sleep(self.base_delay_s * (2**attempt))
        self.failed += 1


def _soap_headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


class OutboundNotifier:
    """Turns saved records into Outbound Messages for the configured listener URL (none: nothing sent)."""

    def __init__(
        self,
        org_id: str,
        url: str | None,
        sender: OutboundMessageSender,
        tokens: TokenStore,
        api_version: str = "59.0",
    ) -> None:
        self.org_id = org_id
        self.url = url
        self.sender = sender
        self.tokens = tokens
        self.api_version = api_version
        self.messages_queued = 0
        self.notifications_queued = 0
        self._counter = 0
        self._lock = threading.Lock()

    def reset_counters(self) -> None:
        """Zero the queued/delivered counters (``POST /_sandbox/reset``); queued messages still go out."""
        with self._lock:
            self.messages_queued = self.notifications_queued = 0
        self.sender.delivered = self.sender.failed = self.sender.attempts = 0

    def notify(self, spec: ObjectSpec, records: Sequence[Record], base_url: str) -> int:
        """Queue messages for ``records`` (saved copies), up to 100 notifications each; returns the count."""
        url = self.url
        if not url or not records:
            return 0
        notes = [self._notification(spec, record) for record in records]
        org15 = self.org_id[:15]
        session = self.tokens.issue(ADMIN_USER_ID)
        sent = 0
        for start in range(0, len(notes), MAX_NOTIFICATIONS_PER_MESSAGE):
            body = envelope(
                self.org_id,
                session.token,
                f"{base_url}/services/Soap/c/{self.api_version}/{org15}",
                f"{base_url}/services/Soap/u/{self.api_version}/{org15}",
                notes[start : start + MAX_NOTIFICATIONS_PER_MESSAGE],
            )
            self.sender.send(url, body, _soap_headers)
            sent += 1
        with self._lock:
            self.messages_queued += sent
            self.notifications_queued += len(notes)
        return sent

    def _notification(self, spec: ObjectSpec, record: Record) -> Notification:
        with self._lock:
            self._counter += 1
            note_id = ids.make_id(ids.OUTBOUND_NOTIFICATION_PREFIX, "Sd", self._counter)
        fields = tuple((f.name, _text(record[f.name])) for f in spec.fields if record.get(f.name) is not None)
        return Notification(note_id, spec.name, fields)
