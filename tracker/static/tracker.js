/* tracker.js: counts a view on load and a share on click; fills view counts.
   No cookies, no storage, no dependencies. Served by tracker at /tracker.js. */
(function (w, d) {
  "use strict";
  var s = d.currentScript || d.querySelector("script[data-article]");
  if (!s) return;
  var base = s.getAttribute("data-endpoint") || new URL(s.src, d.baseURI).origin;
  var dnt = "__RESPECT_DNT__" === "1" &&
    (navigator.doNotTrack === "1" || w.doNotTrack === "1" || navigator.globalPrivacyControl === true);
  var article = s.getAttribute("data-article");
  var printed = 0;

  /* An id per event: a retry of it (after a 503) is not counted twice. */
  function uid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 12); }

  function event(type, channel) {
    var e = { type: type, article_id: article, url: location.href, title: s.getAttribute("data-title") || d.title, id: uid() };
    if (channel) e.channel = channel;
    if (type === "view" && d.referrer) e.referrer = d.referrer;
    ["category", "lang", "author", "group"].forEach(function (k) {
      var v = s.getAttribute("data-" + k);
      if (v) e[k] = v;
    });
    return e;
  }

  function send(e) {
    if (dnt || !article) return;
    var body = JSON.stringify(e), url = base + "/api/v1/events";
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    } catch (x) { /* fall back to fetch */ }
    if (!w.fetch) return;
    var post = function () {
      return fetch(url, { method: "POST", body: body, keepalive: true, mode: "cors", headers: { "Content-Type": "text/plain" } });
    };
    post().then(function (r) { if (r.status === 503) setTimeout(post, 2000); }).catch(function () {});
  }

  function share(channel) {
    if (channel === "print") printed = Date.now();
    send(event("share", channel));
  }

  d.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest && ev.target.closest("[data-share]");
    if (!el) return;
    var channel = el.getAttribute("data-share");
    share(channel);
    if (channel === "copy_link" && navigator.clipboard) navigator.clipboard.writeText(location.href).catch(function () {});
    if (channel === "print" && el.tagName !== "A") w.print();
  }, true);

  /* Ctrl-P / the browser's menu: count it unless a print button just did. */
  w.addEventListener("beforeprint", function () {
    if (Date.now() - printed > 2000) share("print");
  });

  /* A JSON read of the API. An error's body has no articles: reading them throws, and the
     caller's catch keeps the page as it was. */
  function read(path) {
    return fetch(base + "/api/v1/" + path).then(function (r) { return r.json(); });
  }

  function fill() {
    var els = d.querySelectorAll("[data-tracker-views]"), ids = [], seen = {};
    for (var i = 0; i < els.length; i++) {
      var id = els[i].getAttribute("data-tracker-views");
      if (id && !seen[id]) { seen[id] = 1; ids.push(id); }
    }
    for (var j = 0; j < ids.length; j += 100) {
      read("articles/stats?ids=" + ids.slice(j, j + 100).map(encodeURIComponent).join(","))
        .then(function (data) {
          var views = {};
          data.articles.forEach(function (a) { views[a.article_id] = a.views; });
          for (var k = 0; k < els.length; k++) {
            var n = views[els[k].getAttribute("data-tracker-views")];
            if (n !== undefined) els[k].textContent = n.toLocaleString();
          }
        }).catch(function () {});
    }
  }

  /* "Most read" boxes: the box's data-* attributes (period, category, lang, limit) are
     the query, one request per distinct query. Links to http(s) pages only: a stored url
     is whatever some page sent. */
  function popular() {
    var p = {};
    d.querySelectorAll("[data-tracker-popular]").forEach(function (b) {
      var q = new URLSearchParams(b.dataset);
      q.sort();
      (p[q] = p[q] || read("popular?" + q)).then(function (j) {
        var o = d.createElement("ol");
        j.articles.forEach(function (a) {
          var l = d.createElement("a");
          l.href = a.url;
          l.textContent = a.title || a.article_id;
          if (/^https?:/i.test(a.url)) o.appendChild(d.createElement("li")).appendChild(l);
        });
        b.replaceChildren(o);
      }).catch(function () {});
    });
  }

  function start() {
    if (article) send(event("view"));
    /* A moment later, so the count read back includes this view. */
    if (w.fetch) { setTimeout(fill, 300); popular(); }
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start); else start();
})(window, document);
