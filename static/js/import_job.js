// The background import's page: polls the job's state and moves the progress bar; when the job
// starts or ends, reloads the page, which the server renders in words (and with the result).
(function () {
  "use strict";
  var section = document.querySelector(".import-job");
  if (!section) return;
  var url = section.getAttribute("data-status-url");
  var shown = section.getAttribute("data-status");
  var bar = document.getElementById("import-progress");

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        if (state.finished || state.status !== shown) { window.location.reload(); return; }
        if (state.percent !== null) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
