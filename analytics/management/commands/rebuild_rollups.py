"""``python manage.py rebuild_rollups``: make every rollup row again from the raw rows."""

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from analytics import rollups


class Command(BaseCommand):
    help = "Rebuild the dashboards' rollup tables from the ledger, trials and assignments, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-progress", dest="progress", action="store_false", help="Do not show the progress bar."
        )

    def handle(self, *args, progress, **options):
        bar = tqdm(total=0, unit=" ids", desc="rollups", file=sys.stderr, disable=not progress)

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            built = rollups.rebuild(progress=advance)
        finally:
            bar.close()
        units = f"{built.units:,} unit{'s' if built.units != 1 else ''}"
        self.stdout.write(self.style.SUCCESS(f"Rollups rebuilt: {units}, as of {built.as_of:%Y-%m-%d %H:%M:%S} UTC."))
