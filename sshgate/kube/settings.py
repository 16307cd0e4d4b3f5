"""How the gate reaches Kubernetes: the ``kubernetes:`` section of the gate config."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class KubeSettings(BaseModel):
    """Connection and authorization settings for the gate's Kubernetes client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: Path | None = Field(
        None,
        description=(
            "Kubeconfig file with the gate's own credentials. Default: $KUBECONFIG (a ':'-separated list "
            "is merged as kubectl does), else ~/.kube/config. Ignored when in_cluster is true."
        ),
    )
    context: str | None = Field(
        None, description="Context of the kubeconfig to use. Default: the file's current-context."
    )
    in_cluster: bool = Field(
        False,
        description=(
            "Use the pod's service account (token and CA under /var/run/secrets/kubernetes.io/serviceaccount, "
            "API address from KUBERNETES_SERVICE_HOST/PORT) instead of a kubeconfig. The token is re-read "
            "when it changes."
        ),
    )
    impersonate: bool = Field(
        True,
        description=(
            "Send Impersonate-User and one Impersonate-Group header per group for the SSH user on every "
            "request made for a session, so Kubernetes RBAC and the audit log see the person, not the gate. "
            "The gate's credentials then need the 'impersonate' verb on users and groups."
        ),
    )
    access_review: bool = Field(
        True,
        description=(
            "Before opening an exec or port-forward stream, ask Kubernetes (SubjectAccessReview) whether the "
            "SSH user may 'create' pods/exec or pods/portforward, and refuse if not. Needed because "
            "clusters before 1.35 authorize WebSocket streams with the weaker 'get' verb. The gate's "
            "credentials need 'create' on subjectaccessreviews.authorization.k8s.io."
        ),
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds allowed for each REST call and for opening a stream (the WebSocket handshake).",
    )
    heartbeat: float = Field(
        20.0,
        ge=0,
        description=(
            "Seconds between WebSocket pings on open streams; a stream whose ping gets no answer within "
            "half this time is treated as lost. Keeps idle sessions alive through load balancers. "
            "0 disables pings."
        ),
    )
    max_connections: int = Field(
        0,
        ge=0,
        description=(
            "Most simultaneous connections to the API server (each open stream holds one). "
            "0 means no limit: the gate's own session limits bound it."
        ),
    )
    allow_insecure_tls: bool = Field(
        False,
        description=(
            "Accept a kubeconfig cluster with insecure-skip-tls-verify: true. Off by default because the "
            "gate sends its credentials and the users' identities to that server."
        ),
    )
