"""The dev cluster in-process: pods started, HTTPS API listening, kubeconfigs on request.

Used by ``sshgate devcluster`` and by ``sshgate demo``::

    cluster = DevCluster(load_pods_file(path), state_dir=Path("state"))
    await cluster.start()
    cluster.write_kubeconfig(Path("kubeconfig"))
    ...
    await cluster.stop()

The state dir holds ``tls/`` (the CA and serving certificate), ``requests.log`` (one JSON line per
request) and the runtime's ``pods/``.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiohttp import web

from sshgate.devcluster.api import ApiServer
from sshgate.devcluster.objects import Catalog
from sshgate.devcluster.requestlog import RequestLog
from sshgate.devcluster.runtime import PodRuntime
from sshgate.devcluster.spec import PodsFile
from sshgate.devcluster.streams import Streams
from sshgate.devcluster.tls import TlsFiles, generate, write_private
from sshgate.errors import UserError

logger = logging.getLogger(__name__)

#: How long stop() lets open streams end by themselves before cancelling them.
SHUTDOWN_GRACE = 3.0
#: The first version whose API server terminates v5 WebSocket exec (TranslateStreamCloseWebsocketRequests).
FIRST_V5_MINOR = 30


class DevCluster:
    """A Kubernetes API emulator whose pods are sandboxed local processes."""

    def __init__(
        self,
        config: PodsFile,
        *,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        sandbox: bool = True,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.host = host
        self.port = port
        #: ``https://HOST:PORT`` once started.
        self.url = ""
        self._runtime = PodRuntime(state_dir, sandbox=sandbox)
        self._tls: TlsFiles | None = None
        self._api: ApiServer | None = None
        self._log: RequestLog | None = None
        self._runner: web.AppRunner | None = None

    @property
    def request_log(self) -> Path:
        """``STATE/requests.log``: one JSON object per request (see docs/devcluster.md)."""
        return self.state_dir / "requests.log"

    async def start(self) -> None:
        """Start the pods and serve HTTPS. Raises UserError when the port or the sandbox is unusable."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._tls = generate(self.state_dir / "tls", self.host)
        except OSError as exc:
            raise UserError(f"cannot use the state dir {self.state_dir}: {exc.strerror or exc}") from None
        try:
            await self._runtime.start(self.config.pods)
            self._log = RequestLog(self.request_log)
            catalog = Catalog(
                self.config,
                created=datetime.now(UTC),
                pod_ip=self._runtime.pod_ip,
                log_path=self._runtime.log_path,
            )
            streams = Streams(self._runtime, v5=self.config.cluster.minor >= FIRST_V5_MINOR)
            self._api = ApiServer(self.config, catalog=catalog, streams=streams, log=self._log)
            self._runner = web.AppRunner(
                self._api.application(),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=SHUTDOWN_GRACE,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._tls.server_context())
            try:
                await site.start()
            except OSError as exc:
                raise UserError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}; "
                    "choose another address or port (port 0 picks a free one)"
                ) from None
            port = self._runner.addresses[0][1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"https://{host}:{port}"
        except BaseException:
            await self.stop()
            raise

    def write_kubeconfig(self, path: Path, user: str | None = None) -> None:
        """Write a kubeconfig for ``user`` (default: the first user, ``admin`` by default), mode 0600."""
        if self._api is None or self._tls is None or not self.url:
            raise RuntimeError("start() the dev cluster before writing a kubeconfig")
        authenticator = self._api.authenticator
        name = user or authenticator.default_user
        try:
            token = authenticator.token_of(name)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        ca_data = base64.b64encode(self._tls.ca_cert.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "devcluster", "cluster": {"server": self.url, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "devcluster",
                    "context": {"cluster": "devcluster", "user": name, "namespace": "default"},
                }
            ],
            "current-context": "devcluster",
            "preferences": {},
        }
        try:
            write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
        except OSError as exc:
            raise UserError(f"cannot write the kubeconfig {path}: {exc.strerror or exc}") from None

    async def stop(self) -> None:
        """Stop serving and end every pod and exec process. Safe to call more than once."""
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()  # no new connections while the pods go
        try:
            await self._runtime.close()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            if self._log is not None:
                self._log.close()
                self._log = None
