"""The reports in a real headless Chromium: every picture loads and nothing errors.

Chromium comes from the OS packages (`apt-get install chromium-headless-shell`, what `make
install` does when it can) or from Playwright's own download; `KAIZEN_CHROMIUM` names another
binary. Without any, the test is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.artifacts import write_artifact
from kaizen.api.lineage import ChainLineage
from kaizen.report import build_chain_report, build_cycle_report
from tests.api.artifact_samples import _lineage
from tests.report.cycle_dir import write_cycle

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _executables() -> list[str | None]:
    named = os.environ.get("KAIZEN_CHROMIUM")
    found = [shutil.which(name) for name in CANDIDATES]
    # None last: Playwright's own browser, when `playwright install chromium` could run.
    return [p for p in [named, *found] if p] + [None]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problems = []
    with sync_api.sync_playwright() as playwright:
        for executable in _executables():
            try:
                launched = playwright.chromium.launch(
                    executable_path=executable, args=["--no-sandbox"]
                )
            except Exception as error:  # noqa: BLE001 - try the next one, then skip
                problems.append(
                    f"{executable or 'playwright chromium'}: {str(error).splitlines()[0]}"
                )
                continue
            yield launched
            launched.close()
            return
    pytest.skip("no headless Chromium: " + "; ".join(problems))


def _open(browser: Any, html: Path) -> tuple[list[list[Any]], list[str], str]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    title = page.title()
    page.close()
    return images, errors, title


def test_the_cycle_report_loads_every_image_without_errors(browser: Any, tmp_path: Path) -> None:
    built = build_cycle_report(write_cycle(tmp_path / "cycle"))
    images, errors, title = _open(browser, built.html)
    assert title == "Kaizen cycle cycle"
    assert len(images) == len(built.plots) == 4
    assert all(complete and width > 0 and height > 0 for complete, width, height in images)
    assert errors == []


def test_the_chain_report_loads_every_image_without_errors(browser: Any, tmp_path: Path) -> None:
    write_artifact(tmp_path / "lineage.json", ChainLineage.model_validate(_lineage()))
    built = build_chain_report(tmp_path / "lineage.json")
    images, errors, _ = _open(browser, built.html)
    assert len(images) == 1 and images[0][0] and images[0][1] > 0
    assert errors == []
