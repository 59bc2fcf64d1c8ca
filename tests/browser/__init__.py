"""Browser tests: the finance admin in Debian chromium."""
