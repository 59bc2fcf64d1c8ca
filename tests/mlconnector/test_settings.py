"""Configuration from the environment: local defaults, and a clean deploy check in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_variables(tmp_path: Path) -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-1234567890",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "connector.example.com",
            "HTTPS": "true",
            "CSRF_TRUSTED_ORIGINS": "https://connector.example.com",
            "FERNET_KEYS": "k1-0123456789abcdef0123456789abcdef,k0-old",
            "DATABASE_URL": "postgres://u:p@db.example.com:5432/mlc",
            "REDIS_URL": "redis://cache.example.com:6379/0",
            "MLC_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_nothing_to_configure_for_local_use(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.Q_CLUSTER.get('orm'), s.DEBUG, "
        "len(s.FERNET_KEYS), s.MLC['RATE_LIMIT_BACKEND'])"
    )
    result = manage("shell", "-c", code, env={"MLC_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "django.db.backends.sqlite3",
        "default",
        "False",
        "1",
        "db",
    ]
    assert (tmp_path / "fernet_key").stat().st_mode & 0o777 == 0o600
