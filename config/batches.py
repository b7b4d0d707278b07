"""Lists in slices, for statements that must stay below a database's parameter limit.

``itertools.batched`` does this from Python 3.12 on; Foretaste runs on 3.11."""

from collections.abc import Iterator


def batches(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
