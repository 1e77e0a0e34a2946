/* reports.js: the editors' /reports page. Reads the report API with the login cookie
   (same origin), keeps the view's state in the address (to bookmark or share it) and
   draws the curves as SVG.
   Titles, urls and labels come from whatever pages send events: every one of them goes
   into the page as text (createElement, textContent), never as markup. */
(function () {
  "use strict";

  var CHANNELS = ["facebook", "twitter", "telegram", "whatsapp", "vk", "linkedin", "reddit",
    "email", "copy_link", "print", "other"];
  var SVG = "http://www.w3.org/2000/svg";
  var TRENDING_LIMIT = 10;
  var TRENDING_REFRESH_MS = 30000;
  var MAX_GROUP_MEMBERS = 20; // a story's curve sums its articles' curves, one request each
  var METRIC_NAMES = {
    views: "Views", uniques: "Readers", shares: "Shares", referrals: "Referrals",
    engaged: "Engaged seconds", read_through: "Read to the end"
  };

  var filters = byId("filters");
  var trendingForm = byId("trending-form");
  var chartForm = byId("chart-form");
  var compareForm = byId("compare-form");
  var forms = [filters, trendingForm, chartForm, compareForm];
  // What the address holds besides the forms' fields.
  var state = { article: "" };
  // article id -> title, from every row seen: names for the take-off legend.
  var titles = {};
  var labels = { category: {}, lang: {}, author: {} };
  var rowsByKey = {}; // the popular table's rows, by key (article or group)
  var drawn = {}; // container id -> the last chart drawn there, redrawn on resize
  var inFlight = {};
  var lastPopular = null;
  var lastTrending = "";

  function byId(id) { return document.getElementById(id); }

  /* An HTML element with attributes and children (strings become text nodes). */
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    setAll(node, attrs);
    (children || []).forEach(function (child) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    setAll(node, attrs);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setAll(node, attrs) {
    Object.keys(attrs || {}).forEach(function (name) {
      if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, attrs[name]);
    });
  }

  function number(n) { return n === null || n === undefined ? "—" : n.toLocaleString(); }
  function percent(share) { return Math.round(share * 100) + " %"; }

  /* Only web pages are linked: a stored url may be anything a sender put there. */
  function safeUrl(url) { return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null; }

  var utcTime = new Intl.DateTimeFormat(undefined, {
    timeZone: "UTC", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });
  var utcDay = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", day: "numeric", month: "short" });
  var utcHour = new Intl.DateTimeFormat(undefined, {
    timeZone: "UTC", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });

  function when(iso) { return utcTime.format(new Date(iso)); }

  /* ---- The address: every form field and the selected article. ---- */

  function fields() {
    var all = [];
    forms.forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name) all.push(field);
      });
    });
    return all;
  }

  function readAddress() {
    var query = new URLSearchParams(location.search);
    fields().forEach(function (field) {
      var value = query.get(field.name);
      if (value === null) return;
      if (field.tagName === "SELECT") {
        // Unknown values (an old or hand-edited link) leave the default.
        if (Array.prototype.some.call(field.options, function (o) { return o.value === value; })) {
          field.value = value;
        }
      } else {
        field.value = value;
      }
    });
    state.article = query.get("article") || "";
  }

  function writeAddress() {
    var query = new URLSearchParams();
    var custom = filters.elements.period.value === "custom";
    fields().forEach(function (field) {
      var initial = field.tagName === "SELECT" ? defaultOption(field) : "";
      if (field.type === "date" && !custom) return; // dates only go with period "Dates…"
      if (field.value && field.value !== initial) query.set(field.name, field.value);
    });
    if (state.article) query.set("article", state.article);
    var search = query.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }

  function defaultOption(select) {
    var chosen = Array.prototype.find.call(select.options, function (o) { return o.defaultSelected; });
    return (chosen || select.options[0]).value;
  }

  /* ---- Fetching: JSON with the API's errors as messages; the newest request wins. ---- */

  function latest(name) {
    if (inFlight[name]) inFlight[name].abort();
    inFlight[name] = new AbortController();
    return inFlight[name].signal;
  }

  function getJSON(url, signal) {
    return fetch(url, { signal: signal, headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        // Logged out, or the token was revoked: back to the form.
        location.assign("/reports/login");
        throw new Error("Not logged in.");
      }
      return r.json().catch(function (error) {
        // Aborted while the body was read (a newer request replaced it): not an answer.
        if (error.name === "AbortError" || r.ok) throw error;
        return {};
      }).then(function (body) {
        if (r.ok) return body;
        var detail = body.detail || {};
        throw new Error(detail.message ? detail.field + ": " + detail.message : "Error " + r.status + ".");
      });
    });
  }

  function failed(status) {
    return function (error) {
      if (error.name === "AbortError") return; // replaced by a newer request
      status.textContent = error.message;
      status.classList.add("error");
    };
  }

  function say(status, text) {
    status.textContent = text;
    status.classList.remove("error");
  }

  function articlePath(id) {
    return "/api/v1/articles/" + id.split("/").map(encodeURIComponent).join("/") + "/timeseries";
  }

  /* ---- The popular table. ---- */

  function addChannelOptions() {
    var select = filters.elements.metric;
    ["shares", "referrals"].forEach(function (kind) {
      var group = h("optgroup", { label: METRIC_NAMES[kind] + " by channel" });
      CHANNELS.forEach(function (channel) {
        group.append(h("option", { value: kind + ":" + channel }, [METRIC_NAMES[kind] + ": " + channel.replace("_", " ")]));
      });
      select.append(group);
    });
  }

  function metricLabel(metric) {
    var parts = metric.split(":");
    return METRIC_NAMES[parts[0]] + (parts[1] ? ": " + parts[1].replace("_", " ") : "");
  }

  function nextDay(date) {
    var day = new Date(date + "T00:00:00Z");
    day.setUTCDate(day.getUTCDate() + 1);
    return day.toISOString().slice(0, 10);
  }

  function daysAgo(n) {
    var day = new Date();
    day.setUTCDate(day.getUTCDate() - n);
    return day.toISOString().slice(0, 10);
  }

  /* The API's query for the filters; null when the dates are not usable yet. */
  function popularQuery() {
    var f = filters.elements, query = new URLSearchParams();
    if (f.period.value === "custom") {
      if (!f.from.value) return null;
      query.set("from", f.from.value);
      // The "to" date is the last day shown: the API's `to` is the end, exclusive.
      if (f.to.value) query.set("to", nextDay(f.to.value));
    } else {
      query.set("period", f.period.value);
    }
    query.set("metric", f.metric.value);
    ["category", "lang", "author"].forEach(function (name) {
      var value = f[name].value.trim();
      if (value) query.set(name, value);
    });
    query.set("group_by", f.group_by.value);
    query.set("limit", f.limit.value);
    return query.toString();
  }

  function showCustomDates() {
    var custom = filters.elements.period.value === "custom";
    document.querySelectorAll("[data-custom]").forEach(function (label) { label.hidden = !custom; });
    if (custom && !filters.elements.from.value) {
      filters.elements.from.value = daysAgo(6);
      filters.elements.to.value = daysAgo(0);
    }
  }

  function loadPopular(force) {
    var query = popularQuery(), status = byId("popular-status");
    if (query === null) {
      say(status, "Pick a first day.");
      return Promise.resolve();
    }
    if (query === lastPopular && !force) return Promise.resolve();
    lastPopular = query;
    byId("csv").href = "/api/v1/reports/popular?" + query + "&format=csv";
    var table = byId("popular-table");
    table.setAttribute("aria-busy", "true");
    return getJSON("/api/v1/reports/popular?" + query, latest("popular")).then(function (report) {
      table.removeAttribute("aria-busy");
      renderPopular(report);
    }, function (error) {
      if (error.name !== "AbortError") table.removeAttribute("aria-busy");
      failed(status)(error);
    });
  }

  function renderPopular(report) {
    var grouped = filters.elements.group_by.value === "group";
    byId("value-heading").textContent = metricLabel(report.metric);
    rowsByKey = {};
    var rows = report.rows.map(function (row) {
      rowsByKey[row.article_id] = row;
      remember(row);
      var tr = h("tr", { tabindex: "0", "data-key": row.article_id }, [
        h("td", { class: "num" }, [String(row.rank)]),
        titleCell(row, grouped),
        h("td", {}, [row.category || "—"]),
        h("td", {}, [row.author || "—"]),
        h("td", { class: "num ranked" }, [report.metric === "read_through" ? percent(row.value) : number(row.value)]),
        h("td", { class: "num" }, [number(row.views)]),
        h("td", { class: "num" }, [number(row.uniques)]),
        h("td", { class: "num" }, [number(row.shares_total)])
      ]);
      return tr;
    });
    if (!rows.length) {
      rows = [h("tr", {}, [h("td", { colspan: "8", class: "empty" }, ["Nothing counted in this period."])])];
    }
    var tbody = byId("popular-table").tBodies[0];
    tbody.replaceChildren.apply(tbody, rows);
    markSelected();
    fillLists();
    var range = /^1970-/.test(report.from) ? "all time" : when(report.from) + " – " + when(report.to) + " UTC";
    say(byId("popular-status"), report.rows.length + (grouped ? " stories" : " articles") + ", " + range + ".");
  }

  /* The title, linked to the article; an unverified claim (an event's, not yet checked
     against the article's page) is marked so and not linked. */
  function titleParts(row) {
    var name = row.title || row.article_id;
    if (row.verified === false) {
      return [name, h("span", { class: "unverified", title: "Claimed by an event, not yet read from the article's page" }, ["unverified"])];
    }
    var url = safeUrl(row.url);
    return [url ? h("a", { href: url }, [name]) : name];
  }

  function titleCell(row, grouped) {
    var cell = h("td", { class: "title" }, titleParts(row));
    var note = grouped && row.articles ? row.group || row.article_id : row.article_id;
    if (grouped && row.articles) note += " · " + row.articles.length + (row.articles.length === 1 ? " article" : " articles");
    cell.append(h("span", { class: "id" }, [note]));
    return cell;
  }

  function remember(row) {
    if (row.title) titles[row.article_id] = row.title;
    Object.keys(labels).forEach(function (name) {
      if (row[name]) labels[name][row[name]] = true;
    });
  }

  function fillLists() {
    [["categories", "category"], ["langs", "lang"], ["authors", "author"]].forEach(function (pair) {
      var list = byId(pair[0]);
      list.replaceChildren.apply(list, Object.keys(labels[pair[1]]).sort().map(function (value) {
        return h("option", { value: value });
      }));
    });
    var ids = byId("article-ids");
    ids.replaceChildren.apply(ids, Object.keys(titles).sort().map(function (id) {
      return h("option", { value: id, label: titles[id] });
    }));
  }

  /* ---- Selecting a row: click, or Enter on a focused row. ---- */

  function onRowEvent(event) {
    var row = event.target.closest && event.target.closest("tr[data-key]");
    if (!row) return;
    if (event.type === "keydown") {
      if (event.key !== "Enter" || event.target !== row) return;
      event.preventDefault();
    } else if (event.target.closest("a")) {
      return; // a click on the title opens the article
    }
    select(row.getAttribute("data-key"));
  }

  function select(key) {
    state.article = key;
    writeAddress();
    markSelected();
    loadChart();
  }

  function markSelected() {
    document.querySelectorAll("tr[data-key]").forEach(function (tr) {
      if (tr.getAttribute("data-key") === state.article) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    });
    byId("as-a").disabled = byId("as-b").disabled = !state.article;
  }

  /* ---- Trending: top 10 of the last minutes, refreshed every 30 s. ---- */

  function loadTrending() {
    var f = trendingForm.elements, status = byId("trending-status");
    var query = new URLSearchParams({ window: f.t_window.value, metric: f.t_metric.value, limit: String(TRENDING_LIMIT) });
    return getJSON("/api/v1/reports/trending?" + query, latest("trending")).then(renderTrending, failed(status));
  }

  function renderTrending(report) {
    var minutes = parseInt(report.window, 10);
    byId("trending-caption").textContent = "Top " + TRENDING_LIMIT + " " + report.metric + " of the last " +
      minutes + " minutes, against the " + minutes + " before.";
    var rows = report.rows.map(function (row) {
      remember(row);
      return h("tr", { tabindex: "0", "data-key": row.article_id }, [
        h("td", { class: "num" }, [String(row.rank)]),
        h("td", { class: "title" }, titleParts(row)),
        h("td", { class: "num ranked" }, [report.metric === "read_through" ? percent(row.value) : number(row.value)]),
        h("td", { class: "num" }, [number(row.previous)]),
        h("td", { class: "num" }, [row.rise === null ? "new" : "×" + row.rise.toLocaleString()])
      ]);
    });
    if (!rows.length) rows = [h("tr", {}, [h("td", { colspan: "5", class: "empty" }, ["Nothing in this window."])])];
    var tbody = byId("trending-table").tBodies[0];
    tbody.replaceChildren.apply(tbody, rows);
    markSelected();
    // The live region's summary changes only when the top does: no announcement otherwise.
    var top = report.rows[0];
    var summary = top
      ? "Trending: " + (top.title || top.article_id) + " leads with " + number(top.value) + " " + report.metric + "."
      : "Trending: nothing in the last " + minutes + " minutes.";
    var status = byId("trending-status");
    if (summary !== lastTrending || status.classList.contains("error")) say(status, (lastTrending = summary));
  }

  /* ---- One article's curve. ---- */

  function loadChart() {
    var key = state.article, status = byId("chart-status"), span = chartForm.elements.span.value;
    if (!key) return Promise.resolve();
    var row = rowsByKey[key];
    var ids = row && row.articles ? row.articles.slice(0, MAX_GROUP_MEMBERS) : [key];
    var granularity = span === "24h" ? "hour" : "day";
    var query = "?period=" + span + "&granularity=" + granularity;
    var signal = latest("chart");
    say(status, "Loading…");
    return Promise.all(ids.map(function (id) { return getJSON(articlePath(id) + query, signal); }))
      .then(function (all) {
        // A story's curve: its articles' views, bucket by bucket (the same buckets for all,
        // unless an hour began between the answers: then the first one's count).
        var buckets = all[0].buckets.map(function (bucket, i) {
          var views = all.reduce(function (sum, s) {
            var same = s.buckets[i];
            return sum + (same && same.start === bucket.start ? same.views : 0);
          }, 0);
          return { start: bucket.start, views: views };
        });
        var name = (row && row.title) || titles[key] || key;
        var story = ids.length > 1 ? " (its story: " + ids.length + " articles)" : "";
        var per = granularity === "hour" ? "hour" : "day";
        var title = "Views per " + per + " of “" + name + "”" + story + ", " + spanText(span) + " (UTC)";
        var total = buckets.reduce(function (sum, b) { return sum + b.views; }, 0);
        draw("chart", {
          title: title,
          description: number(total) + " views in " + buckets.length + " " + per + "s.",
          series: [{ name: name, cls: "series-a", points: buckets.map(function (b) { return b.views; }) }],
          xLabel: function (i) {
            var start = new Date(buckets[i].start);
            return per === "hour" ? utcHour.format(start) : utcDay.format(start);
          },
          pointLabel: function (i, value) { return when(buckets[i].start) + ": " + number(value) + " views"; },
          length: buckets.length
        });
        say(status, title + ": " + number(total) + " views.");
      }, failed(status));
  }

  function spanText(span) {
    return { "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" }[span];
  }

  /* ---- Take-off: two articles from their publication, overlaid. ---- */

  function loadCompare() {
    var f = compareForm.elements, status = byId("compare-status");
    var ids = [f.a.value.trim(), f.b.value.trim()];
    if (!ids[0] || !ids[1]) return Promise.resolve();
    var span = f.c_span.value, hourly = span === "24h";
    var query = "?period=" + span + "&granularity=" + (hourly ? "hour" : "day") + "&since_publish=true";
    var signal = latest("compare");
    say(status, "Loading…");
    return Promise.all(ids.map(function (id, i) {
      return getJSON(articlePath(id) + query, signal).catch(function (error) {
        if (error.name !== "AbortError") error.message = "Article " + "AB"[i] + " (" + id + "): " + error.message;
        throw error;
      });
    })).then(function (all) {
      var length = Math.max(all[0].buckets.length, all[1].buckets.length);
      var unit = hourly ? "hour" : "day";
      var title = "Views per " + unit + " since publication, first " + (hourly ? "24 hours" : "7 days");
      draw("compare", {
        title: title,
        description: all.map(function (s, i) {
          return "AB"[i] + ": " + (titles[s.article_id] || s.article_id) + ", " +
            number(s.buckets.reduce(function (sum, b) { return sum + b.views; }, 0)) + " views";
        }).join("; ") + ".",
        series: all.map(function (s, i) {
          return {
            name: "AB"[i] + ": " + (titles[s.article_id] || s.article_id),
            cls: i ? "series-b" : "series-a",
            points: s.buckets.map(function (b) { return b.views; })
          };
        }),
        legend: true,
        // Day buckets are UTC days: the first one is the day of publication.
        xLabel: function (i) { return hourly ? "+" + i + "h" : "day " + (i + 1); },
        pointLabel: function (i, value) {
          return (hourly ? "hour " + i + " after publication" : "day " + (i + 1)) + ": " + number(value) + " views";
        },
        length: length
      });
      say(status, title + ".");
    }, failed(status));
  }

  /* ---- Charts: SVG sized to its box, redrawn when the box changes. ---- */

  function niceStep(max, ticks) {
    var raw = Math.max(max / ticks, 1), power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).find(function (s) { return s >= raw; });
    return Math.max(1, step);
  }

  function draw(id, chart) {
    drawn[id] = chart;
    var box = byId(id);
    var width = Math.max(280, box.clientWidth || 600);
    var legendRows = chart.legend ? chart.series.length : 0;
    var height = width < 500 ? 220 : 280;
    var max = 1;
    chart.series.forEach(function (s) { max = Math.max.apply(null, [max].concat(s.points)); });
    var step = niceStep(max, 4), top = Math.ceil(max / step) * step;
    // Room on the left for the widest number on the axis.
    var m = { left: 16 + 7 * top.toLocaleString().length, right: 14, top: 12 + legendRows * 20, bottom: 32 };
    var plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;
    var n = chart.length;
    var x = function (i) { return m.left + (n > 1 ? (i * plotW) / (n - 1) : plotW / 2); };
    var y = function (v) { return m.top + plotH - (v * plotH) / top; };
    var titleId = id + "-svg-title", descId = id + "-svg-desc";

    var root = svg("svg", {
      class: "chart-svg", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-labelledby": titleId + " " + descId
    });
    root.append(svg("title", { id: titleId }, chart.title), svg("desc", { id: descId }, chart.description));

    var axes = svg("g", { class: "axes" });
    for (var v = 0; v <= top; v += step) {
      axes.append(
        svg("line", { class: v ? "grid" : "axis", x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }),
        svg("text", { class: "tick", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toLocaleString())
      );
    }
    axes.append(svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + plotH }));
    var every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 70))));
    for (var i = 0; i < n; i += every) {
      // The last label ends at its point: centred, it would be cut at the edge.
      var anchor = n > 1 && i === n - 1 ? "end" : "middle";
      axes.append(svg("text", { class: "tick", x: x(i), y: height - m.bottom + 18, "text-anchor": anchor }, chart.xLabel(i)));
    }
    root.append(axes);

    chart.series.forEach(function (series, index) {
      var group = svg("g", { class: "series " + series.cls, "data-series": String(index) });
      group.append(svg("polyline", {
        class: "line",
        points: series.points.map(function (value, i) { return x(i) + "," + y(value); }).join(" ")
      }));
      series.points.forEach(function (value, i) {
        var point = svg("circle", { class: "point", cx: x(i), cy: y(value), r: n > 40 ? 2.5 : 3.5, "data-value": value });
        point.append(svg("title", {}, chart.pointLabel(i, value)));
        group.append(point);
      });
      root.append(group);
      if (chart.legend) {
        var ly = 14 + index * 20, chars = Math.max(10, Math.floor((width - m.left - 40) / 7));
        var name = series.name.length > chars ? series.name.slice(0, chars - 1) + "…" : series.name;
        var item = svg("g", { class: "legend " + series.cls });
        item.append(
          svg("title", {}, series.name),
          svg("line", { class: "line", x1: m.left, x2: m.left + 22, y1: ly - 4, y2: ly - 4 }),
          svg("text", { x: m.left + 30, y: ly }, name)
        );
        root.append(item);
      }
    });
    box.replaceChildren(root);
  }

  var resizing = 0;
  function redraw() {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(function () {
      Object.keys(drawn).forEach(function (id) { draw(id, drawn[id]); });
    });
  }

  /* ---- Wiring. ---- */

  function setAs(field) {
    compareForm.elements[field].value = state.article;
    writeAddress();
    var f = compareForm.elements;
    if (f.a.value && f.b.value) loadCompare();
    else f[field === "a" ? "b" : "a"].focus();
  }

  function start() {
    addChannelOptions();
    readAddress();
    showCustomDates();

    filters.addEventListener("change", function (event) {
      if (event.target.name === "period") showCustomDates();
      writeAddress();
      loadPopular(false);
    });
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      writeAddress();
      loadPopular(true);
    });
    trendingForm.addEventListener("change", function () {
      writeAddress();
      loadTrending();
    });
    chartForm.addEventListener("change", function () {
      writeAddress();
      loadChart();
    });
    compareForm.addEventListener("submit", function (event) {
      event.preventDefault();
      writeAddress();
      loadCompare();
    });
    compareForm.elements.c_span.addEventListener("change", function () {
      writeAddress();
      loadCompare();
    });
    byId("as-a").addEventListener("click", function () { setAs("a"); });
    byId("as-b").addEventListener("click", function () { setAs("b"); });
    ["popular-table", "trending-table"].forEach(function (id) {
      byId(id).addEventListener("click", onRowEvent);
      byId(id).addEventListener("keydown", onRowEvent);
    });
    window.addEventListener("resize", redraw);

    // The chart of a bookmarked article waits for the table: a story's row names its articles.
    loadPopular(true).then(loadChart);
    loadTrending();
    loadCompare();
    setInterval(function () {
      if (!document.hidden) loadTrending();
    }, TRENDING_REFRESH_MS);
  }

  start();
})();
