"""The dev cluster of these tests runs tests/devcluster/pods.yaml."""

import pytest

from tests.devcluster.common import PODS


@pytest.fixture(scope="module")
def devcluster_pods() -> str:
    return PODS.read_text()
