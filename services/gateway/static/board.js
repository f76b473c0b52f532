/* The coordinators' pipeline board, improved where JavaScript runs:
 *  - draws the funnel and ageing charts with Chart.js from the numbers the page carries
 *    (the same numbers are in the tables beside them: the page works without this file);
 *  - asks a cheap endpoint every few seconds whether the pipeline changed, and if it did,
 *    fetches the page again and swaps the board, the counts and the charts in place,
 *    saying so in a polite live region. A checkbox stops the updates (WCAG 2.2.2).
 * No inline script: the page's Content-Security-Policy allows scripts from this site only.
 */
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("js");

  var DATA_ID = "board-data";
  var LIVE_ID = "board-live";
  var charts = {};
  var timer = null;
  var busy = false;

  function readData(doc) {
    var node = doc.getElementById(DATA_ID);
    return node ? JSON.parse(node.textContent) : null;
  }

  var data = readData(document);
  if (!data) { return; }

  var FUNNEL_COLOUR = "#0b3d6e";
  // Waiting longer, darker; past a week, amber then red (the tables say it in words).
  var AGEING_COLOURS = ["#b7d0ea", "#6a9fd4", "#2f6fae", "#0b3d6e", "#d98e04", "#a4161a"];

  function commonOptions(horizontal) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: horizontal ? "y" : "x",
      plugins: { legend: { position: "bottom" }, tooltip: { enabled: true } },
      scales: {
        x: { beginAtZero: true, ticks: { precision: 0 } },
        y: { beginAtZero: true, ticks: { precision: 0 } }
      }
    };
  }

  function drawFunnel(funnel) {
    var canvas = document.getElementById("funnel-canvas");
    if (!canvas || typeof window.Chart === "undefined") { return; }
    var config = {
      type: "bar",
      data: {
        labels: funnel.labels,
        datasets: [{ label: funnel.series_label, data: funnel.values, backgroundColor: FUNNEL_COLOUR }]
      },
      options: commonOptions(true)
    };
    config.options.plugins.legend.display = false;
    if (charts.funnel) { charts.funnel.destroy(); }
    charts.funnel = new window.Chart(canvas, config);
  }

  function drawAgeing(ageing) {
    var canvas = document.getElementById("ageing-canvas");
    if (!canvas || typeof window.Chart === "undefined") { return; }
    var datasets = ageing.series.map(function (series, index) {
      return {
        label: series.label,
        data: series.values,
        backgroundColor: AGEING_COLOURS[index % AGEING_COLOURS.length]
      };
    });
    var options = commonOptions(false);
    options.scales.x.stacked = true;
    options.scales.y.stacked = true;
    var config = { type: "bar", data: { labels: ageing.labels, datasets: datasets }, options: options };
    if (charts.ageing) { charts.ageing.destroy(); }
    charts.ageing = new window.Chart(canvas, config);
  }

  function drawCharts(d) {
    if (d.funnel) { drawFunnel(d.funnel); }
    if (d.ageing) { drawAgeing(d.ageing); }
  }

  function announce(text) {
    var status = document.getElementById("board-announcer");
    if (status) { status.textContent = text; }
  }

  function clockTime() {
    var now = new Date();
    return now.toLocaleTimeString(root.lang || undefined, { hour: "2-digit", minute: "2-digit" });
  }

  /* Swap the live part of the board for the one in a freshly fetched page, keeping the
   * focus on the same element (by id) where it still exists. */
  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var incoming = fresh.getElementById(LIVE_ID);
    var current = document.getElementById(LIVE_ID);
    var freshData = readData(fresh);
    if (!incoming || !current || !freshData) { return false; }
    var focusedId = document.activeElement && current.contains(document.activeElement)
      ? document.activeElement.id : null;
    current.replaceWith(incoming);
    document.getElementById(DATA_ID).textContent = JSON.stringify(freshData);
    data = freshData;
    drawCharts(data);
    if (focusedId && document.getElementById(focusedId)) {
      document.getElementById(focusedId).focus();
    }
    return true;
  }

  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(data.changes_url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) {
          announce(data.strings.signed_out);
          stop();
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (!answer || answer.version === data.version) { return null; }
        return fetch(window.location.href, { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (html && swap(html)) {
              announce(data.strings.updated.replace("%(time)s", clockTime()));
            }
          });
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { busy = false; });
  }

  function start() {
    if (timer === null) { timer = window.setInterval(poll, data.refresh_seconds * 1000); }
  }

  function stop() {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
  }

  var toggle = document.getElementById("auto-refresh");
  if (toggle) {
    toggle.closest("[hidden]") && toggle.closest("[hidden]").removeAttribute("hidden");
    toggle.addEventListener("change", function () {
      if (toggle.checked) { start(); poll(); announce(data.strings.resumed); }
      else { stop(); announce(data.strings.paused); }
    });
  }

  drawCharts(data);
  start();
})();
