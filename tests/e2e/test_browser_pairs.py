"""Issue 16 in a real browser: click a point of the Embeddings map and read its neighbours; the Pairs page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 90_000


def settle(page, selector: str = ".js-plotly-plot .main-svg") -> None:
    """Wait until the script run is over and ``selector`` is drawn."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)
    page.wait_for_selector(selector, timeout=TIMEOUT_MS)


def test_clicking_a_point_lists_its_nearest_neighbours(page, dashboard_url):
    page.goto(f"{dashboard_url}/embeddings?run=clip", timeout=TIMEOUT_MS)
    settle(page, ".js-plotly-plot .scatterlayer .points path")
    main = page.locator('[data-testid="stMain"]')
    assert "Nearest" not in main.inner_text()  # nothing selected yet: no neighbour table
    point = page.locator(".js-plotly-plot .scatterlayer .points path").nth(3)
    point.click(force=True)
    page.wait_for_selector("text=by cosine in the full", timeout=TIMEOUT_MS)
    settle(page, '[data-testid="stDataFrame"]')
    text = main.inner_text()
    assert "Nearest 10 neighbours of sample" in text and "not in the 2-D map" in text
    assert page.locator('[data-testid="stDataFrame"]').count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0


def test_pairs_page_shows_the_worst_pairs_now_and_before(page, dashboard_url):
    page.goto(f"{dashboard_url}/pairs?run=simclr", timeout=TIMEOUT_MS)
    settle(page, '[data-testid="stDataFrame"]')
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert main.startswith("Pairs") and "for comparison" in main
    assert page.locator('[data-testid="stDataFrame"]').count() == 2
    assert page.locator('[data-testid="stException"]').count() == 0
