"""The card gallery of docs/cards.md: every outcome's card rendered the way CDS clients show
cards (CommonMark detail, card chrome, the indicator's colour), photographed in a real
browser (Playwright driving the system's Chromium).

    python -m tests.cards.gallery            # rewrites docs/cards/*.png

The cards come from the renderer itself (the card cases of tests/cards/cases.py, under the
packaged pack texts), so the pictures show what the service answers today.
`tests/cards/test_cards_gallery.py` runs the same code in CI (skipped, saying why, when
Chromium or Playwright is absent).
"""

from __future__ import annotations

import dataclasses
import html
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from cds_service.cards import render_response
from cds_service.crd.coverage import demo_call
from tests.cards.builders import NOW, SETTINGS, coverage_call, uuid_counter
from tests.cards.cases import CASES

ROOT = Path(__file__).resolve().parents[2]
GALLERY_DIR = ROOT / "docs" / "cards"
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")

OUTCOMES: tuple[tuple[str, str, str], ...] = (
    (
        "criteria-met",
        "criteria_met",
        "Meets criteria (without coverage information, or to a client that does not show it)",
    ),
    ("documentation-needed", "documentation_needed", "Documentation needed"),
    ("dose-over-the-limit", "dose_over_ra", "Dose over the limit"),
    ("combination-not-covered", "combination_draft", "Combination not covered"),
    ("use-not-covered", "other_not_met", "Use not covered (criteria not met)"),
    ("off-label", "off_label", "Off-label use"),
    ("setting-not-covered", "covid_outpatient", "Setting not covered"),
    ("hypersensitivity", "hypersensitivity", "Hypersensitivity"),
    ("could-not-be-checked", "not_evaluated", "Could not be checked"),
)
"""(picture name, card case, caption) per outcome."""

COLOURS = {"info": "#2b7bb9", "warning": "#e8a33d", "critical": "#c0392b"}
"""Indicator colours as CDS clients draw them (blue, amber, red bar on the card's left)."""

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0;
       padding: 16px; background: #f4f5f7; width: 640px; }
.card { background: #fff; border: 1px solid #d6d9dc; border-left: 6px solid var(--colour);
        border-radius: 4px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.summary { font-size: 16px; font-weight: 600; margin: 0 0 8px; color: #1c1e21; }
.indicator { display: inline-block; font-size: 11px; text-transform: uppercase;
             letter-spacing: .05em; color: #fff; background: var(--colour); border-radius: 3px;
             padding: 1px 6px; margin-right: 8px; vertical-align: middle; }
.detail { font-size: 14px; color: #333; line-height: 1.45; }
.detail table { border-collapse: collapse; margin: 6px 0; }
.detail th, .detail td { border: 1px solid #d6d9dc; padding: 3px 8px; text-align: left; }
.source { font-size: 12px; color: #606770; margin-top: 8px; }
.source a { color: #2b7bb9; }
.buttons { margin-top: 10px; }
.buttons span { display: inline-block; border: 1px solid #2b7bb9; color: #2b7bb9;
                border-radius: 3px; padding: 4px 10px; margin: 0 6px 6px 0; font-size: 13px; }
.buttons span.link { border-color: #606770; color: #606770; }
"""


def cards_of(case: str) -> list[dict[str, Any]]:
    """The cards the renderer answers for one card case, with the coverage settings the
    service runs with (a documentation card carries the plan's form; criteria met: the card
    that goes out to a client that does not show coverage information, as the official
    sandbox)."""
    hook, evaluations = CASES[case]()
    coverage = coverage_call()
    if case == "criteria_met":
        coverage = dataclasses.replace(demo_call(), shown_by_client=False)
    response = render_response(
        hook,
        evaluations,
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        coverage=coverage,
    )
    cards: list[dict[str, Any]] = response["cards"]
    return cards


def card_html(card: dict[str, Any]) -> str:
    """One card as a CDS client draws it: the detail as CommonMark (tables on, raw HTML off,
    as clients render card Markdown), the summary and labels as plain text."""
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    colour = COLOURS[card["indicator"]]
    source = card.get("source", {})
    label = html.escape(source.get("label", ""))
    source_html = (
        f'<a href="{html.escape(source["url"])}">{label}</a>' if source.get("url") else label
    )
    buttons = [f"<span>{html.escape(s['label'])}</span>" for s in card.get("suggestions", [])]
    buttons += [
        f'<span class="link">{html.escape(x["label"])}</span>' for x in card.get("links", [])
    ]
    return (
        f'<div class="card" style="--colour: {colour}">'
        f'<p class="summary"><span class="indicator">{card["indicator"]}</span>'
        f"{html.escape(card['summary'])}</p>"
        f'<div class="detail">{markdown.render(card.get("detail", ""))}</div>'
        f'<div class="buttons">{"".join(buttons)}</div>'
        f'<div class="source">Source: {source_html}</div>'
        "</div>"
    )


def page(card: dict[str, Any]) -> str:
    head = f"<!doctype html><html><head><style>{CSS}</style></head>"
    return f"{head}<body>{card_html(card)}</body></html>"


def chromium_path() -> str | None:
    """The system's Chromium (Debian's), None when it is not installed."""
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    found = shutil.which("chromium")
    return found


def render_gallery(out_dir: Path, chromium: str) -> list[Path]:
    """Photograph every outcome's card into `out_dir` (one PNG each); returns the files."""
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            view = browser.new_page(viewport={"width": 680, "height": 400})
            for name, case, _caption in OUTCOMES:
                (card,) = cards_of(case)[:1]
                view.set_content(page(card))
                target = out_dir / f"{name}.png"
                view.locator(".card").screenshot(path=str(target))
                written.append(target)
        finally:
            browser.close()
    return written


def main(argv: Sequence[str] = ()) -> int:
    chromium = chromium_path()
    if chromium is None:
        print("no Chromium found (looked for " + ", ".join(CHROMIUM_PATHS) + ")", file=sys.stderr)
        return 1
    out_dir = Path(argv[0]) if argv else GALLERY_DIR
    for path in render_gallery(out_dir, chromium):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
