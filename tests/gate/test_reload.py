"""SIGHUP reloads the policy files: new sessions follow the new policy; a broken one is not taken."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import DevClusterProcess
from tests.gate.helpers import wait_until
from tests.gatekit import Keys, start_gate, stop_process


def test_sighup_reloads_the_policy_and_audits_it(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevClusterProcess, keys: Keys
) -> None:
    gate = start_gate(tmp_path_factory.mktemp("reload"), cluster, keys)
    policy = gate.dir / "policy.yaml"
    try:
        assert gate.ssh("default/web-0", "true").returncode == 0

        def reload(text: str) -> dict[str, object]:
            seen = len(gate.events("policy_reload"))
            policy.write_text(text)
            gate.proc.send_signal(signal.SIGHUP)
            return wait_until(lambda: gate.events("policy_reload")[seen:], what="a policy_reload event")[0]

        broken = reload("rules:\n  - id: x\n    bogus: 1\n")
        assert broken["result"] == "error" and "policy.yaml:2: rules[0]" in str(broken["error"])
        assert gate.ssh("default/web-0", "true").returncode == 0  # the running policy stayed

        done = reload("rules:\n  - id: only-bob\n    subjects: {users: [bob]}\n    shell: true\n")
        assert (done["result"], done["rules"]) == ("ok", 1)
        denied = gate.ssh("default/web-0", "true")
        assert denied.returncode == 255 and b"access denied" in denied.stderr
    finally:
        stop_process(gate.proc)
