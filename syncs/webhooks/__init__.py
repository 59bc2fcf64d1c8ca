"""Inbound webhooks: verify the signature on the raw body, store, acknowledge, process later."""
