"""The dev cluster: a Kubernetes API emulator whose pods are sandboxed local processes.

It speaks the real wire protocol (HTTPS, bearer tokens, impersonation, RBAC, WebSocket exec and
port-forward) so that kubectl and the gate can be tested against it, and it backs ``sshgate demo``.
See docs/devcluster.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sshgate.devcluster.spec import PodsFile, load_pods_file

if TYPE_CHECKING:
    from sshgate.devcluster.server import DevCluster

__all__ = ["DevCluster", "PodsFile", "load_pods_file"]


def __getattr__(name: str) -> Any:
    # The server pulls in aiohttp and the sandbox runtime; importing the pods file format must not.
    if name == "DevCluster":
        from sshgate.devcluster.server import DevCluster

        return DevCluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
