"""A real SFTP server on loopback (asyncssh), serving one folder as its root.

Used by the SFTP provider's tests and by the simulators of file-based systems (Stampli): the
client under test speaks real SSH and SFTP to it — host key, password or public-key login,
chrooted file operations — not a mock.  It runs its own asyncio loop in a background thread.

Faults: ``refuse_logins`` (every login is refused, as after a password change) and
``drop_connections`` (connections are closed as soon as they open, as by a firewall).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from pathlib import Path
from typing import Any

import asyncssh

logger = logging.getLogger(__name__)


class _Server(asyncssh.SSHServer):
    def __init__(self, sandbox: SftpSandbox) -> None:
        self.sandbox = sandbox

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.sandbox.connections += 1
        if self.sandbox.drop_connections:
            conn.abort()

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        if self.sandbox.refuse_logins:
            return False
        return self.sandbox.users.get(username) == password

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self.sandbox.refuse_logins or username not in self.sandbox.users:
            return False
        wanted = key.export_public_key().split()[:2]
        return any(k.export_public_key().split()[:2] == wanted for k in self.sandbox.client_keys)


class SftpSandbox:
    """An SFTP server for ``root``; ``start()`` it, ``stop()`` it."""

    def __init__(
        self,
        root: Path,
        *,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        host_key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {"sandbox": "sandbox-password"})
        self.client_keys: list[asyncssh.SSHKey] = []
        self.host, self.port = host, port
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.refuse_logins = False
        self.drop_connections = False
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="sandbox-sftp"
        )
        self._acceptor: Any = None

    @property
    def host_key_line(self) -> str:
        """The server's public key as an administrator would paste it (``type base64``)."""
        return self.host_key.export_public_key().decode().strip()

    def authorize(self, key: asyncssh.SSHKey) -> None:
        """Accept this client key for every user."""
        self.client_keys.append(key)

    def start(self) -> SftpSandbox:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=15)
        return self

    async def _listen(self) -> None:
        self._acceptor = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=lambda: _Server(self),
            server_host_keys=[self.host_key],
            sftp_factory=functools.partial(asyncssh.SFTPServer, chroot=str(self.root)),
            allow_scp=False,
            process_factory=None,
        )
        self.port = self._acceptor.get_port()

    def stop(self) -> None:
        async def close() -> None:
            if self._acceptor is not None:
                self._acceptor.close()
                await self._acceptor.wait_closed()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
        self._loop.close()
