"""The README and docs/ point only at files a fresh clone has."""

import re

import pytest

from tests.support import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
BACKTICKED_PATH = re.compile(r"`((?:\.\./|docs/)[^`\s]+\.md)`")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_in_the_documentation_leads_to_a_file_in_the_repository(document):
    text = document.read_text()
    targets = [t for t in LINK.findall(text) if "://" not in t] + BACKTICKED_PATH.findall(text)
    for target in targets:
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name} points outside the repository: {target}"
        assert resolved.exists(), f"{document.name} points at a missing file: {target}"


def test_no_document_sends_readers_to_the_shared_folder():
    for document in DOCUMENTS:
        assert "../shared" not in document.read_text(), document.name
