"""Import history from a CSV file: customers, purchases or assignments (docs/architecture.md, "Public
contracts"). Every bad row is printed with its line number and reason. The import is all or
nothing unless --skip-invalid is given; the exit status is 1 when it was refused."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.imports import KINDS, errors_csv, history_import_csv


class Command(BaseCommand):
    help = (
        "Import customers, purchases or assignments from a CSV file with a header row (UTF-8). Idempotent: "
        "importing the same file again changes nothing. All or nothing unless --skip-invalid is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS, help="What the file holds.")
        parser.add_argument("file", help="The CSV file; - reads standard input.")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Write the valid rows and report the invalid ones, instead of refusing the whole file.",
        )
        parser.add_argument(
            "--errors", metavar="CSV", help="Also write every error (line, field, message) to this CSV file."
        )
        parser.add_argument(
            "--no-progress", dest="progress", action="store_false", help="Do not show the progress bar."
        )

    def handle(self, *args, kind, file, skip_invalid, errors, progress, **options):
        if file == "-":
            stream, size = sys.stdin.buffer, None
        else:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"There is no file {file}.")
            stream, size = path.open("rb"), path.stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=kind, file=sys.stderr, disable=not progress, leave=False)
        try:
            result = history_import_csv(
                kind=kind, file=stream, source="import", skip_invalid=skip_invalid, progress=bar.update
            )
        finally:
            bar.close()
            if stream is not sys.stdin.buffer:
                stream.close()

        for error in result.errors:
            where = "file" if error.row is None else f"line {error.row}"
            self.stdout.write(f"{where}{', ' + error.field if error.field else ''}: {error.message}")
        if errors:
            Path(errors).write_text(errors_csv(result.errors), encoding="utf-8")
        self.stdout.write(result.summary())
        if result.refused:
            if result.invalid and not skip_invalid:
                raise CommandError(
                    f"Nothing was written: {result.invalid} rows are not valid. Fix them, or run again with "
                    "--skip-invalid to write the valid ones."
                )
            raise CommandError("Nothing was written: the file could not be imported (see above).")
