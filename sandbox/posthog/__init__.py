"""Local stand-in of PostHog's Customer API (accounts, group-type usage metrics, organisation members).

``create_app(PostHogSandboxConfig(...))`` builds the FastAPI app; ``crmsync sandbox run posthog`` serves it.
"""
