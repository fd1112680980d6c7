"""The kiosk screen guard in a real browser: Debian's chromium driven by selenium (chromium-driver), in
front of a fake Odoo serving a page shaped like the web client, behind idlegate with a 10 s window and a
5 s warning."""
import json
import os
import shutil
import time

import pytest

from conftest import Client
from test_sessions import call_kw, expired

GUARD = "idle_timeout: 10s\nscreen_guard: true\nwarn_before: 5s\n"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are not installed: run the README's test command, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1024,768"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


def load(browser, url):
    """Navigates and waits until the new page has loaded."""
    browser.get(url)
    assert wait_for(lambda: browser.execute_script("return document.readyState") == "complete" and browser.current_url.startswith(url), 10)


def open_web_client(browser, ig, odoo):
    """A logged-in session (made in the fake Odoo's store), its cookie set, and /odoo loaded: returns the
    session id and the time the page's request went out (its last activity)."""
    sid = odoo.login()
    base = f"http://127.0.0.1:{ig.port}"
    load(browser, base + "/idlegate/none")  # any page of the origin, to set its cookie
    browser.add_cookie({"name": "session_id", "value": sid, "path": "/"})
    started = time.time()
    load(browser, base + "/odoo")
    assert "ACME Corp" in browser.find_element("id", "customer-data").text
    # Where the clearing is seen: sessionStorage outlives the navigation to the login page (same origin).
    browser.execute_script("""
        new MutationObserver(function () {
          var c = document.getElementById('idlegate-cleared');
          if (c && !sessionStorage.getItem('cleared')) sessionStorage.setItem('cleared', JSON.stringify({at: Date.now(), bodyHidden: document.body.style.visibility === 'hidden',
            coverOpaque: getComputedStyle(c).backgroundColor, dataInCover: c.textContent.indexOf('ACME') >= 0}));
        }).observe(document.documentElement, {childList: true});""")
    return sid, started


def wait_for(predicate, timeout, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def warning_shown(browser):
    from selenium.common.exceptions import StaleElementReferenceException
    bars = browser.find_elements("id", "idlegate-warning")
    try:
        return bars[0].text if bars and bars[0].is_displayed() else None
    except StaleElementReferenceException:  # removed between the lookup and the look: not shown
        return None


def dark_pixels(png):
    """How many pixels of a screenshot are not near-white: what text and pictures cover."""
    import io
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("L")
    return sum(1 for v in image.getdata() if v < 200)


def test_idle_page_warns_then_clears_itself_and_the_server_agrees(browser, odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config=GUARD)
    sid, started = open_web_client(browser, ig, odoo)
    assert browser.find_elements("css selector", 'script[src^="/idlegate/guard-"]')
    with_data = dark_pixels(browser.get_screenshot_as_png())
    text = wait_for(lambda: warning_shown(browser), 9)
    warned = time.time() - started
    assert text and "signed out in 0:0" in text and "Stay signed in" in text
    assert 4.0 <= warned <= 6.5, warned  # about warn_before (5 s) before the 10 s window ends
    # The countdown counts.
    first = warning_shown(browser)
    time.sleep(1.2)
    assert warning_shown(browser) != first
    # At the end, with no input: the page is covered and its body hidden (seen by the observer, in the
    # page's last moment), then the browser is on the login form, and the screen shows none of the data.
    assert wait_for(lambda: "/web/login" in browser.current_url, 8)
    cleared = time.time() - started
    assert 10.0 <= cleared <= 12.5, cleared  # within 2 s of the server's expiry (plus the load's own time)
    seen = json.loads(browser.execute_script("return sessionStorage.getItem('cleared')"))
    assert seen["bodyHidden"] and seen["coverOpaque"] == "rgb(255, 255, 255)" and not seen["dataInCover"]
    assert "ACME" not in browser.page_source
    after = dark_pixels(browser.get_screenshot_as_png())
    assert after < with_data / 3, (after, with_data)
    browser.get(f"http://127.0.0.1:{ig.port}/odoo")  # the old cookie: the server sends it to the login form
    assert "/web/login" in browser.current_url and "ACME" not in browser.page_source
    assert expired(call_kw(ig, f"session_id={sid}")[2])  # and refuses it for JSON-RPC


def test_stay_signed_in_keeps_the_session(browser, odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config=GUARD)
    sid, started = open_web_client(browser, ig, odoo)
    assert wait_for(lambda: warning_shown(browser), 9)
    browser.find_element("id", "idlegate-stay").click()
    assert wait_for(lambda: not warning_shown(browser), 3)
    time.sleep(max(0, started + 12.5 - time.time()))  # past the window the page load began
    assert "/odoo" in browser.current_url and "ACME Corp" in browser.page_source
    assert not expired(call_kw(ig, f"session_id={sid}")[2])  # the server agrees


def test_two_tabs_share_activity_and_clear_together(browser, odoo, start_idlegate):
    ig = start_idlegate(odoo.url, config=GUARD)
    sid, started = open_web_client(browser, ig, odoo)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    load(browser, f"http://127.0.0.1:{ig.port}/odoo")
    second = browser.current_window_handle
    time.sleep(max(0, started + 4 - time.time()))
    browser.switch_to.window(first)
    # Activity in the first tab that reaches Odoo (a JSON-RPC call): the server's deadline moves.
    browser.execute_async_script("""var done = arguments[0];
        fetch('/web/dataset/call_kw/res.partner/read', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: '{"jsonrpc":"2.0","method":"call","params":{}}'}).then(function () { done(); });""")
    moved = time.time()
    time.sleep(max(0, moved + 8.5 - time.time()))  # past both tabs' first windows, before the moved one
    for tab in (first, second):
        browser.switch_to.window(tab)
        assert "/odoo" in browser.current_url and "ACME Corp" in browser.page_source
    # Both clear, together, when the moved deadline passes.
    for tab in (first, second):
        browser.switch_to.window(tab)
        assert wait_for(lambda: "/web/login" in browser.current_url, max(1, moved + 13 - time.time())), tab


@pytest.mark.parametrize("gzip_page,csp", [(True, None), (False, "script-src 'nonce-n0nc3'; object-src 'none'"),
                                           (True, "default-src 'none'; style-src 'unsafe-inline'")])
def test_compressed_pages_and_csp_are_still_guarded(browser, odoo, start_idlegate, gzip_page, csp):
    odoo.page_gzip, odoo.page_csp = gzip_page, csp
    ig = start_idlegate(odoo.url, config=GUARD)
    open_web_client(browser, ig, odoo)
    assert browser.execute_script("return window.odooLoaded === true || document.querySelector('script[nonce]') !== null")
    assert wait_for(lambda: warning_shown(browser), 9)


def raw(port, request):
    c = Client(__import__("socket").create_connection(("127.0.0.1", port), 5))
    c.send(request)
    status, headers, body = c.response()
    return status, [(k.lower(), v) for k, v in headers if k.lower() not in ("date", "set-cookie")], body


def test_json_assets_and_unguarded_pages_pass_byte_for_byte(odoo, start_idlegate):
    guarded = start_idlegate(odoo.url, config=GUARD)
    plain = start_idlegate(odoo.url, config="idle_timeout: 10s\n")
    sid = odoo.login()
    body = b'{"jsonrpc":"2.0","method":"call","params":{}}'
    rpc = (f"POST /web/dataset/call_kw/res.partner/read HTTP/1.1\r\nHost: odoo.test\r\nContent-Type: application/json\r\n"
           f"Cookie: session_id={sid}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    asset = f"GET /big?n=1048576 HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={sid}\r\n\r\n".encode()
    page = f"GET /odoo HTTP/1.1\r\nHost: odoo.test\r\nCookie: session_id={sid}\r\n\r\n".encode()
    assert raw(guarded.port, rpc) == raw(plain.port, rpc)
    status, _, data = raw(guarded.port, asset)
    assert status == 200 and data == b"x" * 1048576
    assert raw(plain.port, page)[2] == odoo.WEB_CLIENT  # guard off: the page as Odoo sent it
    guarded_page = raw(guarded.port, page)[2]
    assert guarded_page != odoo.WEB_CLIENT and guarded_page.replace(b'<script src="', b"", 1).count(b"/idlegate/guard-") == 1
