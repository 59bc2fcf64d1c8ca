"""Providers whose system is a folder on an SFTP server (Stampli's exports), on paramiko.

The server must prove it is the one configured: its host key (a ``known_hosts`` line or just
``type base64``) is kept on the connection, and a server presenting another key, or any key when
none is kept yet, is refused (the refusal names the key's SHA-256 fingerprint so an
administrator can compare it with the one the system's owner publishes).  On first use the key
can be left blank: *Test connection* then shows the fingerprint the server presents, and the
admin action that trusts it pins that key once the administrator has confirmed the fingerprint.
Authentication is a password or a private key (with an optional passphrase), never an agent or
keys found on this machine.  Every operation has a connect and a read timeout.

Errors are mapped onto the same family as HTTP providers: refused credentials or host key →
``AuthFailed``; unreachable, timed out, dropped connection → ``Transient`` (retried a few times
with full jitter when connecting); a missing path → ``NotFound``; permission denied or a file
over the size limit → ``Rejected``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import logging
import socket
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paramiko
import tenacity
from django.core.exceptions import ValidationError

from connections.providers.base import CheckResult, Provider
from connections.providers.errors import ApiError, AuthFailed, NotFound, Rejected, Transient
from connections.providers.spec import (
    ConnectionSpec,
    FieldSpec,
    patience_settings,
    positive_int,
    text,
)

if TYPE_CHECKING:
    from connections.models import Connection

logger = logging.getLogger(__name__)

KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
MAX_FILE_BYTES = 50 * 1024 * 1024


def host_key_line(value: Any) -> str:
    """A ``known_hosts`` line (``[host]:port type base64``) or just ``type base64``."""
    value = text(value)
    try:
        parse_host_key(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return value


def parse_host_key(value: str) -> paramiko.PKey:
    """The public key in a known_hosts line; ``ValueError`` with a readable reason."""
    parts = value.split()
    if len(parts) >= 3 and not parts[0].startswith(("ssh-", "ecdsa-")):
        parts = parts[1:]  # drop the host name field
    if len(parts) < 2:
        raise ValueError("Paste the server's key as “ssh-ed25519 AAAA…” (a known_hosts line).")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except Exception:
        raise ValueError(f"“{parts[0]} …” is not a public key paramiko can read.") from None


def _one_of_password_or_key(creds: dict[str, str]) -> None:
    if not creds.get("password") and not creds.get("private_key"):
        raise ValidationError("Give either a password or a private key.")


def sftp_spec(*extra_settings: FieldSpec, remote_dir: str = "/outbound") -> ConnectionSpec:
    """The credentials and settings of an SFTP connection (a system adds its own settings)."""
    return ConnectionSpec(
        credentials=(
            FieldSpec("password", "Password", required=False),
            FieldSpec("private_key", "Private key (PEM)", required=False, multiline=True),
            FieldSpec("private_key_passphrase", "Private key passphrase", required=False),
        ),
        check_credentials=_one_of_password_or_key,
        settings=(
            FieldSpec("host", "Host", secret=False),
            FieldSpec("port", "Port", secret=False, default=22, clean=positive_int),
            FieldSpec("username", "Username", secret=False),
            FieldSpec(
                "host_key",
                "Server host key",
                secret=False,
                required=False,
                clean=host_key_line,
                help="The server's public key (a known_hosts line, or “ssh-ed25519 AAAA…”). "
                "Connections to a server presenting another key are refused. Blank on first "
                "use: Test connection shows the key's fingerprint, and the action “Trust the "
                "SFTP server's host key” pins it once you have confirmed it.",
            ),
            FieldSpec("remote_dir", "Folder", secret=False, default=remote_dir),
            *patience_settings(
                connect_timeout=10.0,
                attempts=3,
                attempts_label="Connection attempts",
                attempts_help="Attempts to connect when the server is unreachable or drops "
                "the connection.",
            ),
            *extra_settings,
        ),
    )


@dataclass(frozen=True)
class RemoteFile:
    """A file in a remote folder."""

    name: str
    path: str
    size: int
    modified: int  # Unix time


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as OpenSSH shows a key's fingerprint (``ssh-keygen -l``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyNotTrusted(AuthFailed):
    """The server presented a key that is not the one kept on the connection (or none is)."""

    def __init__(self, message: str, key: paramiko.PKey) -> None:
        super().__init__(message)
        self.key = key
        self.fingerprint = fingerprint(key)
        self.line = f"{key.get_name()} {key.get_base64()}"


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """Refuses every server whose key is not the configured one, naming what it presented."""

    def __init__(self, configured: bool) -> None:
        self.configured = configured

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        shown = f"{key.get_name()} {fingerprint(key)}"
        if not self.configured:
            raise HostKeyNotTrusted(
                f"The SFTP server {hostname} presents the host key {shown}, which is not "
                "trusted yet: once the system's owner confirms this fingerprint, run “Trust "
                "the SFTP server's host key” on this connection.",
                key,
            )
        raise HostKeyNotTrusted(
            f"The SFTP server {hostname} presented the host key {shown}, which is not the "
            "configured one: connection refused. If the system's owner confirms the server's "
            "key changed, trust the new one on this connection.",
            key,
        )


class SftpProvider(Provider):
    """A provider whose transport is SFTP (paramiko)."""

    def __init__(
        self,
        connection: Connection,
        *,
        sleep: Callable[[float], None] | None = None,
        **_: Any,
    ) -> None:
        super().__init__(connection)
        self._sleep = sleep or tenacity.nap.sleep
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self.connection.setting("host"))

    @property
    def port(self) -> int:
        return int(self.connection.setting("port", 22))

    @property
    def remote_dir(self) -> str:
        return str(self.connection.setting("remote_dir") or ".")

    def sftp(self) -> paramiko.SFTPClient:
        """The open SFTP session, connecting (with retries on transient failures) if need be."""
        if self._sftp is None:
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(int(self.connection.setting("max_attempts", 3))),
                wait=tenacity.wait_random_exponential(multiplier=0.5, max=10),
                retry=tenacity.retry_if_exception_type(Transient),
                sleep=self._sleep,
                reraise=True,
            )
            self._sftp = retrying(self._connect)
        return self._sftp

    def _connect(self) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        host_key = self.connection.setting("host_key")
        client.set_missing_host_key_policy(_PinnedHostKey(bool(host_key)))
        if host_key:
            key = parse_host_key(str(host_key))
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            client.get_host_keys().add(name, key.get_name(), key)
        creds = self.connection.credentials or {}
        timeout = float(self.connection.setting("connect_timeout", 10.0))
        with self._errors("connect to"):
            client.connect(
                self.host,
                port=self.port,
                username=str(self.connection.setting("username")),
                password=creds.get("password") or None,
                pkey=self._private_key(creds),
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                look_for_keys=False,
                allow_agent=False,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(float(self.connection.setting("read_timeout", 30.0)))
        self._client = client
        return sftp

    @staticmethod
    def _private_key(creds: dict[str, str]) -> paramiko.PKey | None:
        pem = creds.get("private_key")
        if not pem:
            return None
        passphrase = creds.get("private_key_passphrase") or None
        for key_class in KEY_CLASSES:
            try:
                return key_class.from_private_key(io.StringIO(pem), password=passphrase)
            except paramiko.PasswordRequiredException:
                raise AuthFailed("The private key needs its passphrase.") from None
            except paramiko.SSHException:
                continue
        raise AuthFailed("The private key is not one paramiko can read (Ed25519, ECDSA, RSA).")

    @contextmanager
    def _errors(self, doing: str, path: str = "") -> Iterator[None]:
        """Map socket, SSH and SFTP errors onto the provider error family (redacted), and
        note whether the server could be used (a missing file is an answer, not a failure)."""
        try:
            with self._mapped(doing, path):
                yield
        except (AuthFailed, Transient) as exc:
            self.note_use(False, exc.message)
            raise
        except ApiError:
            self.note_use(True)
            raise
        self.note_use(True)

    @contextmanager
    def _mapped(self, doing: str, path: str = "") -> Iterator[None]:
        where = f"{doing} {path or self.host}".strip()
        try:
            yield
        except ApiError:
            raise
        except paramiko.AuthenticationException:
            raise AuthFailed(
                f"The SFTP server {self.host} refused the username, password or key."
            ) from None
        except paramiko.BadHostKeyException as exc:
            raise HostKeyNotTrusted(
                f"The SFTP server {self.host} presented the host key {exc.key.get_name()} "
                f"{fingerprint(exc.key)}, not the configured one: connection refused. If the "
                "system's owner confirms the server's key changed, trust the new one on this "
                "connection.",
                exc.key,
            ) from None
        except FileNotFoundError:
            raise NotFound(f"Could not {where}: no such file or folder.") from None
        except PermissionError:
            raise Rejected(f"Could not {where}: permission denied on the server.") from None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise NotFound(f"Could not {where}: no such file or folder.") from None
            if exc.errno == errno.EACCES:
                raise Rejected(f"Could not {where}: permission denied on the server.") from None
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc)
            raise Transient(
                self.redactor.text(f"Could not {where} on {self.host}:{self.port}: {reason}")
            ) from None
        except (paramiko.SSHException, EOFError) as exc:
            raise Transient(
                self.redactor.text(f"Could not {where} on {self.host}:{self.port}: {exc}")
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    # -- files ------------------------------------------------------------------------------

    def list_files(self, folder: str | None = None) -> list[RemoteFile]:
        """The regular files in ``folder`` (the connection's folder by default), by name."""
        folder = folder or self.remote_dir
        sftp = self.sftp()
        with self._errors("list", folder):
            entries = sftp.listdir_attr(folder)
        files = [
            RemoteFile(
                e.filename,
                f"{folder.rstrip('/')}/{e.filename}",
                int(e.st_size or 0),
                int(e.st_mtime or 0),
            )
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode)
        ]
        return sorted(files, key=lambda f: f.name)

    def read_file(self, path: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """A whole file; ``Rejected`` if it is larger than ``max_bytes``."""
        sftp = self.sftp()
        with self._errors("read", path), sftp.open(path, "rb") as handle:
            size = handle.stat().st_size or 0
            if size > max_bytes:
                raise Rejected(f"{path} is {size} bytes, over the {max_bytes}-byte limit.")
            handle.prefetch(size)
            return handle.read(max_bytes + 1)[: max_bytes + 1]

    def move_file(self, path: str, folder: str) -> str:
        """Move ``path`` into ``folder`` (created if missing); returns the new path."""
        sftp = self.sftp()
        target = f"{folder.rstrip('/')}/{path.rsplit('/', 1)[-1]}"
        with self._errors("move", path):
            try:
                sftp.stat(folder)
            except FileNotFoundError:
                sftp.mkdir(folder)
            sftp.posix_rename(path, target)
        return target

    def presented_host_key(self) -> tuple[str, str]:
        """The key the server presents now, as (``type base64``, its SHA-256 fingerprint),
        without trusting it and without logging in."""
        timeout = float(self.connection.setting("connect_timeout", 10.0))
        with (
            self._errors("connect to"),
            socket.create_connection((self.host, self.port), timeout) as sock,
        ):
            transport = paramiko.Transport(sock)
            try:
                transport.banner_timeout = timeout
                transport.start_client(timeout=timeout)
                key = transport.get_remote_server_key()
            finally:
                transport.close()
        return f"{key.get_name()} {key.get_base64()}", fingerprint(key)

    def probe(self) -> CheckResult:
        """Connect, authenticate and list the folder."""
        files = self.list_files()
        return CheckResult(
            True,
            f"Connected to {self.host} as {self.connection.setting('username')}: "
            f"{len(files)} file(s) in {self.remote_dir}.",
        )
