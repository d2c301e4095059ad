"""The engine fixtures of ``test_engine`` (mapping, engine, in-memory CRMs), shared by the engine's other tests."""

from tests.sync.test_engine import conn, crm, engine, mapping, other

__all__ = ["conn", "crm", "engine", "mapping", "other"]
