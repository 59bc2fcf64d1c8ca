"""Settings for the test suite: the product's settings with tasks run inline and fixed keys."""

import uuid

from mlconnector.settings import *  # noqa: F403
from mlconnector.settings import DATABASES, LOGGING, MLC, Q_CLUSTER, VAR_DIR

# Tasks run in the calling process (services still enqueue through django-q2's API).
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
FERNET_KEYS = ["test-key-0123456789abcdef0123456789abcdef"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Rate-limit buckets in Redis outlive a test session: each session gets its own keys.
MLC = {
    **MLC,
    "LEDGER_BUSY_WAIT_SECONDS": 20,
    # Loads run inline unless a test asks for more: a load thread has its own database
    # connection, which cannot see a test's uncommitted rows.  Concurrency tests use
    # transactional_db and set "max_in_flight" on the target connection.
    "MAX_IN_FLIGHT": 1,
    "RATE_LIMIT_PREFIX": f"mlc:test:{uuid.uuid4().hex[:12]}:",
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so threads and forked processes share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
LOGGING = {**LOGGING, "loggers": {**LOGGING["loggers"], "werkzeug": {"level": "WARNING"}}}
