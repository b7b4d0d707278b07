"""`.env.example` documents every setting the code reads, and nothing it does not."""

import re

from tests.support import ROOT

READERS = re.compile(r"""(?:env_(?:str|bool|int|float|list|choice)|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def _read_by_code() -> set[str]:
    names = set()
    for folder in ("config", "accounts", "offers", "trials", "billing", "analytics", "scripts", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(READERS.findall(path.read_text()))
    return names - NOT_SETTINGS


def _documented() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Z][A-Z0-9_]+)=", line)
        if match:
            documented[match.group(1)] = lines[index - 1] if index else ""
    return documented


def test_every_setting_the_code_reads_is_in_env_example_with_a_comment():
    documented = _documented()

    assert _read_by_code() - set(documented) == set()
    for name, comment_line in documented.items():
        assert comment_line.startswith("#"), f"{name} has no comment above it"


def test_env_example_lists_nothing_the_code_does_not_read():
    assert set(_documented()) - _read_by_code() == set()
