"""Salesforce stand-in: a TLS FastAPI server speaking the REST API as simple-salesforce 1.12 expects it.

Start it with ``crmsync sandbox run salesforce`` or in-process with
``ServerThread(create_app(config), ssl_certfile=cert, ssl_keyfile=key)`` after ``make_tls(data_dir)``.
``config`` explains how to point the SDK at it (``sdk_session``, ``login_domain``); ``app`` lists the
endpoints, admin routes included.
"""

from sandbox.salesforce.app import create_app
from sandbox.salesforce.config import SalesforceSandboxConfig, login_domain, make_tls, sdk_session

__all__ = ["SalesforceSandboxConfig", "create_app", "login_domain", "make_tls", "sdk_session"]
