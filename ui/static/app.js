// Dashboard behaviour: keeps the live chart moving over SSE and asks the overview to refresh
// after ticks (the overview's own chart is ui/static/overview.js).
// No inline scripts: data arrives in <script type="application/json"> islands.
(function () {
  "use strict";
  var css = getComputedStyle(document.documentElement);
  var accent = css.getPropertyValue("--accent").trim() || "#4ade80";

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function width(el) { return Math.max(el.clientWidth, 280); }

  // The overview panel re-reads its figures after ticks, at most every 2 s, and once more after
  // the last tick of a burst: htmx's own throttle drops the triggers inside its window, so the
  // panel could stay on a count the chart had already moved past.
  var REFRESH_MS = 2000, refreshing = null, pending = false;
  function refreshSoon() {
    if (refreshing) { pending = true; return; }
    document.body.dispatchEvent(new CustomEvent("pulse:refresh"));
    refreshing = setTimeout(function () {
      refreshing = null;
      if (pending) { pending = false; refreshSoon(); }
    }, REFRESH_MS);
  }

  function startLive() {
    var el = document.getElementById("live-chart");
    var initial = readJSON("live-data");
    var status = document.getElementById("live-status");
    if (!el || !initial || !window.uPlot) return;
    var xs = initial.map(function (p) { return p[0]; });
    var ys = initial.map(function (p) { return p[1]; });
    var chart = new uPlot({
      width: width(el), height: 160,
      series: [{}, { label: "Events/s", stroke: accent, fill: accent + "33", width: 2, paths: uPlot.paths.bars({ size: [0.8] }) }],
      axes: [{ stroke: "#9ca3af", grid: { stroke: "#1f2937" } }, { stroke: "#9ca3af", grid: { stroke: "#1f2937" } }],
      scales: { x: { time: true } },
    }, [xs, ys], el);

    function slide(now) {
      while (xs[xs.length - 1] < now) { xs.push(xs[xs.length - 1] + 1); ys.push(0); xs.shift(); ys.shift(); }
    }
    setInterval(function () { slide(Math.floor(Date.now() / 1000)); chart.setData([xs, ys]); }, 1000);

    var source = new EventSource(el.dataset.stream);
    // With the live layer down the stream connects but carries no ticks: the badge says so.
    var degraded = function () { return document.getElementById("live-degraded"); };
    source.addEventListener("ready", function () {
      status.textContent = degraded() ? "degraded" : "live";
      status.classList.toggle("on", !degraded());
    });
    source.addEventListener("tick", function (msg) {
      var tick = JSON.parse(msg.data);
      var second = Math.floor(tick.ts_ms / 1000);
      slide(second);
      ys[ys.length - 1 - (xs[xs.length - 1] - second)] += tick.events;
      chart.setData([xs, ys]);
      el.dataset.liveEvents = String(Number(el.dataset.liveEvents || 0) + tick.events);
      refreshSoon();
    });
    source.onerror = function () { status.textContent = "reconnecting…"; status.classList.remove("on"); };
  }

  document.addEventListener("DOMContentLoaded", startLive);
})();
