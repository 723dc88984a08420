#!/usr/bin/env bash
# A headless Chromium for tests/report/test_browser.py, which opens the HTML reports.
# Debian's chromium-headless-shell when apt-get can install it (root, or sudo without a
# password), else Playwright's own download; when neither works, say why in one line: the
# browser test is then skipped with its reason, nothing else needs it.
set -u
VENV=${VENV:-.venv}
have() { command -v "$1" >/dev/null 2>&1; }
if have chromium-headless-shell || have chromium || [ -n "${KAIZEN_CHROMIUM:-}" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if have apt-get && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }; then
    if $SUDO apt-get install -y --no-install-recommends chromium-headless-shell >/dev/null 2>&1 \
        || { $SUDO apt-get update >/dev/null 2>&1 \
             && $SUDO apt-get install -y --no-install-recommends chromium-headless-shell >/dev/null 2>&1; }; then
        echo "install-chromium: chromium-headless-shell installed from the OS packages"
        exit 0
    fi
fi
if "$VENV/bin/python" -m playwright install chromium >/dev/null 2>&1; then
    echo "install-chromium: Playwright's Chromium installed"
    exit 0
fi
echo "install-chromium: no headless Chromium (no apt-get as root, and Playwright's download failed); the report browser test will be skipped" >&2
exit 1
