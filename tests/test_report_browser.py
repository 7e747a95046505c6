"""The report in a real browser: Debian's chromium driven by Playwright, offline."""

from __future__ import annotations

import pytest

from _report_helpers import make_run
from conftest import CHROMIUM_ARGS
from dcc_capacity.report.build import build_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(tmp_path_factory, chromium):
    from playwright import sync_api

    report = build_report(make_run(tmp_path_factory.mktemp("b") / "run")).html
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True)
        pg = context.new_page()
        pg.on("request", lambda req: requests.append(req.url))
        pg.goto(report.as_uri(), wait_until="load")
        yield pg, requests, report
        browser.close()


def test_every_section_is_visible(page):
    pg, _, _ = page
    for sec in ("details", "risks", "assurance", "model", "results", "traceability", "exit", "extrapolation",
                "audit"):
        assert pg.locator(f"section#{sec} h2").is_visible(), sec
    assert pg.locator("svg[aria-label=chart-rates]").bounding_box()["width"] > 200


def test_follow_nfr_to_result_and_back(page):
    pg, _, report = page
    pg.click("#nfr-NFR-TRT-P99 a[href='#res-LOAD-DSP-NIGHT.NFR-TRT-P99']")
    assert pg.url.endswith("#res-LOAD-DSP-NIGHT.NFR-TRT-P99")
    assert pg.evaluate("document.querySelector(':target').id") == "res-LOAD-DSP-NIGHT.NFR-TRT-P99"
    assert pg.locator("#res-LOAD-DSP-NIGHT\\.NFR-TRT-P99").is_visible()
    pg.click("[id='res-LOAD-DSP-NIGHT.NFR-TRT-P99'] a[href='#nfr-NFR-TRT-P99']")
    assert pg.evaluate("document.querySelector(':target').id") == "nfr-NFR-TRT-P99"
    pg.click("[id='nfr-NFR-TRT-P99'] a[href='#test-LOAD-DSP-NIGHT']")
    assert pg.evaluate("document.querySelector(':target').id") == "test-LOAD-DSP-NIGHT"
    assert pg.url.startswith(report.as_uri())


def test_no_request_leaves_the_file(page):
    pg, requests, report = page
    pg.emulate_media(media="print")  # print styles load nothing either
    assert requests, "the page itself should have been requested"
    assert {r.split("#")[0] for r in requests} == {report.as_uri()}
