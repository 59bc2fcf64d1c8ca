"""Settings for a real ``qcluster`` started by a test: the test database, tasks not inline."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS, Q_CLUSTER

DATABASES["default"]["NAME"] = os.environ["MLC_TEST_DB_NAME"]
DATABASES["default"].pop("TEST", None)
Q_CLUSTER = {**Q_CLUSTER, "sync": False, "workers": 1, "poll": 0.2}  # same queue name
INSTALLED_APPS = [*INSTALLED_APPS, "tests.apps.TestFlowsConfig"]
