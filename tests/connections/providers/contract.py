"""The contract every provider passes (in the spirit of allauth's shared OAuth2 test mixin).

A provider's tests subclass ``ProviderContract``, name the provider, and give three fixtures —
``connection`` (a saved connection to a running simulator), ``simulator`` (its fault queue)
and ``sleeps`` — plus a few hooks: how to break its credentials, how to make it unreachable,
what its secrets look like in free text, and for systems that send webhooks, how a delivery is
signed.  The contract then checks: it is registered with a complete spec; ``check()`` passes,
fails plainly when the system is unreachable and when the credentials are refused (echoing no
secret); a 429 with ``Retry-After`` is waited out; its secrets are redacted; webhook
verification accepts a validly signed event and refuses tampered or unsigned ones.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from connections import redaction
from connections.forms import connection_form_for
from connections.models import Connection
from connections.providers.base import InboundEvent, Provider, WebhookRejected
from connections.providers.registry import SYSTEMS, client_for


class ProviderContract:
    """Mix into a test class; see the module docstring for what to supply."""

    provider: ClassVar[type[Provider]]
    secret_examples: ClassVar[tuple[str, ...]] = ()  # secret-shaped text that must be masked
    rate_limit_subject: ClassVar[str | None] = None  # fault match hit by check(); None: no 429s
    refused_words: ClassVar[str] = "refused"  # what a refused-credentials message says

    # -- hooks ------------------------------------------------------------------------------

    def break_credentials(self, connection: Connection) -> str:
        """Make the stored credentials wrong; return the wrong secret value."""
        raise NotImplementedError

    def make_unreachable(self, connection: Connection) -> None:
        """Point the connection at an address where nothing answers."""
        raise NotImplementedError

    def signed_delivery(self, connection: Connection, body: bytes) -> dict[str, str]:
        """The headers a real delivery of ``body`` would carry (systems with webhooks)."""
        raise NotImplementedError

    def event_body(self) -> dict[str, Any]:
        """A well-formed event of this system (systems with webhooks)."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    def client(self, connection: Connection, sleeps: list[float]) -> Provider:
        return client_for(Connection.objects.get(pk=connection.pk), sleep=sleeps.append)

    # -- the contract -----------------------------------------------------------------------

    def test_it_is_registered_with_a_complete_spec(self, connection: Connection) -> None:
        provider = self.provider
        assert SYSTEMS[provider.kind] is provider and provider.label
        assert connection_form_for(provider.kind).provider is provider
        for spec in provider.spec.credentials:
            if spec.secret:
                assert redaction.is_secret_key(spec.name), f"{spec.name} would show in payloads"
        for spec in provider.spec.settings:
            if spec.default is not None:
                spec.clean(spec.default)  # every default passes its own validation

    def test_check_passes(self, connection: Connection, sleeps: list[float]) -> None:
        result = self.client(connection, sleeps).check()
        assert result.ok, result

    def test_check_fails_plainly_when_unreachable(
        self, connection: Connection, sleeps: list[float]
    ) -> None:
        self.make_unreachable(connection)
        result = self.client(connection, sleeps).check()
        assert not result.ok and result.message
        assert "Traceback" not in result.message
        for secret in Connection.objects.get(pk=connection.pk).secret_values():
            if len(secret) >= 4:
                assert secret not in result.message

    def test_refused_credentials_fail_the_check_without_echoing_them(
        self, connection: Connection, sleeps: list[float]
    ) -> None:
        wrong = self.break_credentials(connection)
        result = self.client(connection, sleeps).check()
        assert not result.ok
        assert self.refused_words in result.message.lower(), result.message
        assert wrong not in " ".join([result.message, *result.details])

    def test_a_429_with_retry_after_is_waited_out(
        self, connection: Connection, simulator: Any, sleeps: list[float]
    ) -> None:
        if self.rate_limit_subject is None:
            pytest.skip(f"{self.provider.label} has no rate-limit answer")
        simulator.faults.add("status", status=429, retry_after=2, match=self.rate_limit_subject)
        result = self.client(connection, sleeps).check()
        assert result.ok, result
        assert any(s >= 1.9 for s in sleeps), sleeps  # told to wait 2 s, it waited 2 s

    def test_its_secrets_are_redacted(self, connection: Connection, sleeps: list[float]) -> None:
        client = self.client(connection, sleeps)
        public = self.provider.spec.public_credentials()
        for name, value in connection.credentials.items():
            if name not in public and len(str(value)) >= 4:
                assert str(value) not in client.redactor.text(f"failed near {value}!")
        for example in self.secret_examples:
            assert example not in redaction.scrub_text(f"error: {example} refused"), example

    def test_webhooks_are_verified(self, connection: Connection) -> None:
        client = client_for(connection)
        if not self.provider.sends_webhooks():
            with pytest.raises(WebhookRejected) as refused:
                client.verify_webhook(b"{}", {})
            assert refused.value.status == 404
            return
        body = json.dumps(self.event_body()).encode()
        headers = self.signed_delivery(connection, body)
        event = client.verify_webhook(body, headers)
        assert isinstance(event, InboundEvent) and event.id and event.type
        assert event.payload == json.loads(body)
        tampered = body + b" "
        with pytest.raises(WebhookRejected):
            client.verify_webhook(tampered, headers)
        with pytest.raises(WebhookRejected):
            client.verify_webhook(body, {})
