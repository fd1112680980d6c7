/// The kiosk screen guard's browser half, served by idlegate at `ScreenGuard.scriptPath` (never by
/// Odoo). Plain JavaScript, no framework. What it does:
/// - asks `/idlegate/session` (passive: the server never counts it as activity) how long the session
///   has left: every 30 s at most while far from the end, at the start of the warning, and each second
///   from the end until the server says it is over;
/// - `warn` ms before the end, a bar across the top with a live countdown and a "Stay signed in" button
///   (focused, so Enter works), which POSTs `/idlegate/extend` (a person's action: the server restarts
///   the clock);
/// - when the server says the session is over: covers the page with an opaque layer outside `<body>`,
///   hides the body, and goes to `/web/login`, without any click;
/// - tabs of one browser share what they learn (BroadcastChannel): one tab's activity or extension moves
///   the others' deadline, and all clear together;
/// - a request of the page's own (fetch or XMLHttpRequest) while the warning shows makes it ask again at
///   once: activity that reached Odoo moves the server's deadline, and only the server knows by how much.
enum ScreenGuardScript {
    static let source = #"""
/* idlegate screen guard */
(function () {
  "use strict";
  if (window.__idlegateGuard) return;
  window.__idlegateGuard = true;
  var me = document.currentScript;
  var warnMs = Number(me && me.getAttribute("data-warn")) || 60000;
  var STATUS = "/idlegate/session", EXTEND = "/idlegate/extend", LOGIN = "/web/login";
  var deadline = 0, learnedAt = 0, timer = 0, ticker = 0, bar = null, label = null, done = false, asking = false;
  var channel = window.BroadcastChannel ? new BroadcastChannel("idlegate-guard") : null;

  function now() { return Date.now(); }

  function learn(remaining, at, share) {
    if (at < learnedAt) return;
    learnedAt = at;
    deadline = at + remaining;
    if (share && channel) channel.postMessage({ deadline: deadline, at: at });
    plan();
  }

  function ask(method) {
    if (done || (asking && method === "GET")) return;
    asking = true;
    var sent = now();
    fetch(method === "POST" ? EXTEND : STATUS, {
      method: method, credentials: "same-origin", cache: "no-store", redirect: "manual",
      headers: { "X-Idlegate": "1" }
    }).then(function (r) {
      if (r.type === "opaqueredirect" || !r.ok) return { remaining: 0 };
      return r.json();
    }).then(function (s) {
      asking = false;
      if (s.guard === false) { stop(); return; }
      if (!(s.remaining > 0)) { clear(true); return; }
      learn(s.remaining, sent, true);
    }, function () {
      asking = false;
      timer = setTimeout(function () { ask("GET"); }, 1000);  // the network hiccuped: ask again soon
    });
  }

  function plan() {
    clearTimeout(timer);
    if (done) return;
    var left = deadline - now();
    if (left <= 0) { hideBar(); timer = setTimeout(function () { ask("GET"); }, 1000); ask("GET"); return; }
    if (left <= warnMs) showBar(); else hideBar();
    var wait = left > warnMs ? Math.min(30000, left - warnMs) : left;
    timer = setTimeout(function () { ask("GET"); }, Math.max(wait, 250));
  }

  function text(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000)), m = Math.floor(s / 60);
    return m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
  }

  function showBar() {
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "idlegate-warning";
      bar.setAttribute("role", "alertdialog");
      bar.setAttribute("aria-live", "assertive");
      bar.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:2147483647;padding:16px;background:#b00020;" +
        "color:#fff;font:bold 20px/1.4 sans-serif;text-align:center;box-shadow:0 2px 8px rgba(0,0,0,.5)";
      label = document.createElement("span");
      var button = document.createElement("button");
      button.id = "idlegate-stay";
      button.type = "button";
      button.textContent = "Stay signed in";
      button.style.cssText = "margin-left:16px;padding:8px 20px;font:bold 20px sans-serif;cursor:pointer";
      button.addEventListener("click", function () { ask("POST"); });
      bar.appendChild(label);
      bar.appendChild(button);
      document.documentElement.appendChild(bar);
      button.focus();
    }
    tick();
    if (!ticker) ticker = setInterval(tick, 1000);
  }

  function tick() {
    if (label) label.textContent = "For your privacy you will be signed out in " + text(deadline - now()) + ".";
  }

  function hideBar() {
    clearInterval(ticker);
    ticker = 0;
    if (bar) { bar.remove(); bar = null; label = null; }
  }

  function clear(share) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    hideBar();
    var cover = document.createElement("div");
    cover.id = "idlegate-cleared";
    cover.style.cssText = "position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:2147483647;background:#fff;" +
      "color:#333;font:24px/1.4 sans-serif;display:flex;align-items:center;justify-content:center";
    cover.textContent = "Signed out for inactivity.";
    document.documentElement.appendChild(cover);
    if (document.body) document.body.style.visibility = "hidden";
    if (share && channel) channel.postMessage({ cleared: true });
    location.replace(LOGIN);
  }

  function stop() { done = true; clearTimeout(timer); hideBar(); }

  if (channel) channel.onmessage = function (e) {
    if (e.data && e.data.cleared) clear(false);
    else if (e.data && e.data.deadline) learn(e.data.deadline - e.data.at, e.data.at, false);
  };

  // The page's own requests: while the warning shows, one of them may have moved the server's deadline.
  function activity(url) {
    if (bar && String(url).indexOf("/idlegate/") < 0) ask("GET");
  }
  if (window.fetch) {
    var realFetch = window.fetch;
    window.fetch = function (input) {
      var p = realFetch.apply(this, arguments);
      var url = input && input.url ? input.url : input;
      p.then(function () { activity(url); }, function () {});
      return p;
    };
  }
  var realOpen = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.addEventListener("loadend", function () { activity(url); });
    return realOpen.apply(this, arguments);
  };

  ask("GET");
})();
"""#
}
