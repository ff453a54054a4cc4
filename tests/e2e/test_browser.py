"""The dashboard in a real browser: every page renders a chart and no exception box; screenshots saved."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # gitignored; screenshots for people

pytestmark = pytest.mark.browser

PAGES = ["Overview", "Scores", "Geometry", "Temperature", "Modality gap", "Spectrum", "Embeddings", "Compare"]
TIMEOUT_MS = 90_000


def settle(page, chart: bool = True) -> None:
    """Wait until the script run is over (and a plotly chart is drawn)."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)
    if chart:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=TIMEOUT_MS)


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"page-{name.lower().replace(' ', '-')}.png"), full_page=True)


def test_page_urls_open_directly_with_the_run_in_the_link(page, dashboard_url):
    # First in this file, so it is the fresh server's first request: a page URL then runs the page without
    # app.py (Streamlit's fallback for apps with a pages/ folder), and must still work.
    page.goto(f"{dashboard_url}/spectrum?run=simclr", timeout=TIMEOUT_MS)
    settle(page)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert main.startswith("Spectrum") and "simclr · finished" in main
    assert page.locator('[data-testid="stException"]').count() == 0


def test_every_page_url_opens_without_page_not_found(page, dashboard_url):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_pages", Path(__file__).resolve().parents[2] / "app.py")
    source = spec.loader.get_source("app_pages")
    urls = [
        line.split('"')[-2] for line in source.splitlines() if line.strip().startswith('("') and ".py" in line
    ]
    assert "modality_gap" in urls and "concepts" in urls
    for url in urls:
        page.goto(f"{dashboard_url}/{url}?run=clip", timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        settle(page, chart=False)
        assert "Page not found" not in page.inner_text("body"), url
        assert page.locator('[data-testid="stException"]').count() == 0, url


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
        shoot(page, title)
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
        assert page.locator(".js-plotly-plot .main-svg").count() >= 1, f"no chart on {title}"
        assert "clip · finished" in page.locator('[data-testid="stMain"]').inner_text(), (
            f"wrong run on {title}"
        )


def test_other_pages_in_the_menu_open_without_exceptions(page, dashboard_url):
    """Pages added beside the run pages (Lab, Concepts) must at least open cleanly under this router."""
    page.goto(f"{dashboard_url}/?run=clip", timeout=TIMEOUT_MS)
    settle(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    # A link's text is its icon's name, then the title.
    titles = [t.strip().splitlines()[-1].strip() for t in nav.get_by_role("link").all_inner_texts()]
    assert set(PAGES) <= set(titles)
    for title in [t for t in titles if t not in PAGES]:
        nav.get_by_role("link", name=title).click()
        page.wait_for_url(lambda url: "overview" not in url, timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)  # let the new script run start before waiting for it to end
        settle(page, chart=False)
        shoot(page, title)
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
