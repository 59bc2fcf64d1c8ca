"""What a Stampli connection needs: the SFTP account Stampli exports to (host, port, user,
password or key, the server's host key), where the exports land and may be archived, how long a
file must be left alone before it counts as complete, and the CSV template of the exports."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.sftp import sftp_spec
from connections.providers.spec import FieldSpec, text
from connections.providers.stampli.csvfile import (
    DEFAULT_TEMPLATE,
    FIELDS,
    LAYOUTS,
    VENDOR_MATCH,
    field_types,
    template_with,
)

logger = logging.getLogger(__name__)


def yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    answer = text(value).lower()
    if answer in ("yes", "true", "1", "on"):
        return True
    if answer in ("no", "false", "0", "off"):
        return False
    raise ValidationError("Answer yes or no.")


def seconds(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationError("A number of seconds, such as 60.") from None
    if not 0 <= number <= 86400:
        raise ValidationError("Between 0 and 86400 seconds.")
    return number


def check_date_formats(value: Any, *, where: str) -> None:
    """One strftime format or a list of them, each of which writes a date that reads back."""
    from datetime import date, datetime

    formats = [value] if isinstance(value, str) else value
    if not isinstance(formats, list) or not formats:
        raise ValidationError(f"The {where} are formats such as %d/%m/%Y.")
    sample = date(2026, 11, 28)
    for form in formats:
        try:
            ok = datetime.strptime(sample.strftime(str(form)), str(form)).date() == sample
        except ValueError:
            ok = False
        if not ok:
            raise ValidationError(f"“{str(form)[:30]}” in the {where} is not a date format.")


def csv_template(value: Any) -> dict[str, Any]:
    """Overrides of the default CSV template, as a JSON object (checked, merged on use)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError(
                'The template is a JSON object, e.g. {"delimiter": ";"}.'
            ) from None
    if not isinstance(value, dict):
        raise ValidationError("The template is a JSON object.")
    unknown = set(value) - set(DEFAULT_TEMPLATE)
    if unknown:
        raise ValidationError(f"Unknown template keys: {', '.join(sorted(unknown))}.")
    for kind, spec in (value.get("files") or {}).items():
        if kind not in FIELDS:
            raise ValidationError(f"“{kind}” is not a kind of Stampli file ({', '.join(FIELDS)}).")
        known = field_types(value, kind)  # a combined invoice row names its line's fields too
        for name in (spec or {}).get("columns") or {}:
            if name not in known:
                raise ValidationError(f"{kind} has no field “{name}” ({', '.join(known)}).")
        formats = (spec or {}).get("date_formats")
        if formats is not None:
            check_date_formats(formats, where=f"{kind} date formats")
    if "date_format" in value:
        check_date_formats(value["date_format"], where="date format")
    if value.get("layout", "split") not in LAYOUTS:
        raise ValidationError(f"The layout is one of {', '.join(LAYOUTS)}.")
    if value.get("vendor_match", "id") not in VENDOR_MATCH:
        raise ValidationError("Vendors are matched by id or by name.")
    if "ends_with_newline" in value:
        value["ends_with_newline"] = yes_no(value["ends_with_newline"])
    for key in ("delimiter", "decimal"):
        if key in value and (not isinstance(value[key], str) or len(value[key]) != 1):
            raise ValidationError(f"The {key} is one character.")
    merged = template_with(value)
    if merged["decimal"] == merged["thousands"] or merged["delimiter"] == merged["decimal"]:
        raise ValidationError("The delimiter, decimal mark and thousands separator must differ.")
    try:
        "".encode(str(merged["encoding"]))
    except LookupError:
        raise ValidationError(f"“{merged['encoding']}” is not an encoding.") from None
    return value


def minutes(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationError("A number of minutes, such as 60.") from None
    if not 1 <= number <= 10080:
        raise ValidationError("Between 1 and 10080 minutes (a week).")
    return number


SPEC = sftp_spec(
    FieldSpec(
        "archive_files",
        "Archive processed files",
        secret=False,
        default=False,
        clean=yes_no,
        help="yes: move each processed file to the archive folder (the SFTP account must be "
        "allowed to write there); no: leave them, they are recognised and not read again.",
    ),
    FieldSpec("archive_dir", "Archive folder", secret=False, default="/archive"),
    FieldSpec(
        "settle_seconds",
        "A file is complete after (s)",
        secret=False,
        default=60,
        clean=seconds,
        help="A file changed more recently than this is still being written: it waits for the "
        "next poll (a file with a NAME.done marker beside it is complete at once).",
    ),
    FieldSpec(
        "complete_within_minutes",
        "Report a file still incomplete after (min)",
        secret=False,
        default=60,
        clean=minutes,
        help="A file whose last row is cut, or an invoices file whose lines file has not "
        "arrived, is waited for quietly this long; after it, it is reported (nothing of it is "
        "ever posted while it is incomplete).",
    ),
    FieldSpec(
        "csv_template",
        "CSV template overrides",
        secret=False,
        required=False,
        clean=csv_template,
        multiline=True,
        help="Easiest set up with “Set up the CSV template from a sample file” at the top of "
        "this page (dropdowns, date examples and a preview). Here as JSON, only where this "
        "export differs from the default: delimiter, encoding, date_format, decimal, "
        "thousands, ends_with_newline, layout (split or combined), vendor_match (id or name), "
        "and per file kind its pattern, columns and date_formats.",
    ),
    remote_dir="/outbound",
)
