"""HubSpot stand-in: ``create_app(HubSpotSandboxConfig(...))``; see ``sandbox.hubspot.app`` for the routes."""

from sandbox.hubspot.app import create_app
from sandbox.hubspot.config import HubSpotSandboxConfig

__all__ = ["HubSpotSandboxConfig", "create_app"]
