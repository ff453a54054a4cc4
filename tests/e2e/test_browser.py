"""The dashboard in a real browser, asserting what a user sees; a full-page screenshot of every page saved.

The server is fresh for this module (``dashboard_url``), so the first test's request is the server's first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # gitignored; screenshots for people

pytestmark = pytest.mark.browser

PAGES = [
    "Overview",
    "Scores",
    "Geometry",
    "Temperature",
    "Modality gap",
    "Spectrum",
    "Embeddings",
    "Compare",
    "Pairs",
]
CHARTLESS = {"Compare", "Pairs"}  # Compare draws once runs are picked; Pairs shows tables
LEARN = ["Lab", "Concepts"]
CONCEPT_TABS = [
    "Temperature & hardness",
    "Alignment & uniformity",
    "Modality gap",
    "Dimensional collapse",
    "Score distributions",
]
TIMEOUT_MS = 90_000

# Text elements of st.metric (labels, values) whose content is wider than their box: cut off with "…".
TRUNCATED_METRICS_JS = """() => [...document.querySelectorAll(
        '[data-testid="stMetricLabel"], [data-testid="stMetricValue"]')]
    .flatMap(el => [el, ...el.querySelectorAll('*')])
    .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.innerText)"""
# Chart titles whose box meets the plotly toolbar's box.
TITLES_UNDER_TOOLBAR_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => {
        const t = p.querySelector('.gtitle'), m = p.querySelector('.modebar');
        if (!t || !m) return null;
        const a = t.getBoundingClientRect(), b = m.getBoundingClientRect();
        const meet = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        return meet ? t.textContent : null;
    }).filter(Boolean)"""
# Horizontal overflow of each st.dataframe's scroll area: (scrollWidth, clientWidth).
TABLE_WIDTHS_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
    .map(s => [s.scrollWidth, s.clientWidth])"""


def settle(page, chart: bool = True) -> None:
    """Wait until the script run is over (and a plotly chart is drawn)."""
    page.wait_for_timeout(300)  # let a script run triggered just before start
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)
    if chart:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=TIMEOUT_MS)


def wait_for_title(page, title: str) -> None:
    page.wait_for_function(
        "t => [...document.querySelectorAll('h1')].some(h => h.innerText.trim().startsWith(t))",
        arg=title,
        timeout=TIMEOUT_MS,
    )


def shoot(page, name: str) -> None:
    """A screenshot of the whole page: the app scrolls inside its own box, so grow the viewport first."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 12_000)})
    page.wait_for_timeout(800)  # plotly relayouts on resize
    page.screenshot(path=str(ARTIFACTS / f"page-{name.lower().replace(' ', '-')}.png"), full_page=True)
    page.set_viewport_size(size)


def sidebar_controls(page) -> dict[str, int]:
    side = page.locator('[data-testid="stSidebar"]')
    return {
        "run picker": side.locator('[data-testid="stSelectbox"]').count(),
        "compare": side.get_by_text("Compare with").count(),
        "steps": side.get_by_text("Steps", exact=True).count(),
    }


def no_deploy_button(page) -> bool:
    return (
        page.locator('[data-testid="stAppDeployButton"]').count() == 0
        and page.get_by_role("button", name="Deploy").count() == 0
    )


def test_a_page_url_as_the_servers_first_request_keeps_the_router_and_run_picker(page, dashboard_url):
    # First in this file, so it is the fresh server's first request: Streamlit runs the page without app.py
    # (its fallback for apps with a pages/ folder); the page hands over to the router, which opens it again.
    page.goto(f"{dashboard_url}/spectrum?run=simclr", timeout=TIMEOUT_MS)
    wait_for_title(page, "Spectrum")
    settle(page)
    assert "/spectrum" in page.url and "run=simclr" in page.url
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "simclr · finished" in main
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Runs" in nav and "Learn" in nav  # the router's sections, not the plain pages/ list
    assert sidebar_controls(page) == {"run picker": 1, "compare": 1, "steps": 1}
    # The old fallback lost the picker at the page's first rerun: choose another run and look again.
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').click()
    page.get_by_role("option", name="clip").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stMain]').innerText.includes('clip · finished')",
        timeout=TIMEOUT_MS,
    )
    settle(page)
    assert page.locator("h1").first.inner_text().startswith("Spectrum")
    assert sidebar_controls(page)["run picker"] == 1
    assert page.locator('[data-testid="stException"]').count() == 0


def test_every_page_url_opens_without_page_not_found(page, dashboard_url):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_pages", Path(__file__).resolve().parents[2] / "app.py")
    source = spec.loader.get_source("app_pages")
    urls = [
        line.split('"')[-2] for line in source.splitlines() if line.strip().startswith('("') and ".py" in line
    ]
    assert "modality_gap" in urls and "concepts" in urls
    # The default page (the first) lives at "/": its own path exists only before the router's first run.
    for url in ["", *urls[1:]]:
        page.goto(f"{dashboard_url}/{url}?run=clip", timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        settle(page, chart=False)
        assert "Page not found" not in page.inner_text("body"), url
        assert page.locator('[data-testid="stException"]').count() == 0, url


def test_compare_with_is_empty_on_first_load(page, dashboard_url):
    page.goto(f"{dashboard_url}/?run=simclr", timeout=TIMEOUT_MS)
    settle(page)
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]')
    assert picker.count() == 1
    shown = picker.inner_text()  # its label and the chosen runs' chips (the placeholder is an attribute)
    assert shown.startswith("Compare with")
    assert not [name for name in ("clip", "corrupt", "empty") if name in shown], shown


def test_every_page_renders_a_chart_without_exceptions(page, dashboard_url):
    page.goto(f"{dashboard_url}/?run=clip", timeout=TIMEOUT_MS)
    settle(page)
    for title in PAGES:
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        wait_for_title(page, title)
        settle(page, chart=title not in CHARTLESS)
        shoot(page, title)
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
        assert no_deploy_button(page), f"Deploy button on {title}"
        if title not in CHARTLESS:
            assert page.locator(".js-plotly-plot .main-svg").count() >= 1, f"no chart on {title}"
        assert page.evaluate(TITLES_UNDER_TOOLBAR_JS) == [], f"chart title under the toolbar on {title}"
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert "clip · finished" in main, f"wrong run on {title}"
        assert sidebar_controls(page) == {"run picker": 1, "compare": 1, "steps": 1}, title


def test_overview_runs_table_fits_the_page(page, dashboard_url):
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{dashboard_url}/?run=simclr", timeout=TIMEOUT_MS)
    settle(page)
    page.wait_for_selector('[data-testid="stDataFrame"] .dvn-scroller', timeout=TIMEOUT_MS)
    runs_table = page.evaluate(TABLE_WIDTHS_JS)[0]
    assert runs_table[0] <= runs_table[1] + 1, f"runs table scrolls sideways at 1400 px: {runs_table}"
    headers = page.locator('[data-testid="stDataFrame"]').first.inner_text()
    assert "last_step" not in headers


def test_learn_pages_have_no_run_controls_and_no_cut_labels(page, dashboard_url):
    page.goto(f"{dashboard_url}/?run=simclr", timeout=TIMEOUT_MS)
    settle(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in LEARN:
        nav.get_by_role("link", name=title).click()
        wait_for_title(page, title)
        settle(page, chart=False)
        shoot(page, title)
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
        assert no_deploy_button(page), f"Deploy button on {title}"
        assert sidebar_controls(page) == {"run picker": 0, "compare": 0, "steps": 0}, title
    for tab in CONCEPT_TABS:  # on Concepts now
        page.get_by_role("tab", name=tab).click()
        settle(page)
        page.wait_for_timeout(500)
        shoot(page, f"concepts-{tab.split()[0]}")
        assert page.evaluate(TRUNCATED_METRICS_JS) == [], f"cut-off metric labels on the {tab} tab"
        assert page.evaluate(TITLES_UNDER_TOOLBAR_JS) == [], f"chart title under the toolbar on the {tab} tab"
    # Back on a run page, the run picker kept its run.
    nav.get_by_role("link", name="Scores").click()
    wait_for_title(page, "Scores")
    settle(page)
    assert "simclr · finished" in page.locator('[data-testid="stMain"]').inner_text()
