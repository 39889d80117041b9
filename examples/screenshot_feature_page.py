"""Screenshot one feature page of a `saetool interpret --html` browser (headless Chromium via Playwright).

    python examples/screenshot_feature_page.py runs/features.html 1234 docs/img/feature-page.png

Fails on any console error or request leaving the file, like tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


def main(html: str, feature: int, out: str, width: int = 1200, height: int = 1500) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("SAETOOL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    url = Path(html).resolve().as_uri()
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: problems.append(f"request: {r.url}") if r.url.split("#")[0] != url else None)
        page.goto(f"{url}#feature-{feature}")
        page.wait_for_selector("#view h2")
        page.screenshot(path=out)
        browser.close()
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Screenshot one feature page of a saetool interpret --html browser.")
    parser.add_argument("html", help="the browser file (saetool interpret --html)")
    parser.add_argument("feature", type=int, help="the feature to show")
    parser.add_argument("out", nargs="?", default=None, help="the PNG to write (default: feature-N.png next to the browser file)")
    args = parser.parse_args()
    main(args.html, args.feature, args.out or str(Path(args.html).with_name(f"feature-{args.feature}.png")))
