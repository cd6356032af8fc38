// A run's page: hovering (or focusing) a task anywhere (graph node, Gantt bar, table row)
// highlights that task everywhere. Delegated from the live box, so it survives refreshes.
(function () {
  "use strict";
  var box = document.getElementById("run-live");
  if (!box) return;
  function mark(event, on) {
    var el = event.target.closest ? event.target.closest("[data-task]") : null;
    if (!el || !box.contains(el)) return;
    var task = el.getAttribute("data-task");
    box.querySelectorAll("[data-task]").forEach(function (other) {
      if (other.getAttribute("data-task") === task) other.classList.toggle("hl", on);
    });
  }
  box.addEventListener("mouseover", function (e) { mark(e, true); });
  box.addEventListener("mouseout", function (e) { mark(e, false); });
  box.addEventListener("focusin", function (e) { mark(e, true); });
  box.addEventListener("focusout", function (e) { mark(e, false); });
})();
