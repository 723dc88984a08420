"""The dev/test split of a suite's evaluation items.

Every choice a cycle makes for itself (which combination of adapters to promote, and any
later per-domain or checkpoint choice) is made on *dev* items; the validation gate reads
*test* items only. Were the gate's items also used to choose, the winner of the choice
would look better on them than it is (the choice fits their noise), and the gate would
promote on that optimism.

A suite gets its dev items in one of two ways:

- it ships `dev.jsonl` (same format as `eval.jsonl`, ids unique across both files): its
  items are dev, and every item of `eval.jsonl` is test;
- otherwise each item of `eval.jsonl` is dev when a stable hash of its id falls below the
  suite's `dev_fraction` (suite.yaml, default `DEV_FRACTION`): the same item lands on the
  same side on every machine, in every step and every cycle, and adding or removing other
  items moves no item across. `dev_fraction: 0` keeps every item for the gate (a cycle
  that must choose then has nothing to choose on and says so).
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["dev", "test"]
SPLITS: tuple[Split, ...] = ("dev", "test")
#: The file of a suite's dev items (optional).
DEV_FILE = "dev.jsonl"
#: Share of `eval.jsonl` items that are dev when a suite ships no `dev.jsonl`.
DEV_FRACTION = 0.3
#: Salt of the hash, so the split is not correlated with any other use of item ids.
_SALT = b"kaizen-dev-split\0"


def split_of(item_id: str, dev_fraction: float) -> Split:
    """`dev` when the item's hash (uniform in [0, 1)) is below `dev_fraction`, else `test`."""
    digest = hashlib.sha256(_SALT + item_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "dev" if position < dev_fraction else "test"
