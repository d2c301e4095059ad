BLOCK = {"url": "https://acme.zendesk.com", "email": "admin@acme.example", "api_token": "zd-token"}
"""A minimal valid ``sources.zendesk.config`` (``tests/connectors/test_registry.py``)."""
