"""The status page served in a thread beside the stand-ins (``crmsync sandbox up`` and the demo)."""

from __future__ import annotations

from workers.logs import remember_secrets
from workers.runtime import Runtime
from workers.serving import ServerThread
from workers.ui.security import Access


def serve_ui(runtime: Runtime, username: str, password: str, port: int = 0) -> ServerThread:
    """The status page in a thread on loopback, behind the given login (the sandbox's, for ``sandbox up`` and the
    demo, which register it as the stack's ``ui`` server so ``stack.stop()`` stops it)."""
    from workers.ui.app import create_ui_app

    remember_secrets([password])
    return ServerThread(create_ui_app(runtime, Access(username, password)), port=port).start()
