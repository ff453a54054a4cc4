"""The dashboard in a real browser: every page renders a chart and no exception box; screenshots saved."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS

pytestmark = pytest.mark.browser

PAGES = ["Overview", "Scores", "Geometry", "Temperature", "Modality gap", "Spectrum", "Embeddings", "Compare"]
TIMEOUT_MS = 90_000


def settle(page) -> None:
    """Wait until the script run is over and a plotly chart is drawn."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=TIMEOUT_MS)


def test_every_page_renders_a_chart_without_exceptions(page, dashboard_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{dashboard_url}/?run=clip", timeout=TIMEOUT_MS)
    settle(page)
    for title in PAGES:
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        page.wait_for_function(
            "t => [...document.querySelectorAll('h1')].some(h => h.innerText.trim().startsWith(t))",
            arg=title,
            timeout=TIMEOUT_MS,
        )
        settle(page)
        page.screenshot(path=str(ARTIFACTS / f"page-{title.lower().replace(' ', '-')}.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
        assert page.locator(".js-plotly-plot .main-svg").count() >= 1, f"no chart on {title}"
        assert "clip · finished" in page.locator('[data-testid="stMain"]').inner_text(), (
            f"wrong run on {title}"
        )
