"""sshgate: an SSH-compatible jump server that turns SSH sessions into Kubernetes pod exec."""

__version__ = "0.1.0.dev0"
