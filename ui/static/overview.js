// The site overview: draws the timeseries (with the previous period dashed) and keeps the
// chosen breakdown tabs when htmx swaps the overview for a new one (a filter, a period, a
// refresh after live ticks). The page works without it: every figure is server-rendered.
(function () {
  "use strict";
  var css = getComputedStyle(document.documentElement);
  var accent = css.getPropertyValue("--accent").trim() || "#4ade80";
  var accent2 = css.getPropertyValue("--accent-2").trim() || "#60a5fa";
  var muted = css.getPropertyValue("--muted").trim() || "#9ca3af";
  var grid = css.getPropertyValue("--border").trim() || "#1f2937";

  // Back and forward load the page again instead of restoring a snapshot of it: a snapshot
  // holds blank canvases and a live chart whose stream is gone.
  if (window.htmx) {
    htmx.config.historyCacheSize = 0;
    htmx.config.refreshOnHistoryMiss = true;
  }

  var chart = null, tooltip = null;

  function readSeries() {
    var el = document.getElementById("overview-series");
    return el ? JSON.parse(el.textContent) : null;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function bucketLabel(date, grain) {
    var day = date.getDate() + " " + MONTHS[date.getMonth()];
    if (grain === "minute" || grain === "hour") return day + ", " + pad(date.getHours()) + ":" + pad(date.getMinutes());
    if (grain === "week") return "Week of " + day;
    if (grain === "month") return MONTHS[date.getMonth()] + " " + date.getFullYear();
    return day + " " + date.getFullYear();
  }

  // Tick steps (seconds) for each bucket size, so the x axis marks whole buckets only.
  var STEPS = {
    minute: [60, 300, 600, 900, 1800],
    hour: [3600, 7200, 10800, 21600, 43200, 86400],
    day: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400],
    week: [7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400],
    month: [28 * 86400, 91 * 86400, 182 * 86400, 365 * 86400],
  };

  function tickLabel(date, grain, step) {
    if (grain === "minute" || (grain === "hour" && step < 86400)) return pad(date.getHours()) + ":" + pad(date.getMinutes());
    if (grain === "month" || step >= 28 * 86400) return MONTHS[date.getMonth()] + " " + String(date.getFullYear()).slice(2);
    return MONTHS[date.getMonth()] + " " + date.getDate();
  }

  function number(v) { return v == null ? "–" : Number(v).toLocaleString("en-US"); }

  function line(cls, label, value) {
    var row = document.createElement("div");
    row.className = "line " + cls;
    var k = document.createElement("span"); k.className = "k"; k.textContent = label;
    var v = document.createElement("span"); v.textContent = number(value);
    row.append(k, v);
    return row;
  }

  // The tooltip is built from text nodes only: no markup from data reaches the DOM.
  function showTooltip(u, data, toDate) {
    var idx = u.cursor.idx;
    if (idx == null) { tooltip.hidden = true; return; }
    tooltip.textContent = "";
    var when = document.createElement("div");
    when.className = "when";
    when.textContent = bucketLabel(toDate(data.t[idx]), data.grain);
    tooltip.append(when, line("visitors", "Visitors", data.visitors[idx]), line("pageviews", "Pageviews", data.pageviews[idx]));
    if (data.previous_visitors.length) {
      tooltip.append(line("prev", "Previous visitors", data.previous_visitors[idx]),
                     line("prev", "Previous pageviews", data.previous_pageviews[idx]));
    }
    tooltip.hidden = false;
    var left = u.cursor.left + u.over.offsetLeft, top = u.cursor.top + u.over.offsetTop;
    var box = u.root.getBoundingClientRect();
    var x = left + 14, width = tooltip.offsetWidth;
    if (x + width > box.width) x = left - width - 14;
    tooltip.style.transform = "translate(" + Math.max(0, x) + "px," + Math.max(0, top - 10) + "px)";
  }

  function drawChart() {
    var el = document.getElementById("overview-chart");
    var data = readSeries();
    if (chart) { chart.destroy(); chart = null; }
    if (!el || !data || !window.uPlot) return;
    el.textContent = "";
    var toDate = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.timezone); };
    var hasPrevious = data.previous_visitors.length > 0;
    var series = [
      {},
      { label: "Visitors", stroke: accent, fill: accent + "1f", width: 2, points: { size: 5 } },
      { label: "Pageviews", stroke: accent2, width: 2, points: { size: 5 } },
    ];
    var columns = [data.t, data.visitors, data.pageviews];
    if (hasPrevious) {
      series.push({ label: "Previous visitors", stroke: accent + "99", width: 1.5, dash: [5, 4], points: { show: false } });
      series.push({ label: "Previous pageviews", stroke: accent2 + "99", width: 1.5, dash: [5, 4], points: { show: false } });
      columns.push(data.previous_visitors, data.previous_pageviews);
    }
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: "12px system-ui, sans-serif" };
    var xAxis = Object.assign({}, axis, {
      incrs: STEPS[data.grain] || STEPS.day,
      space: 56,
      values: function (u, ticks, axis, space, step) {
        return ticks.map(function (ts) { return tickLabel(toDate(ts), data.grain, step); });
      },
    });
    chart = new uPlot({
      width: Math.max(el.clientWidth, 260),
      height: el.clientHeight || 260,
      tzDate: toDate,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, Math.ceil(max * 1.1))]; } } },
      axes: [xAxis, Object.assign({}, axis, { size: 48, values: function (u, ticks) { return ticks.map(function (v) { return v >= 1000 ? (v / 1000) + "k" : v; }); } })],
      series: series,
      hooks: { setCursor: [function (u) { showTooltip(u, data, toDate); }] },
    }, columns, el);
    tooltip = document.createElement("div");
    tooltip.className = "ov-tooltip";
    tooltip.hidden = true;
    chart.over.appendChild(tooltip);
    chart.over.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  }

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      var el = document.getElementById("overview-chart");
      if (chart && el) chart.setSize({ width: Math.max(el.clientWidth, 260), height: el.clientHeight || 260 });
    }, 120);
  });

  // A click (a filter, a period) and a refresh after live ticks both replace #overview. A refresh
  // answered after the click's view came in would put the old view back (or swap into an element
  // no longer in the page): a click aborts the refresh under way, and no refresh starts while
  // the click's answer is on its way.
  var navigatingUntil = 0;
  document.addEventListener("htmx:beforeRequest", function (e) {
    var overview = document.getElementById("overview");
    if (!overview) return;
    if (e.detail.elt === overview) {
      if (Date.now() < navigatingUntil) e.preventDefault();
    } else if (overview.contains(e.detail.elt)) {
      navigatingUntil = Date.now() + 15000;
      htmx.trigger(overview, "htmx:abort");
    }
  });
  document.addEventListener("htmx:afterSettle", function () { navigatingUntil = 0; });

  // The chosen tab of each breakdown card, kept across swaps.
  var chosenTabs = [];
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "overview") {
      chosenTabs = Array.prototype.map.call(document.querySelectorAll(".ov-tab-input:checked"), function (i) { return i.id; });
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    chosenTabs.forEach(function (id) {
      var input = document.getElementById(id);
      if (input) input.checked = true;
    });
    drawChart();
  });

  // The custom range's popover closes on Escape and on a click elsewhere.
  document.addEventListener("click", function (e) {
    document.querySelectorAll(".ov-custom[open]").forEach(function (d) { if (!d.contains(e.target)) d.open = false; });
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") document.querySelectorAll(".ov-custom[open]").forEach(function (d) { d.open = false; });
  });

  document.addEventListener("DOMContentLoaded", drawChart);
})();
