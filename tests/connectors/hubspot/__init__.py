BLOCK = {"access_token": "pat-x"}
"""A minimal valid ``sources.hubspot.config`` (``tests/connectors/test_registry.py``)."""
