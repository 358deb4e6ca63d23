"""Journey (a) in Chromium: ``lav demo-data`` -> ``lav eval --save-maps --compare-base`` in two shards
-> ``lav serve --results``: every row of the evaluation page opens its sample, with its maps drawn
and the base model's run beside it; an evaluation run without ``--save-maps`` says why no row opens.
"""

from __future__ import annotations

import pytest

from tests.e2e.journeys import demo_data, demo_eval, demo_eval_sharded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    from lav.serve.app import create_app
    from tests.integration.serve_helpers import LiveServer

    root = tmp_path_factory.mktemp("journey-browser")
    data = demo_data(root / "data", 4)
    demo_eval_sharded(data, root / "results" / "sharded")
    demo_eval(data, root / "results" / "records-only", "--limit", 2, save_maps=False)
    with LiveServer(create_app(None, [root / "results"])) as srv:
        yield srv


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p, errors
    context.close()


def _open_eval(p, server, path: str) -> None:
    p.goto(server.url + "/#/browse")
    p.locator("#evals a", has_text=f"/{path}").click()  # links read "<root>/<path>"
    p.wait_for_selector("#samples tbody tr")


def test_every_row_of_a_sharded_evaluation_opens_with_its_maps(page, server):
    p, errors = page
    _open_eval(p, server, "sharded")
    rows = p.locator("#samples tbody tr")
    ids = [rows.nth(i).get_attribute("data-sample") for i in range(rows.count())]
    assert len(ids) == 4
    for sample in ids:
        _open_eval(p, server, "sharded")
        row = p.locator(f"#samples tbody tr[data-sample='{sample}']")
        instruction = row.locator("td").nth(1).inner_text()
        link = row.locator("a", has_text="open")
        assert link.count() == 1, f"sample {sample} has no open link"
        link.click()
        p.wait_for_selector("#canvas[data-ready=true]", timeout=60_000)
        assert p.inner_text("[data-meta=instruction]") == instruction
        drawn = p.eval_on_selector("#canvas", "c => c.dataset.drawn").split(",")
        assert {"focus", "box", "click"} <= set(drawn), drawn
        assert p.locator("input[name=source][value=base]").count() == 1, "the base run is not offered"
    assert not errors


def test_an_evaluation_without_saved_maps_says_why_no_row_opens(page, server):
    p, errors = page
    _open_eval(p, server, "records-only")
    assert p.locator("#samples tbody tr a", has_text="open").count() == 0
    assert "--save-maps" in p.inner_text("#eval-summary")
    assert not errors
