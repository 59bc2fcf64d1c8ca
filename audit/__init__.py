"""The audit trail, the posting ledger (exactly-once effects), the review queue and replay."""
