import os
import shutil

import pytest


def _ngspice_or_skip():
    """The ngspice CLI; CI installs it, so there a missing binary is a failure, not a skip."""
    exe = shutil.which("ngspice")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("ngspice is not installed (CI must install it: apt-get install ngspice libngspice0-dev)")
        pytest.skip("ngspice CLI not installed")
    return exe


@pytest.fixture(scope="session")
def ngspice():
    return _ngspice_or_skip()
