"""What a container's process sees: its own files, /etc, hostname, users, environment, PID namespace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sshgate.devcluster.runtime import ExecFailed, PodRuntime

from .helpers import DB, PENDING, WEB, run, token


def pod_dir(tmp_path: Path, namespace: str = "default", pod: str = "web-0") -> Path:
    return tmp_path / "state" / "pods" / namespace / pod


async def test_files_stay_in_their_container(runtime: PodRuntime, tmp_path: Path) -> None:
    name = token()
    paths = [f"/tmp/{name}", f"/root/{name}", f"/var/{name}", f"/home/{name}", f"/data/{name}"]
    write = run(
        runtime, ["sh", "-c", f"mkdir /data && for p in {' '.join(paths)}; do echo secret > $p; done"]
    )
    assert (await write).status == 0

    app = pod_dir(tmp_path) / "app"
    for path in paths:
        assert (app / path.lstrip("/")).read_text() == "secret\n"
        assert not os.path.exists(path)  # nothing on the host outside the container's directory
    look = await run(runtime, ["sh", "-c", f"cat {' '.join(paths)}"], container="side")
    assert look.status != 0
    assert look.stdout == b""
    assert (await run(runtime, ["cat", f"/tmp/{name}"], pod=DB, container="db")).status == 1
    # And it persists across execs of the same container.
    assert (await run(runtime, ["cat", f"/tmp/{name}"])).text == "secret\n"


async def test_host_files_are_invisible(runtime: PodRuntime, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("x")
    result = await run(runtime, ["sh", "-c", f"cat {secret}; cat /etc/shadow; ls /home; ls -A /root"])
    assert result.text == "user\n"
    assert b"No such file" in result.stderr
    passwd = await run(runtime, ["cat", "/etc/passwd"])
    assert [line.split(":")[0] for line in passwd.text.splitlines()] == ["root", "user", "nobody"]


async def test_usr_is_the_hosts_and_read_only(runtime: PodRuntime) -> None:
    result = await run(runtime, ["sh", "-c", "readlink /bin; touch /usr/x"])
    assert result.text == "usr/bin\n"
    assert b"Read-only file system" in result.stderr
    # /usr/bin/awk is a symlink into /etc/alternatives on Debian: it must work all the same.
    assert (await run(runtime, ["awk", "BEGIN { print 6 * 7 }"])).text == "42\n"


async def test_hostname_and_etc(runtime: PodRuntime) -> None:
    ip = runtime.pod_ip(WEB)
    result = await run(
        runtime,
        ["sh", "-c", "hostname; cat /etc/hostname; whoami; getent hosts web-0; grep search /etc/resolv.conf"],
    )
    assert [" ".join(line.split()) for line in result.text.splitlines()] == [
        "web-0",
        "web-0",
        "root",
        f"{ip} web-0",
        "search default.svc.cluster.local svc.cluster.local cluster.local",
    ]
    other = await run(runtime, ["sh", "-c", "hostname; grep search /etc/resolv.conf"], pod=DB, container="db")
    assert other.text.splitlines() == [
        "db-0",
        "search prod.svc.cluster.local svc.cluster.local cluster.local",
    ]


async def test_long_pod_names_make_valid_hostnames(tmp_path: Path) -> None:
    long_pod = DB.model_copy(update={"name": "a" * 62 + "-b", "namespace": "default"})
    runtime = PodRuntime(tmp_path / "state")
    await runtime.start([long_pod])
    try:
        assert (await run(runtime, ["hostname"], pod=long_pod, container="db")).text == "a" * 62 + "\n"
    finally:
        await runtime.close()


async def test_users(runtime: PodRuntime) -> None:
    root = await run(runtime, ["sh", "-c", "id; grep CapEff /proc/self/status"])
    assert root.text.splitlines() == ["uid=0(root) gid=0(root) groups=0(root)", "CapEff:\t0000000000000000"]
    user = await run(
        runtime, ["sh", "-c", "id; echo $HOME; touch $HOME/f /tmp/f && echo wrote"], container="side"
    )
    assert user.text.splitlines() == [
        "uid=1000(user) gid=1000(user) groups=1000(user)",
        "/home/user",
        "wrote",
    ]


async def test_clean_environment(runtime: PodRuntime) -> None:
    env = await run(runtime, ["env"])
    assert sorted(env.text.splitlines()) == [
        "GREETING=hello world",
        "HOME=/root",
        "HOSTNAME=web-0",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PWD=/srv/app",  # bwrap's, as a shell would set it
    ]
    with_tty = await run(runtime, ["env"], tty=True)
    assert sorted(with_tty.text.split("\r\n")[:-1]) == sorted([*env.text.splitlines(), "TERM=xterm"])


async def test_working_directory_from_the_spec(runtime: PodRuntime) -> None:
    assert (await run(runtime, ["pwd"])).text == "/srv/app\n"
    assert (await run(runtime, ["pwd"], container="side")).text == "/\n"


async def test_own_pid_namespace(runtime: PodRuntime) -> None:
    result = await run(runtime, ["sh", "-c", f"echo $$; ls /proc | grep -c '^[0-9]'; kill -0 {os.getpid()}"])
    lines = result.text.splitlines()
    assert lines[0] == "2"  # bwrap's init is PID 1, the command PID 2
    assert int(lines[1]) <= 5  # init, sh, ls, grep: nothing of the host
    assert result.status != 0  # the test process is not there to signal


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-program"], 'exec: "no-such-program": executable file not found in $PATH'),
        (["/no/such"], 'exec: "/no/such": stat /no/such: no such file or directory'),
        (["/tmp"], 'exec: "/tmp": stat /tmp: is a directory'),
        (["/etc/passwd"], 'exec: "/etc/passwd": stat /etc/passwd: permission denied'),
        # The test's Python exists on the host but not in the container.
        ([sys.executable], f'exec: "{sys.executable}": stat {sys.executable}: no such file or directory'),
        ([], "no command given"),
    ],
)
async def test_exec_failed(runtime: PodRuntime, argv: list[str], message: str) -> None:
    if argv and argv[0] == sys.executable and sys.executable.startswith("/usr/"):
        pytest.skip("this Python is part of the container's /usr")
    with pytest.raises(ExecFailed) as failed:
        await runtime.exec(WEB, "app", argv, tty=False, stdin=False)
    assert str(failed.value) == message


async def test_symlinks_are_followed_inside_the_container(runtime: PodRuntime) -> None:
    # A container's symlink to an absolute path means that path in the container, never the host's.
    host_only = os.path.realpath(sys.executable)
    if host_only.startswith("/usr/"):
        pytest.skip("this Python is part of the container's /usr")
    assert (await run(runtime, ["ln", "-s", host_only, "/tmp/py"])).status == 0
    with pytest.raises(ExecFailed, match="no such file or directory"):
        await runtime.exec(WEB, "app", ["/tmp/py"], tty=False, stdin=False)
    assert (await run(runtime, ["ln", "-s", "/usr/bin/printf", "/tmp/p"])).status == 0
    assert (await run(runtime, ["/tmp/p", "via link"])).text == "via link"


async def test_exec_into_what_does_not_run(runtime: PodRuntime, tmp_path: Path) -> None:
    with pytest.raises(ExecFailed, match="pod default/later is not running"):
        await runtime.exec(PENDING, "app", ["true"], tty=False, stdin=False)
    assert not pod_dir(tmp_path, pod="later").exists()
    with pytest.raises(ExecFailed, match="container nope is not valid for pod web-0"):
        await runtime.exec(WEB, "nope", ["true"], tty=False, stdin=False)


async def test_invalid_environment_fails_the_exec(tmp_path: Path) -> None:
    pod = DB.model_copy(
        update={"containers": [DB.containers[0].model_copy(update={"env": {"BAD=NAME": "x"}})]}
    )
    runtime = PodRuntime(tmp_path / "state")
    await runtime.start([pod])
    try:
        with pytest.raises(ExecFailed, match="invalid environment variable 'BAD=NAME' in container db"):
            await runtime.exec(pod, "db", ["true"], tty=False, stdin=False)
    finally:
        await runtime.close()
