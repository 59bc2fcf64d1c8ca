"""Stripe: the client (official library on our HTTP core), credentials and signed webhooks."""

from connections.providers.stripe.client import EVENT_TYPES, StripeProvider

__all__ = ["EVENT_TYPES", "StripeProvider"]
