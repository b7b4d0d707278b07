// Draws the dashboards' Plotly figures. Each figure comes to the page as JSON in a
// <script type="application/json"> (Django's json_script), built in analytics/charts.py, so the
// page needs no inline script and keeps its Content-Security-Policy.
(function () {
  "use strict";
  // No mode bar: its colours would need an inline <style>, and readers have the CSV and the table.
  var config = { responsive: true, displayModeBar: false };
  document.querySelectorAll(".js-chart").forEach(function (element) {
    var source = document.getElementById(element.dataset.figure);
    if (!source || typeof Plotly === "undefined") {
      return;
    }
    var figure = JSON.parse(source.textContent);
    Plotly.newPlot(element, figure.data, figure.layout, config);
  });
})();
