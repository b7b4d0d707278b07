"""Run localstripe, the offline Stripe, on loopback only.

A development and test tool (localstripe is GPL-3.0 and never imported by the application).
Its own CLI binds every interface and pickles its store to /tmp on each write; this launcher
binds 127.0.0.1, keeps the store in memory, and can register the app's webhook endpoint at
start so that deliveries are signed with the app's secret.
"""

import argparse
import logging
import pickle
from pathlib import Path

from aiohttp import web
from localstripe import resources
from localstripe.server import app
from localstripe.webhooks import register_webhook


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--webhook-url", help="the app's /stripe/webhook/ URL")
    parser.add_argument("--webhook-secret", help="the app's STRIPE_WEBHOOK_SECRET")
    parser.add_argument("--store", type=Path, help="keep the store in this file between runs (default: memory only)")
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")

    if args.store:
        _keep_store_in(args.store)
    else:
        resources.Store.dump_to_disk = lambda self: None
    if args.webhook_url:
        register_webhook("foretaste", args.webhook_url, args.webhook_secret, None)

    logging.basicConfig(level=logging.WARNING, format="localstripe %(levelname)s %(message)s")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


def _keep_store_in(path: Path) -> None:
    """Load the store from ``path`` and write it back there after each change, so that
    customers, cards and prices made in one `make run` are still there in the next."""
    if path.exists():
        try:
            with path.open("rb") as f:
                resources.store.update(pickle.load(f))  # noqa: S301 (our own file, written below)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            logging.warning("could not read %s; starting with an empty store", path)

    def dump(self):
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    resources.Store.dump_to_disk = dump


if __name__ == "__main__":
    main()
