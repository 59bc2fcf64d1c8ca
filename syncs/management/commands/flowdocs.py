"""``manage.py flowdocs``: print the flows' settings and mappings as the README lists them;
``--write`` puts them in the README."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from syncs.flowdocs import flow_docs, readme_path, readme_with_docs

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Print (or --write into the README) every flow's settings and mapping kinds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true", help="Update README.md in place.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["write"]:
            self.stdout.write(flow_docs())
            return
        path = readme_path()
        path.write_text(readme_with_docs(path.read_text()))
        self.stdout.write(f"Updated {path}.")
