"""Services for connections: testing a connection, re-encrypting secrets with the first key,
rotating the secret key of a system that can (capability ``RotatesKeys``) on the schedule its
connection sets."""

from __future__ import annotations

import copy
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from connections.models import Connection, KeyRotation, OAuthToken
from connections.providers import plain
from connections.providers.base import CheckResult
from connections.providers.capabilities import RotatedSecretUnreadable, RotatesKeys
from connections.providers.errors import ApiError, OutcomeUnknown
from connections.redaction import Redactor

logger = logging.getLogger(__name__)


def secrets_reencrypt() -> dict[str, int]:
    """Rewrite every encrypted column with the first key of ``FERNET_KEYS``.

    Run after putting a new key first: once it has run, the old keys can be removed.
    """
    counts = {"connections": 0, "oauth_tokens": 0}
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().order_by("pk"):
            connection.save(update_fields=["credentials"])
            counts["connections"] += 1
        for token in OAuthToken.objects.select_for_update().order_by("pk"):
            token.save(update_fields=["access_token", "refresh_token"])
            counts["oauth_tokens"] += 1
    logger.info("Re-encrypted %s", counts)
    return counts


# A test is answered within about ten seconds: one attempt, short timeouts, and at most 4 s
# waiting for a slot under the system's rate limit that the integrations' runs share (a run
# keeps the connection's own, patient settings).
CHECK_SETTINGS = {
    "connect_timeout": 3.0,
    "read_timeout": 5.0,
    "max_attempts": 1,
    "max_retry_seconds": 4,
}


def quick(connection: Connection) -> Connection:
    """``connection`` (unsaved changes included) with the quick settings of a test: for
    checks a person waits for; the connection itself is left as it is."""
    probe = copy.copy(connection)
    probe.settings = {**(connection.settings or {}), **CHECK_SETTINGS}
    return probe


def connection_check(*, connection: Connection) -> CheckResult:
    """Authenticate against the remote, within about ten seconds, and record the outcome on
    the connection: a plain message, the technical detail kept apart."""
    from connections.providers.registry import client_for

    try:
        result = client_for(quick(connection)).check()
    except LookupError as exc:
        result = CheckResult(False, str(exc))
    except Exception as exc:
        logger.exception("Checking %s failed", connection.slug)
        result = CheckResult(
            False,
            "The test stopped on an unexpected error in ml-connector.",
            [f"{type(exc).__name__}: {exc}"],
        )
    redact = Redactor(connection.secret_values())
    message = redact.text("\n".join([result.message, *result.details]))[:4000]
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.OK if result.ok else Connection.Status.FAILING,
        last_checked_at=timezone.now(),
        last_check_message=message,
    )
    return CheckResult(
        result.ok, redact.text(result.message), [redact.text(d) for d in result.details]
    )


# -- key rotation (systems with the capability RotatesKeys) ----------------------------------

ROTATION_TASK = "connections.tasks.rotate_due_keys"
ROTATION_SCHEDULE = "mlc:key-rotation"
ROTATION_LEASE = timedelta(minutes=5)  # how long one worker may hold a rotation under way
RETRY_FAILED_AFTER = timedelta(days=1)  # a refused rotation is tried again a day later
R = KeyRotation.Status


def schedule_every(*, name: str, func: str, minutes: int) -> Schedule:
    """The django-q2 schedule ``name`` that calls ``func`` every ``minutes``, forever (created,
    or brought back in step)."""
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": func,
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
    return schedule


def key_rotation_schedule_ensure() -> Schedule:
    """The schedule that rotates keys when their connection says they are due (every 15 min)."""
    return schedule_every(name=ROTATION_SCHEDULE, func=ROTATION_TASK, minutes=15)


def _rotator(connection: Connection) -> Any:
    """The connection's client, when its system rotates keys (None otherwise)."""
    from connections.providers.registry import capable, client_for

    if not capable(connection.kind, RotatesKeys):
        return None
    return client_for(connection)


def key_rotation_due(*, connection: Connection, now: datetime | None = None) -> bool:
    """Whether the connection's schedule asks for a rotation now (or one is left unfinished)."""
    now = now or timezone.now()
    client = _rotator(connection)
    if client is None:
        return False
    try:
        key_id, days, _grace = client.key_rotation_policy()
    finally:
        client.close()
    latest = connection.key_rotations.order_by("-started_at").first()
    if latest is not None and latest.status == R.PENDING:  # unfinished: resumed, schedule or not
        return latest.lease_until is None or latest.lease_until <= now
    if not days or not key_id:
        return False
    if latest is None:
        return connection.created_at + timedelta(days=days) <= now
    if latest.status == R.FAILED:
        return (latest.finished_at or latest.started_at) + RETRY_FAILED_AFTER <= now
    last_done = connection.key_rotations.filter(status=R.DONE).order_by("-finished_at").first()
    since = last_done.finished_at if last_done and last_done.finished_at else latest.started_at
    return since + timedelta(days=days) <= now


def keys_rotate_due() -> dict[str, int]:
    """What the rotation schedule runs: every connection whose key is due."""
    from connections.providers.registry import SYSTEMS, capable

    kinds = [kind for kind in SYSTEMS if capable(kind, RotatesKeys)]
    counts = {"rotated": 0, "not_finished": 0, "failed": 0}
    for connection in Connection.objects.filter(kind__in=kinds).order_by("pk"):
        if not key_rotation_due(connection=connection):
            continue
        rotation = key_rotate(connection=connection, requested_by="schedule")
        counts[
            {R.DONE: "rotated", R.PENDING: "not_finished", R.FAILED: "failed"}[rotation.status]
        ] += 1
    return counts


def _claim_rotation(
    connection: Connection, requested_by: str, now: datetime
) -> tuple[KeyRotation, bool]:
    """The rotation under way for ``connection`` (made now if there is none) and whether this
    worker now holds its lease (False: another worker is rotating right now)."""
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        rotation = KeyRotation.objects.filter(connection=locked, status=R.PENDING).first()
        if rotation is not None and rotation.lease_until and rotation.lease_until > now:
            return rotation, False
        if rotation is None:
            client = _rotator(locked)
            try:
                key_id, _days, grace = client.key_rotation_policy()
                private = client.new_rotation_secret()
            finally:
                client.close()
            rotation = KeyRotation(
                connection=locked,
                requested_by=requested_by[:150],
                old_key_id=key_id,
                grace_minutes=grace,
                idempotency_key=f"mlc-rotate-{uuid.uuid4().hex}",
                private_key=private,
            )
        rotation.lease_until = now + ROTATION_LEASE
        rotation.attempts += 1
        rotation.save()
        return rotation, True


def _close_rotation(rotation: KeyRotation, status: str, message: str, **fields: object) -> None:
    rotation.status = status
    rotation.message = message
    rotation.lease_until = None
    if status != R.PENDING:
        rotation.finished_at = timezone.now()
        rotation.private_key = ""  # the new secret is stored or lost: nothing left to read
    for name, value in fields.items():
        setattr(rotation, name, value)
    rotation.save()


def key_rotate(*, connection: Connection, requested_by: str = "") -> KeyRotation:
    """Rotate the connection's secret key (its system has the capability ``RotatesKeys``): a
    new key is made, its secret stored in place of the old one, and the old key keeps working
    for the connection's grace period so that runs under way finish with it (and a run that
    meets the expired key picks up the new one).  Safe to call from many workers at once, and
    again after a lost answer: the same rotation is asked for with the same idempotency key and
    one-off key pair."""
    client = _rotator(connection)
    if client is None:
        raise ValueError(f"The keys of {connection.name} are not rotated by ml-connector.")
    system = plain.system_name(client)
    client.close()
    now = timezone.now()
    rotation, mine = _claim_rotation(connection, requested_by, now)
    if not mine:
        return rotation
    if not rotation.old_key_id:
        _close_rotation(
            rotation,
            R.FAILED,
            "The connection has no API key id (ak_…): add it to the connection's settings, "
            "then rotate again.",
        )
        return rotation
    expires = rotation.started_at + timedelta(minutes=rotation.grace_minutes)
    redact = Redactor(connection.secret_values())
    client = _rotator(connection)
    try:
        new_id, secret = client.rotate_key(
            rotation.old_key_id,
            grace_minutes=rotation.grace_minutes,
            sealed_to=rotation.private_key,
            label=f"mlc-rotation-{rotation.pk}",
            idempotency_key=rotation.idempotency_key,
        )
        works = client.key_works(secret)
    except (OutcomeUnknown, ApiError) as exc:
        if isinstance(exc, OutcomeUnknown) or exc.retryable:
            _close_rotation(
                rotation,
                R.PENDING,
                f"Not finished: {system} could not be reached or did not answer "
                f"({redact.text(exc.message)[:300]}). It is asked again on the next check — the "
                "same rotation, not a second one.",
            )
            return rotation
        _close_rotation(
            rotation,
            R.FAILED,
            f"{system} refused to rotate the key: {redact.text(exc.message)[:400]}. The current "
            "key is unchanged.",
        )
        return rotation
    except RotatedSecretUnreadable as exc:
        _close_rotation(
            rotation,
            R.FAILED,
            f"{system} made a new key but ml-connector could not read its secret ({exc}). The "
            f"old key stops working at {expires:%Y-%m-%d %H:%M:%S %Z}: create a key in "
            f"{system} and enter it on this connection before then.",
            old_key_expires_at=expires,
        )
        return rotation
    finally:
        client.close()
    if not works or not new_id:
        _close_rotation(
            rotation,
            R.FAILED,
            f"{system} made a new key but it was refused when tried. The old key stops working "
            f"at {expires:%Y-%m-%d %H:%M:%S %Z}: check the keys in {system}.",
            old_key_expires_at=expires,
            new_key_id=new_id[:100],
        )
        return rotation
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        credentials, settings = client.rotated_values(new_id, secret)
        locked.credentials = {**(locked.credentials or {}), **credentials}
        locked.settings = {**(locked.settings or {}), **settings}
        locked.save(update_fields=["credentials", "settings", "updated_at"])
        _close_rotation(
            rotation,
            R.DONE,
            f"New key {new_id} stored; the old key {rotation.old_key_id} keeps working until "
            f"{expires:%Y-%m-%d %H:%M:%S %Z}.",
            new_key_id=new_id[:100],
            old_key_expires_at=expires,
        )
    connection.refresh_from_db(fields=["credentials", "settings"])
    logger.info(
        "Rotated the %s key of %s (%s → %s)", system, connection.slug, rotation.old_key_id, new_id
    )
    return rotation


# -- SFTP host keys ---------------------------------------------------------------------------


def sftp_host_key_presented(*, connection: Connection) -> tuple[str, str]:
    """The host key an SFTP connection's server presents now: (``type base64``, fingerprint)."""
    from connections.providers.registry import client_for
    from connections.providers.sftp import SftpProvider

    client = client_for(connection)
    if not isinstance(client, SftpProvider):
        raise ValueError("Only an SFTP connection has a host key.")
    try:
        return client.presented_host_key()
    finally:
        client.close()


def _server(connection: Connection) -> tuple[str, int] | None:
    """The SFTP server (host, port) a connection reaches, or None for one that is not SFTP."""
    settings = connection.settings or {}
    if "host_key" not in settings and "host" not in settings:
        return None
    try:
        return str(settings.get("host") or "").strip().lower(), int(settings.get("port") or 22)
    except (TypeError, ValueError):
        return None


def sftp_same_server(*, host: str, port: int, exclude: int | None = None) -> list[Connection]:
    """Every SFTP connection to ``host``:``port`` (a server is one, however many accounts)."""
    wanted = (str(host).strip().lower(), int(port))
    return [
        c for c in Connection.objects.exclude(pk=exclude).order_by("pk") if _server(c) == wanted
    ]


def sftp_known_host_key(*, host: str, port: int, exclude: int | None = None) -> str:
    """The host key already trusted for ``host``:``port`` by another connection ("" if none)."""
    for other in sftp_same_server(host=host, port=port, exclude=exclude):
        key = str((other.settings or {}).get("host_key") or "")
        if key:
            return key
    return ""


def sftp_host_key_trust(*, connection: Connection, fingerprint: str) -> str:
    """Pin the key the server presents — only when it is the one whose ``fingerprint`` the
    administrator confirmed — on this connection and every other connection to the same host
    and port (trusting a server is about the server, not one account on it).  Returns what
    happened, in plain words."""
    line, presented = sftp_host_key_presented(connection=connection)
    if presented != fingerprint.strip():
        return (
            f"The server now presents {presented}, not the one you confirmed "
            f"({fingerprint.strip()[:60]}): nothing was trusted. Check with the system's owner."
        )
    server = _server(connection)
    others = (
        sftp_same_server(host=server[0], port=server[1], exclude=connection.pk) if server else []
    )
    with transaction.atomic():
        for pk in [connection.pk, *(o.pk for o in others)]:
            locked = Connection.objects.select_for_update().get(pk=pk)
            locked.settings = {**(locked.settings or {}), "host_key": line}
            locked.save(update_fields=["settings", "updated_at"])
    logger.info("Trusted the host key %s of %s (+%d)", presented, connection.slug, len(others))
    also = (
        f" It now applies to {len(others)} other connection(s) to this server too: "
        + ", ".join(o.name for o in others)
        + "."
        if others
        else ""
    )
    return f"Trusted the host key {presented}: connections to another key are refused.{also}"
