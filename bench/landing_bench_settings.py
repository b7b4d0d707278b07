"""The product's settings with the bench's URLconf, which adds the bare "hello" view the landing
page is measured against. For bench/bench_landing.py only."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "landing_bench_urls"
