// modelyard dashboard: draws line charts with uPlot from JSON embedded in the page and
// refreshes them while a run trains. No inline script: the page's CSP allows only files.
(function () {
  "use strict";
  var COLORS = ["#0a58ca", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#0550ae", "#6e7781"];

  function readChart(node) {
    var source = document.getElementById(node.dataset.chart);
    return source ? JSON.parse(source.textContent) : null;
  }

  function options(chart, width) {
    var series = [{ label: chart.x_label }];
    chart.labels.forEach(function (label, i) {
      series.push({ label: label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
                    points: { show: chart.data[0].length < 60 } });
    });
    return {
      width: width, height: 260, series: series,
      scales: { x: { time: false } },
      axes: [{ label: chart.x_label }, { label: chart.y_label }],
      cursor: { drag: { x: true, y: false } },
    };
  }

  function draw(node) {
    var chart = readChart(node);
    if (!chart || !chart.data[0].length || typeof uPlot === "undefined") { return null; }
    var width = Math.max(320, Math.min(node.clientWidth || 600, 600));
    var plot = new uPlot(options(chart, width), chart.data, node);
    plot.root.querySelectorAll("canvas").forEach(function (c) { c.setAttribute("aria-hidden", "true"); });
    return plot;
  }

  function poll(node, plot) {
    var url = node.dataset.live;
    var key = node.id === "loss-chart" ? "loss" : "dev";
    function tick() {
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
        var chart = body[key];
        var count = document.querySelector('[data-points-of="' + node.id + '"]');
        if (count && chart) { count.textContent = "(" + chart.data[0].length + " points)"; }
        if (chart && chart.data[0].length) {
          if (plot && plot.series.length === chart.labels.length + 1) { plot.setData(chart.data); }
          else {
            if (plot) { plot.destroy(); }
            document.getElementById(node.dataset.chart).textContent = JSON.stringify(chart);
            plot = draw(node);
          }
        }
        if (body.status === "training") { setTimeout(tick, 3000); }
        else if (key === "loss") { window.location.reload(); }  // finished: show the final page
      }).catch(function () { setTimeout(tick, 10000); });
    }
    setTimeout(tick, 3000);
  }

  function init(root) {
    root.querySelectorAll("[data-chart]").forEach(function (node) {
      if (node.dataset.drawn) { return; }
      node.dataset.drawn = "1";
      var plot = draw(node);
      if (node.dataset.live) { poll(node, plot); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
