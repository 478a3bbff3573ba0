// The live view: applies each tick of the site's SSE stream to the figures, the per-second chart
// and the list of latest events. Every tenant-supplied string is set as textContent, never as HTML.
// window.pulseLive.arrivals records when each tick was on screen, for bench/dashboard_live.py.
(function () {
  "use strict";
  var WINDOW_S = 300, MAX_ROWS = 50, MAX_ARRIVALS = 5000, FRESHNESS_EVERY_MS = 200, FRESH_MS = 10000;
  var SKEW_SAMPLES = 32;

  function width(el) { return Math.max(el.clientWidth, 260); }

  function ageLabel(ms) {
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }

  function cell(tag, cls, text) {
    var el = document.createElement(tag);
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function start() {
    var island = document.getElementById("rt-data");
    var chartEl = document.getElementById("rt-chart");
    if (!island || !chartEl || !window.uPlot) return;
    var data = JSON.parse(island.textContent);
    var status = document.getElementById("rt-status");
    var visitors = document.getElementById("rt-visitors");
    var eventsEl = document.getElementById("rt-events");
    var freshness = document.getElementById("rt-freshness");
    var list = document.getElementById("rt-stream");
    var empty = document.getElementById("rt-empty");
    var clock = new Intl.DateTimeFormat("en-GB", {
      timeZone: data.timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    function axisTime(u, splits) {
      return splits.map(function (s) {
        var text = clock.format(new Date(s * 1000));
        return s % 60 === 0 ? text.slice(0, 5) : text.slice(5);
      });
    }
    var live = window.pulseLive = { arrivals: [], ticks: 0 };
    var newest = data.newest_ms;
    var connected = false;

    // Event times come from the server's clock. Server minus browser clock, estimated from the page
    // and each tick: every estimate falls short by its transit time, so the largest recent one wins.
    var skews = [data.now_ms - Date.now()];
    var skew = skews[0];
    function noteSkew(estimate) {
      skews.push(estimate);
      if (skews.length > SKEW_SAMPLES) skews.shift();
      skew = Math.max.apply(null, skews);
    }
    function serverNow() { return Date.now() + skew; }

    var xs = data.per_second.map(function (p) { return p[0]; });
    var ys = data.per_second.map(function (p) { return p[1]; });
    var css = getComputedStyle(document.documentElement);
    var accent = css.getPropertyValue("--accent").trim() || "#4ade80";
    var axis = { stroke: "#9ca3af", grid: { stroke: "#1f2937" }, ticks: { stroke: "#1f2937" } };
    var chart = new uPlot({
      width: width(chartEl), height: 200,
      legend: { show: false },
      cursor: { y: false },
      series: [{}, { label: "Events/s", stroke: accent, fill: accent + "66", width: 1,
                     paths: uPlot.paths.bars({ size: [0.9, 10] }) }],
      axes: [Object.assign({ values: axisTime, space: 60 }, axis), Object.assign({ size: 40 }, axis)],
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(2, max)]; } } },
    }, [xs, ys], chartEl);

    function slide(second) {
      var last = xs[xs.length - 1];
      if (second - last >= WINDOW_S) {
        for (var i = 0; i < xs.length; i++) { xs[i] = second - xs.length + 1 + i; ys[i] = 0; }
        return;
      }
      while (last < second) { last += 1; xs.push(last); ys.push(0); xs.shift(); ys.shift(); }
    }

    var drawing = false;
    function draw() {
      drawing = false;
      chart.setData([xs, ys]);
      eventsEl.textContent = String(ys.reduce(function (a, b) { return a + b; }, 0));
    }
    function drawSoon() {
      if (!drawing) { drawing = true; requestAnimationFrame(draw); }
    }

    function showFreshness() {
      var age = newest == null ? null : Math.max(0, serverNow() - newest);
      freshness.textContent = age == null ? "none in 24 h" : ageLabel(age);
      freshness.classList.toggle("fresh", connected && age != null && age < FRESH_MS);
      freshness.classList.toggle("stale", !connected || age == null || age > data.stale_after_ms);
    }

    function row(e) {
      var li = document.createElement("li");
      li.className = "rt-row rt-new";
      var at = new Date(e.ts_ms);
      var time = cell("time", "rt-time", clock.format(at));
      time.dateTime = at.toISOString();
      li.appendChild(time);
      li.appendChild(cell("span", e.name === "pageview" ? "rt-name rt-pageview" : "rt-name", e.name));
      var path = cell("span", "rt-path", e.path);
      path.title = e.path;
      li.appendChild(path);
      var meta = [e.source || "Direct", e.country, e.device, e.browser].filter(Boolean).join(" · ");
      li.appendChild(cell("span", "rt-meta", meta));
      return li;
    }

    function listEvents(recent) {
      var rows = document.createDocumentFragment();
      recent.forEach(function (e) { rows.appendChild(row(e)); });
      list.insertBefore(rows, list.firstChild);
      while (list.children.length > MAX_ROWS) list.removeChild(list.lastElementChild);
      empty.hidden = true;
    }

    function onTick(msg) {
      var tick = JSON.parse(msg.data);
      live.ticks += 1;
      noteSkew(tick.ts_ms - Date.now());
      slide(Math.floor(serverNow() / 1000));
      tick.seconds.forEach(function (p) {
        if (p[0] > xs[xs.length - 1]) slide(p[0]);
        var i = p[0] - xs[0];
        if (i >= 0) ys[i] += p[1];
      });
      visitors.textContent = String(tick.visitors);
      if (tick.recent.length) {
        listEvents(tick.recent);
        newest = Math.max(newest || 0, tick.recent[0].ts_ms);
      }
      showFreshness();
      drawSoon();
      var paths = tick.recent.map(function (e) { return e.path; });
      requestAnimationFrame(function () {
        live.arrivals.push({ newest_ms: tick.newest_ms, published_ms: tick.ts_ms, shown_ms: Date.now(), paths: paths });
        if (live.arrivals.length > MAX_ARRIVALS) live.arrivals.shift();
      });
    }

    var source = new EventSource(data.stream);
    source.addEventListener("ready", function () {
      connected = true;
      status.textContent = data.degraded ? "degraded" : "live";
      status.classList.toggle("on", !data.degraded);
      showFreshness();
    });
    source.addEventListener("tick", onTick);
    source.onerror = function () {
      connected = false;
      status.textContent = "reconnecting…";
      status.classList.remove("on");
      showFreshness();
    };

    setInterval(function () { slide(Math.floor(serverNow() / 1000)); drawSoon(); }, 1000);
    setInterval(showFreshness, FRESHNESS_EVERY_MS);
    window.addEventListener("resize", function () { chart.setSize({ width: width(chartEl), height: 200 }); });
    showFreshness();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
