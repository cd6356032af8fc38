// A run's page follows the run: on each of its events (over the session's stream) the
// status, buttons and task table are fetched again (batched); the stream ends with the run.
(function () {
  "use strict";
  var box = document.getElementById("run-live");
  if (!box || !box.dataset.events || !window.EventSource) return;
  var timer = null;
  var busy = false;

  function refresh() {
    timer = null;
    if (busy) { schedule(); return; }
    busy = true;
    fetch(box.dataset.fragment, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      busy = false;
      if (html !== null) box.innerHTML = html;
    }).catch(function () { busy = false; });
  }

  function schedule() {
    if (timer === null) timer = setTimeout(refresh, 100);
  }

  var source = new EventSource(box.dataset.events);
  source.addEventListener("open", schedule);  // catch up on what happened before it opened
  source.addEventListener("change", schedule);
  source.addEventListener("end", function () { source.close(); schedule(); });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
