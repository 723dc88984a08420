"""Fixtures for the chart tests: the chart, loaded once per module, and its renders per value set.

Helm's SDK is imported inside the fixtures, so the tests here that do not render the chart run
(and the chart tests skip, through ``tests.charts.helm``) where the SDK cannot load.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.chart_values import VALUE_SETS


@pytest.fixture(scope="module")
def chart() -> Any:
    from tests.charts.helm import load_chart

    return load_chart()


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: Any) -> tuple[str, list[dict[str, Any]]]:
    from tests.charts.helm import render

    return request.param, render(chart, VALUE_SETS[request.param])
