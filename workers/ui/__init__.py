"""``crmsync ui``: a server-rendered status page for the people who run crmsync.

It reads Redis only (status data, the runs and dead-letter streams, the last dry runs, the ledger's links) and
calls no vendor and no PostHog API; its buttons enqueue Celery tasks on the configured broker. Parts:

- ``views``: the read model, what each page shows, built from Redis;
- ``links``: URLs of a record in PostHog and in its CRM, when the pieces to build one are known;
- ``security``: HTTP Basic, the loopback rule without a password, and the cross-site checks on POST;
- ``app``: the FastAPI routes and Jinja2 templates (``templates/``, autoescaped), ``static/ui.css``;
- ``server``: the ``crmsync ui`` command.
"""
