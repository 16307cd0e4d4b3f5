"""Object rendering details: kubectl's AGE format and stable uids."""

import pytest

from sshgate.devcluster.objects import human_duration, uid_of


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (730 * 86400, "2y"),
        (3000 * 86400, "8y"),
    ],
)
def test_age_like_kubectl(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_uids_are_stable_and_distinct() -> None:
    assert uid_of("Pod", "default", "web-0") == uid_of("Pod", "default", "web-0")
    assert uid_of("Pod", "default", "web-0") != uid_of("Pod", "prod", "web-0")
