"""``manage.py sync <integration-slug>``: run one integration now, with progress and a summary.

Exits non-zero when the run failed (or was skipped because another run is going), so it can be
used from cron or CI.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from syncs.models import Integration, SyncRun
from syncs.services import integration_run

logger = logging.getLogger(__name__)

BAR = 30


class Command(BaseCommand):
    help = "Run one integration now and print what happened."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug", help="The integration's slug (see the admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        integration = (
            Integration.objects.select_related("source", "target")
            .filter(slug=options["slug"])
            .first()
        )
        if integration is None:
            known = ", ".join(Integration.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No integration “{options['slug']}”. Known: {known}.")
        interactive = sys.stderr.isatty()

        def progress(run: SyncRun) -> None:
            if not interactive:
                return
            total = run.total or 0
            filled = BAR * run.done // total if total else 0
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {run.done}/{total or '?'}")
            sys.stderr.flush()

        run = integration_run(
            integration=integration,
            trigger=SyncRun.Trigger.MANUAL,
            requested_by="manage.py sync",
            on_progress=progress,
        )
        if run.status == SyncRun.Status.SKIPPED:
            raise CommandError(f"{run.error_summary} ({integration.slug})")
        if interactive:
            sys.stderr.write("\n")
        self.stdout.write(
            f"Run #{run.pk} of {integration.slug}: {run.get_status_display()} — "
            f"{run.synced} synced, {run.duplicate} duplicate, {run.skipped} skipped, "
            f"{run.flagged} flagged, {run.failed} failed (of {run.total})."
        )
        if run.error_summary:
            self.stdout.write(f"Error: {run.error_summary}")
        if run.flagged or run.failed:
            self.stdout.write("See the review queue in the admin for what needs a human.")
        if run.status == SyncRun.Status.FAILED:
            raise CommandError("The run failed.", returncode=2)
