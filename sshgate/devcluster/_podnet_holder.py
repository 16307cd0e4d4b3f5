"""A pod's network holder, the dev cluster's pause container: it owns the pod's network namespace.

Run as ``python -I -S _podnet_holder.py FD`` inside ``bwrap --unshare-net`` (standard library only:
it runs without site-packages). FD is a SOCK_SEQPACKET socket to the runtime. The holder first sends
``ready`` with file descriptors of its network and user namespaces (the runtime enters them to start
the pod's containers), then answers each request (``4`` or ``6``) with a new, unconnected TCP socket
of that family. A socket stays in the namespace it was created in, so the runtime connects it to the
pod's ports itself: no relay process, no copying.
"""

from __future__ import annotations

import os
import socket
import sys

_UNPRIVILEGED_PORTS = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    try:
        # As in Docker: any user in the pod may serve on port 80. Only possible with CAP_NET_ADMIN
        # over the namespace (the dev cluster runs as root); otherwise ports below 1024 need root.
        with open(_UNPRIVILEGED_PORTS, "w") as f:
            f.write("0")
    except OSError:
        pass
    namespaces = [os.open(f"/proc/self/ns/{ns}", os.O_RDONLY) for ns in ("net", "user")]
    socket.send_fds(control, [b"ready"], namespaces)
    for fd in namespaces:
        os.close(fd)
    while True:
        request = control.recv(16)
        if not request:  # the runtime closed the pod or is gone
            return 0
        family = socket.AF_INET6 if request == b"6" else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # e.g. IPv6 disabled
            control.send(b"error")
            continue
        with sock:
            socket.send_fds(control, [b"socket"], [sock.fileno()])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
