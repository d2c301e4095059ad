"""Signed deliveries for the three webhook routes, and a receiver on a stack's config, for the security tests.

The receiver is ``create_webhook_app`` on a ``Runtime`` built from ``SandboxStack.config()``, served in-process by
Starlette's ``TestClient`` (with ``raise_server_exceptions=False`` so a crash shows as the 500 a client would see).
Refreshes are collected in a list instead of being sent to Celery.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sandbox.hubspot.webhooks import signature_v3
from sandbox.stack import HUBSPOT_APP_SECRET, SALESFORCE_ORG, SALESFORCE_WEBHOOK_TOKEN, STRIPE_WEBHOOK_SECRET
from sandbox.stripe.webhooks import signature_header

BASE = "http://testserver"


def hubspot_body(event_id: int, deal_id: int = 9_000_000_002) -> bytes:
    event = {
        "eventId": event_id,
        "subscriptionId": 1,
        "portalId": 1,
        "appId": 1,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": deal_id,
        "propertyName": "dealname",
        "propertyValue": "x",
        "changeSource": "CRM_UI",
    }
    return json.dumps([event]).encode()


def hubspot_headers(body: bytes, secret: str = HUBSPOT_APP_SECRET, age_s: float = 0) -> dict[str, str]:
    timestamp = str(int((time.time() - age_s) * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", f"{BASE}/webhooks/hubspot", body, timestamp),
        "X-HubSpot-Signature-Version": "v3",
    }


def stripe_body(event_id: str, customer: str = "cus_S0000000000001") -> bytes:
    event: dict[str, Any] = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": "customer.updated",
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": {"id": customer, "object": "customer", "name": "x"}},
        "request": {"id": "req_1", "idempotency_key": None},
    }
    return json.dumps(event).encode()


def stripe_headers(body: bytes, secret: str = STRIPE_WEBHOOK_SECRET, age_s: float = 0) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(secret, body, int(time.time() - age_s)),
    }


def salesforce_body(notification_id: str, account_id: str = "001Sd0000000001IAA", org: str = SALESFORCE_ORG) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.invalid/</EnterpriseUrl><PartnerUrl>https://example.invalid/</PartnerUrl>"
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{account_id}</sf:Id></sObject></Notification>"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


SALESFORCE_PATH = f"/webhooks/salesforce/{SALESFORCE_WEBHOOK_TOKEN}"
