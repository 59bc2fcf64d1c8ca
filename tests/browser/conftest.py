"""The browser tests' shared fixtures: Debian's chromium and a payment waiting for review."""

from tests.browser.test_finance_admin import browser, flagged  # noqa: F401  (fixtures)
