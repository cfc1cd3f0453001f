"""Real-browser harness for the app: ``streamlit run`` on a free localhost port, Debian's Chromium
driven by Playwright, and the walk over every page.

Used by the browser test (tests/test_app_browser.py), the page-speed benchmark
(bench/bench_app.py) and the README screenshots (scripts/readme_screenshots.py). A dev-only
package: dyntools itself never imports it, and it needs the ``dev`` extra (Playwright).
"""
