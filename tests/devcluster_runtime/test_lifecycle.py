"""No process outlives its exec, its pod or the dev cluster; pods start fresh; main processes run."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import pytest

from sshgate.devcluster.runtime import PodRuntime
from sshgate.errors import UserError

from .helpers import (
    DB,
    PENDING,
    PERL,
    WEB,
    children_of_this_process,
    daemons,
    exited,
    pids_with,
    read_ups,
    run,
    token,
    until,
)


async def test_kill_leaves_no_orphans(runtime: PodRuntime) -> None:
    marker = token()
    process = await runtime.exec(WEB, "app", daemons(marker, "wait"), tty=False, stdin=False)
    await read_ups(process.stdout)
    assert len(pids_with(marker, program=PERL)) == 3
    await process.kill()
    assert pids_with(marker) == []  # at once: kill() returns when they are gone
    assert await process.wait() == 137
    await process.kill()  # idempotent


async def test_concurrent_kills(runtime: PodRuntime) -> None:
    marker = token()
    process = await runtime.exec(WEB, "app", daemons(marker, "wait"), tty=True, stdin=True)
    await read_ups(process.stdout)
    await asyncio.gather(process.kill(), process.kill(), process.kill())
    assert pids_with(marker) == []


async def test_the_end_of_an_exec_ends_what_it_started(runtime: PodRuntime) -> None:
    marker = token()
    process = await runtime.exec(WEB, "app", daemons(marker, "read line; exit 9"), tty=False, stdin=True)
    await read_ups(process.stdout)
    assert len(pids_with(marker, program=PERL)) == 3
    await process.write_stdin(b"go\n")
    assert await process.wait() == 9
    assert pids_with(marker) == []
    assert await process.stdout.read() == b""  # the daemons held stdout: now it is closed


async def test_close_ends_every_process(tmp_path: Path) -> None:
    marker = token()
    pod = WEB.model_copy(
        update={"containers": [WEB.containers[0].model_copy(update={"command": daemons(marker, "wait")})]}
    )
    # Other test modules may keep dev clusters running as children of this process: ignore those.
    earlier_children = set(children_of_this_process())
    runtime = PodRuntime(tmp_path / "state")
    await runtime.start([pod, DB])
    process = await runtime.exec(pod, "app", daemons(marker, "wait"), tty=False, stdin=False)
    await read_ups(process.stdout)
    await until(lambda: runtime.log_path(pod, "app").read_text().count("up") == 3)
    assert len(pids_with(marker, program=PERL)) == 6
    assert set(children_of_this_process()) - earlier_children  # the check below can fail
    await runtime.close()
    assert pids_with(marker) == []
    assert set(children_of_this_process()) - earlier_children == set()  # network holders included
    await runtime.close()  # idempotent


async def test_a_killed_dev_cluster_leaves_nothing_behind(tmp_path: Path) -> None:
    marker = token()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.devcluster_runtime.hold_pods",
        str(tmp_path / "state"),
        marker,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
        survivors = pids_with(marker)
        assert len(pids_with(marker, program=PERL)) == 6
        assert len(survivors) > 6  # sandboxes' init and bwrap too
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    await exited(survivors)  # the kernel's parent-death signal takes a moment, no more


async def test_main_process_output_goes_to_its_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pod = WEB.model_copy(
        update={
            "containers": [
                WEB.containers[0].model_copy(update={"command": ["sh", "-c", "pwd; echo $GREETING >&2"]}),
                WEB.containers[1].model_copy(update={"command": ["no-such-daemon"]}),
            ]
        }
    )
    runtime = PodRuntime(tmp_path / "state")
    with caplog.at_level(logging.INFO, logger="sshgate.devcluster.runtime"):
        await runtime.start([pod])
        try:
            await until(lambda: "main process exited with status 0" in caplog.text)
        finally:
            await runtime.close()
    assert runtime.log_path(pod, "app").read_text() == "/srv/app\nhello world\n"
    # A main process that cannot start is reported; the pod runs on (execs work).
    assert runtime.log_path(pod, "side").read_text() == (
        'exec: "no-such-daemon": executable file not found in $PATH\n'
    )
    assert "container default/web-0/side did not start" in caplog.text


async def test_pods_start_fresh(tmp_path: Path) -> None:
    first = PodRuntime(tmp_path / "state")
    await first.start([WEB])
    assert (await run(first, ["sh", "-c", "echo x > /tmp/left-over"])).status == 0
    await first.close()
    assert (tmp_path / "state/pods/default/web-0/app/tmp/left-over").exists()
    second = PodRuntime(tmp_path / "state")
    await second.start([WEB])
    try:
        assert (await run(second, ["ls", "-A", "/tmp"])).text == ""
    finally:
        await second.close()


async def test_start_is_incremental(runtime: PodRuntime) -> None:
    later = PENDING.model_copy(update={"phase": "Running"})
    await runtime.start([WEB, later])  # WEB keeps running; only `later` starts
    assert (await run(runtime, ["hostname"], pod=later)).text == "later\n"


async def test_pod_ips_are_stable_and_distinct(runtime: PodRuntime) -> None:
    ips = [runtime.pod_ip(pod) for pod in (WEB, DB, PENDING)]
    assert ips == [runtime.pod_ip(pod) for pod in (WEB, DB, PENDING)]
    assert len(set(ips)) == 3
    # Running pods get theirs in name order: prod/db-0 after default/web-0.
    assert ips[:2] == ["10.244.0.2", "10.244.0.3"]


async def test_a_closed_runtime_starts_nothing(runtime: PodRuntime) -> None:
    await runtime.close()
    with pytest.raises(RuntimeError):
        await runtime.start([WEB])


async def test_an_unusable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    runtime = PodRuntime(tmp_path / "file" / "state")
    with pytest.raises(UserError) as error:
        await runtime.start([WEB])
    assert str(error.value).startswith(
        f"cannot create the files of pod default/web-0 in {tmp_path}/file/state/"
    )
    assert str(error.value).endswith("check that the state directory is writable")
    await runtime.close()
