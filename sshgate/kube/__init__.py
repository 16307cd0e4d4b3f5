"""The gate's Kubernetes client: pod lookup, target resolution, access reviews, exec and port-forward.

Typical use by the SSH server::

    client = await KubeClient.connect(settings)
    resolved = await client.resolve(target, identity)
    async with client.exec(resolved.namespace, resolved.pod, resolved.container, ["sh"],
                           tty=True, stdin=True, identity=identity) as stream:
        ...  # stream.send_stdin / resize / read, then stream.result()
"""

from sshgate.kube.client import KubeClient
from sshgate.kube.errors import KubeError, KubeErrorKind
from sshgate.kube.exec import ExecResult, ExecStream
from sshgate.kube.pods import PodInfo, ResolvedTarget
from sshgate.kube.portforward import PortForwardStream
from sshgate.kube.settings import KubeSettings

__all__ = [
    "ExecResult",
    "ExecStream",
    "KubeClient",
    "KubeError",
    "KubeErrorKind",
    "KubeSettings",
    "PodInfo",
    "PortForwardStream",
    "ResolvedTarget",
]
