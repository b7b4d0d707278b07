// The offer form's planning table: recomputed by the server (one formula, in
// analytics/planning.py) whenever the holdout or the planning inputs change.
(function () {
  "use strict";
  var section = document.querySelector(".planning");
  if (!section) return;
  var url = section.getAttribute("data-planning-url");
  var inputs = ["id_holdout_percent", "id_expected_weekly", "id_baseline_percent"].map(function (id) {
    return document.getElementById(id);
  });
  var body = section.querySelector("tbody");
  var timer = null;

  function pp(share) { return share === null ? "—" : (share * 100).toFixed(1) + " pp"; }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (text, i) {
      var td = document.createElement("td");
      if (i > 0) td.className = "num";
      td.textContent = text;
      tr.appendChild(td);
    });
    return tr;
  }

  function refresh() {
    var query = new URLSearchParams({
      holdout: inputs[0].value, weekly: inputs[1].value, baseline: inputs[2].value
    });
    fetch(url + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        body.replaceChildren();
        // A refused input: the server says what is allowed, in words.
        if (data.error) { body.appendChild(row([data.error, "", "", ""])); return; }
        data.rows.forEach(function (r) {
          var rel = r.mde_relative === null ? "" : " (" + Math.round(r.mde_relative * 100) + "%)";
          body.appendChild(row([r.weeks + " weeks", String(r.n_treatment), String(r.n_control), pp(r.mde_absolute) + rel]));
        });
      })
      .catch(function () { /* keep the last table; the server-rendered one is still right */ });
  }

  inputs.forEach(function (input) {
    if (!input) return;
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  });
})();
