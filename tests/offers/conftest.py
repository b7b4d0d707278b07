import pytest

from tests import factories


@pytest.fixture
def product(db):
    """The paid product most offers in these tests lead to."""
    return factories.product()
