"""``sshgate demo``: a dev cluster with demo pods and a gate in front of it, in one process."""

from sshgate.demo.demo import DEMO_USER, run_demo

__all__ = ["DEMO_USER", "run_demo"]
