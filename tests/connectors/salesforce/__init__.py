BLOCK = {
    "auth": {"flow": "client_credentials", "client_id": "app", "client_secret": "s3cret"},
    "login_url": "https://acme.my.salesforce.com",
}
"""A minimal valid ``sources.salesforce.config`` (``tests/connectors/test_registry.py``)."""
