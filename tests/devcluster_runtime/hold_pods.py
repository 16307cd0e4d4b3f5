"""A dev cluster stand-in for test_lifecycle: runs a pod with would-be orphans until it is killed.

``python -m tests.devcluster_runtime.hold_pods STATE_DIR MARKER`` (from the repository root): starts pod web-0 whose main process and one exec each start
three daemons carrying MARKER, prints ``ready`` once all six run, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sshgate.devcluster.runtime import PodRuntime
from sshgate.devcluster.spec import Pod
from tests.devcluster_runtime.helpers import daemons, read_ups, until


async def main(state_dir: Path, marker: str) -> None:
    pod = Pod.model_validate(
        {"name": "web-0", "containers": [{"name": "app", "command": daemons(marker, "wait")}]}
    )
    runtime = PodRuntime(state_dir)
    await runtime.start([pod])
    process = await runtime.exec(pod, "app", daemons(marker, "wait"), tty=False, stdin=False)
    await read_ups(process.stdout)
    log = runtime.log_path(pod, "app")
    await until(lambda: log.read_text().count("up") == 3)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
