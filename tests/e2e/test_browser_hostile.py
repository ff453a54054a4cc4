"""The hostile run root in a real browser: Markdown from the URL or a run name is shown as text — no
request reaches the local server it points at, no link is rendered — and every page still draws."""

from __future__ import annotations

import urllib.parse

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 90_000


def settle(page) -> None:
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=TIMEOUT_MS)
    page.wait_for_timeout(1500)  # room for any image or link fetch to happen


def links_to(page, base: str) -> int:
    return page.locator(f'a[href^="{base}"], img[src^="{base}"]').count()


def test_markdown_in_the_link_is_text_and_fetches_nothing(page, hostile_dashboard_url, leak_server):
    base, hits = leak_server
    query = f"![x]({base}/leak.png) [Click here]({base}/click)"
    page.goto(f"{hostile_dashboard_url}/?run={urllib.parse.quote(query)}", timeout=TIMEOUT_MS)
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "not under the run root" in sidebar and "[Click here]" in sidebar  # shown literally
    assert links_to(page, base) == 0
    assert hits == []
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("url_path", ["overview", "geometry", "compare"])
def test_markdown_run_name_is_text_and_fetches_nothing(page, hostile_dashboard_url, leak_server, url_path):
    base, hits = leak_server
    page.goto(f"{hostile_dashboard_url}/{url_path}?run=markdown-name", timeout=TIMEOUT_MS)
    settle(page)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "[Click here]" in main  # the run's name, as text
    assert "could not be opened" in main  # the bad runs are listed, the page still draws
    assert links_to(page, base) == 0
    assert hits == []
    assert page.locator('[data-testid="stException"]').count() == 0
