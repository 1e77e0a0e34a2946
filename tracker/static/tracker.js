/* tracker.js: counts views, shares and how far readers got; fills view counts.
   No cookies, no storage, no dependencies, no inline code needed (a strict CSP works).
   Served by tracker at /tracker.js, minified; its SRI hash at /tracker.js.sha384. */
(function (w, d) {
  var s = d.currentScript;
  if (!s) return;
  var base = s.getAttribute("data-endpoint") || new URL(s.src, d.baseURI).origin;
  var nav = navigator, now = Date.now, loc = location;
  var dnt = "__RESPECT_DNT__" == "1" &&
    (nav.doNotTrack == "1" || w.doNotTrack == "1" || nav.globalPrivacyControl);
  /* The article's metadata fields (tracker/metadata.py's, but the URL: the page's own). */
  var META = ["title", "category", "lang", "author", "group", "published"];
  var VIEWS = "tracker-views", STACKED = "tracker-article";
  function noop() {}
  function on(target, type, f, options) { target.addEventListener(type, f, options); }
  function all(selector, f) { d.querySelectorAll(selector).forEach(f); }
  function attr(el, k) { return el.getAttribute("data-" + k); }
  /* An article: its id and metadata, each as `get` finds it. */
  function article(id, get) {
    var a = { id: id };
    META.forEach(function (k) { a[k] = get(k); });
    return a;
  }
  /* The page's article: the script tag's attributes, or on a single-page site the
     <meta name="tracker:..."> tags that the app keeps up to date. */
  function meta(k) {
    var m = d.querySelector('meta[name="tracker:' + k + '"]');
    return m ? m.content : attr(s, k) || (k == "title" ? d.title : "");
  }
  function current() { return article(meta("article"), meta); }
  var page = {}, counted = {}, printed = 0;

  function event(type, a, extra) {
    /* An id per event: a retry of it (after a 503) is not counted twice. */
    var e = { type: type, article_id: a.id, url: loc.href, id: Math.random().toString(36).slice(2) };
    META.forEach(function (k) { if (a[k]) e[k] = a[k]; });
    return Object.assign(e, extra);
  }

  function send(e) {
    if (dnt || !e.article_id) return;
    var body = JSON.stringify(e), url = base + "/api/v1/events";
    if (nav.sendBeacon && nav.sendBeacon(url, body)) return; /* text/plain, no CORS preflight */
    var post = function () {
      return fetch(url, { method: "POST", body: body, keepalive: 1 });
    };
    post().then(function (r) { if (r.status == 503) setTimeout(post, 2000); }).catch(noop);
  }

  /* How far the reader got: the seconds the page was visible and the reader active (an
     input within the last 5 s), up to 30 minutes, and the deepest quarter of the body
     ([data-tracker-body], or the page) reached. Sent when the page is hidden: only what
     is new since the last send, so a return from the back/forward cache adds to it. */
  var active, engaged, sentS, depth, sentDepth, seq, viewing = 0;
  function reached() {
    var b = d.querySelector("[data-tracker-body]"), h = innerHeight,
      r = b ? b.getBoundingClientRect() : { top: -scrollY, height: d.documentElement.scrollHeight },
      q = Math.min(4, (h - r.top) / r.height * 4 | 0) * 25;
    if (q > depth) depth = q;
  }
  ["scroll", "keydown", "pointerdown", "pointermove"].forEach(function (t) {
    on(w, t, function () { active = now(); reached(); }, 1);
  });
  function report() {
    if (!viewing) return;
    reached();
    if (engaged > sentS || depth > sentDepth) {
      send(event("engage", page, { engaged_s: engaged - sentS, depth: depth, prev_depth: sentDepth, seq: seq++ }));
      sentS = engaged; sentDepth = depth;
    }
  }
  on(d, "visibilitychange", function () { if (d.hidden) report(); });
  on(w, "pagehide", report);

  /* A view of the page's article, once per address it is shown at. */
  function view() {
    var p = current(), key = p.id + loc.href;
    if (!p.id || counted[key]) return;
    report(); /* what was read of the article before, on a single-page site */
    /* The referrer is the page's own only for its first view: later views came from
       within the site. */
    send(event("view", p, { referrer: viewing ? void 0 : d.referrer || void 0 }));
    page = p; counted[key] = counted[p.id] = viewing = 1;
    active = now(); engaged = sentS = depth = sentDepth = seq = 0;
  }

  function share(channel, a) {
    if (channel == "print") printed = now();
    send(event("share", a || page, { channel: channel }));
  }

  on(d, "click", function (ev) {
    var el = ev.target.closest && ev.target.closest("[data-share]");
    if (!el) return;
    var channel = attr(el, "share"), box = el.closest("[data-" + STACKED + "]");
    share(channel, box && stacked(box));
    if (channel == "copy_link" && nav.clipboard) nav.clipboard.writeText(loc.href).catch(noop);
    if (channel == "print" && el.tagName != "A") w.print();
  }, 1);

  /* Ctrl-P / the browser's menu: count it unless a print button just did. */
  on(w, "beforeprint", function () { if (now() - printed > 2000) share("print"); });

  /* Infinite scroll: each [data-tracker-article] element counts a view of its article
     once half of it has been visible for a second (the page's own article is not
     counted twice). */
  function stacked(el) { return article(attr(el, STACKED), function (k) { return attr(el, k); }); }
  var watch = new IntersectionObserver(function (entries) {
    entries.forEach(function (en) {
      var el = en.target;
      clearTimeout(el._t);
      if (en.isIntersecting) el._t = setTimeout(function () {
        var a = stacked(el);
        watch.unobserve(el);
        if (!counted[a.id]) { counted[a.id] = 1; send(event("view", a)); }
      }, 1000);
    });
  }, { threshold: .5 });

  /* Counted only once shown: a prerendered page, or a background tab the reader never
     opens, sends nothing (the counts on it still fill). */
  function shown(f) {
    if (d.prerendering || d.hidden) on(d, d.prerendering ? "prerenderingchange" : "visibilitychange", function () { shown(f); }, { once: 1 });
    else f();
  }

  /* Every second: engaged time, and articles added below (infinite scroll). */
  setInterval(function () {
    if (!d.hidden && now() - active < 5000 && engaged < 1800) engaged++;
    all("[data-" + STACKED + "]", function (el) { if (!el._w && !d.prerendering) { el._w = 1; watch.observe(el); } });
  }, 1000);

  /* A JSON read of the API. An error's body has no articles: reading them throws, and the
     caller's catch keeps the page as it was. */
  function read(path) {
    return fetch(base + "/api/v1/" + path).then(function (r) { return r.json(); });
  }

  function fill() {
    var ids = {};
    all("[data-" + VIEWS + "]", function (el) { ids[attr(el, VIEWS)] = 1; });
    ids = Object.keys(ids);
    for (var j = 0; j < ids.length; j += 100) {
      read("articles/stats?ids=" + ids.slice(j, j + 100).map(encodeURIComponent).join(","))
        .then(function (data) {
          data.articles.forEach(function (a) {
            all("[data-" + VIEWS + "]", function (el) {
              if (attr(el, VIEWS) == a.article_id) el.textContent = a.views.toLocaleString();
            });
          });
        }).catch(noop);
    }
  }

  /* "Most read" boxes: the box's data-* attributes (period, category, lang, limit) are
     the query, one request per distinct query. Links to http(s) pages only: a stored url
     is whatever some page sent. */
  function popular() {
    var p = {};
    all("[data-tracker-popular]", function (b) {
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
      }).catch(noop);
    });
  }

  /* Single-page sites (data-spa): a view after each history navigation, once the app
     has put the new article's id on the page. */
  if (s.hasAttribute("data-spa")) {
    var push = history.pushState, later = function () { setTimeout(shown, 100, view); };
    history.pushState = function () { push.apply(this, arguments); later(); };
    on(w, "popstate", later);
  }

  /* tracker.view(id, {title, category, lang, author, group}): the app says which article
     is on screen (what it leaves out is read from the page); tracker.share(channel). */
  w.tracker = {
    view: function (id, m) {
      current = function () { return article(id, function (k) { return (m || {})[k] || meta(k); }); };
      shown(view);
    },
    share: share
  };

  function start() {
    shown(view);
    /* A moment later, so the count read back includes this view. */
    setTimeout(fill, 300);
    popular();
  }
  if (d.readyState == "loading") on(d, "DOMContentLoaded", start); else start();
})(window, document);
