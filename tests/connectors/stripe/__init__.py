BLOCK = {"api_key": "sk_test_x"}
"""A minimal valid ``sources.stripe.config`` (``tests/connectors/test_registry.py``)."""
