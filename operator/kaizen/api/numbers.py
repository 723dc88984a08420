"""How numbers are rounded and printed wherever people read them (status, Events, reports).

p-values span many orders of magnitude: rounding one to a fixed number of decimals turns
1.7e-08 into 0 ("p=0", which no test can give). They are kept and printed with significant
digits instead.
"""

from __future__ import annotations

import math

#: Significant digits of a p-value in status, summaries and messages.
P_DIGITS = 3


def significant(value: float, digits: int = P_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (0, inf and nan unchanged)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def format_p(value: float, digits: int = P_DIGITS) -> str:
    """A p-value for people with `digits` significant digits: `0.0215`, `1.7e-08`, `1`."""
    return f"{value:.{digits}g}"
