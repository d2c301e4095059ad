"""Salesforce Outbound Messages: the SOAP 1.1 ``notifications`` workflow posts when a record is saved.

A message is ``soapenv:Envelope/soapenv:Body/notifications`` (namespace ``http://soap.sforce.com/2005/09/outbound``)
holding ``OrganizationId``, ``ActionId``, ``SessionId``, ``EnterpriseUrl``, ``PartnerUrl`` and up to 100
``Notification`` elements, each an ``Id`` (the notification's own id, the same on every redelivery) and an
``sObject`` (``xsi:type="sf:Account"``) whose ``sf:Id`` names the record. Salesforce signs nothing: a message is
trusted for coming from the configured organisation to an endpoint whose path holds a secret token, and it is
answered with ``notificationsResponse/Ack = true`` (anything else makes Salesforce deliver it again, for up to
24 hours).

The parser is ``defusedxml`` with every DTD refused (SOAP 1.1 forbids a DTD in a message, and a DTD is the way to
attack an XML parser: entity expansion, external entities). The check is the XML parser's own, so it holds whatever
the encoding (UTF-8, UTF-16 with a byte-order mark, ...) and wherever in the body the declaration comes; it
accepts only the envelope above.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from sync.connector import WebhookRequest

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ACK_CONTENT_TYPE = "text/xml; charset=utf-8"


class NotAnOutboundMessage(ValueError):
    """The body is not a well-formed Outbound Message; the text says what is wrong (never echoing the body)."""


@dataclass(frozen=True)
class Notification:
    """One ``Notification``: its id, the sObject type (``Account``), the record id and the fields sent."""

    id: str
    sobject: str
    record_id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: tuple[Notification, ...]


def _tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def parse_message(body: bytes) -> OutboundMessage:
    """Parse an Outbound Message; raises ``NotAnOutboundMessage`` for anything else."""
    try:
        root = safe_fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise NotAnOutboundMessage("DTDs and entity declarations are not allowed in SOAP messages") from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise NotAnOutboundMessage(f"not well-formed XML (line {line}, column {column})") from None
    if root.tag != _tag(SOAP_ENV_NS, "Envelope"):
        raise NotAnOutboundMessage("not a SOAP 1.1 envelope")
    soap_body = root.find(_tag(SOAP_ENV_NS, "Body"))
    if soap_body is None:
        raise NotAnOutboundMessage("the envelope has no Body")
    notifications = soap_body.find(_tag(OUTBOUND_NS, "notifications"))
    if notifications is None:
        raise NotAnOutboundMessage("the Body holds no outbound notifications element")
    org = (notifications.findtext(_tag(OUTBOUND_NS, "OrganizationId")) or "").strip()
    if not org:
        raise NotAnOutboundMessage("OrganizationId is missing")
    action = (notifications.findtext(_tag(OUTBOUND_NS, "ActionId")) or "").strip()
    out: list[Notification] = []
    for n, note in enumerate(notifications.findall(_tag(OUTBOUND_NS, "Notification"))):
        note_id = (note.findtext(_tag(OUTBOUND_NS, "Id")) or "").strip()
        sobject = note.find(_tag(OUTBOUND_NS, "sObject"))
        if not note_id or sobject is None:
            raise NotAnOutboundMessage(f"Notification {n} has no Id or no sObject")
        kind = sobject.get(_tag(XSI_NS, "type"), "")
        type_name = kind.split(":", 1)[-1]
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in sobject}
        record_id = fields.get("Id", "").strip()
        if not type_name or not record_id:
            raise NotAnOutboundMessage(f"Notification {n} has no sObject type or record Id")
        out.append(Notification(note_id, type_name, record_id, fields))
    return OutboundMessage(org, action, tuple(out))


_MEMO_KEY = "salesforce.outbound_message"


def message_of(request: WebhookRequest) -> OutboundMessage:
    """The delivery's message, parsed on first use and kept in ``request.memo``: verification and parsing of one
    delivery share one parse (an XML parse is the costly step of the receiver)."""
    cached = request.memo.get(_MEMO_KEY)
    if isinstance(cached, OutboundMessage):
        return cached
    message = parse_message(request.body)
    request.memo[_MEMO_KEY] = message
    return message


def same_org(given: str, configured: str) -> bool:
    """Organisation ids compare on their case-sensitive 15-character form (either form may be given)."""
    return len(given) in (15, 18) and given[:15] == configured[:15]


def ack_body(ack: bool = True) -> bytes:
    """The SOAP answer to a delivery; only ``ack=True`` stops Salesforce's redeliveries."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}">'
        f'<soapenv:Body><notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>{"true" if ack else "false"}</Ack>'
        "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()
