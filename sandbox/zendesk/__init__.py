"""The Zendesk Support stand-in (organizations, organization fields, bulk jobs, incremental export, webhooks)."""
