"""Date and time formats: every time with seconds and its time zone (what finance staff
reconcile against)."""
