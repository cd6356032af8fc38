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

  // The run's events are fetched when their section is opened (again at each opening).
  var log = document.getElementById("run-events");
  if (log) {
    log.addEventListener("toggle", function () {
      if (!log.open) return;
      fetch(log.dataset.src, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) log.querySelector("div").innerHTML = html; });
    });
  }

  // Clicking a task (row, node or bar) opens its panel: attempts, errors, logs.
  var panel = document.getElementById("task-panel");
  var shown = null;
  var following = null;
  function open(task) {
    shown = task;
    fetch(panel.dataset.base + encodeURIComponent(task), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        // A panel fetched before "Follow logs" was pressed must not replace the log being
        // followed (the panel holds still meanwhile; it is fetched again when that ends).
        if (html === null || shown !== task || following) return;
        panel.innerHTML = html;
        panel.hidden = false;
      });
  }
  function pick(event) {
    if (event.target.closest("a, button, form, input")) return;
    var el = event.target.closest("[data-task]");
    if (el && box.contains(el)) open(el.getAttribute("data-task"));
  }
  if (panel) {
    box.addEventListener("click", pick);
    box.addEventListener("keydown", function (e) { if (e.key === "Enter") pick(e); });
    // While the run changes, the open panel follows it (the live box is refreshed).
    new MutationObserver(function () { if (shown !== null && !following) open(shown); })
      .observe(box, { childList: true });
    // "Follow logs" tails the running attempt's logs (the panel holds still meanwhile).
    panel.addEventListener("click", function (event) {
      var button = event.target.closest("button.follow");
      var pre = button && button.parentNode.querySelector("pre[data-follow]");
      if (!pre || following) return;
      following = new EventSource(pre.dataset.follow);
      button.disabled = true;
      button.textContent = "Following…";
      var fresh = true;
      following.addEventListener("log", function (e) {
        if (fresh) { pre.textContent = ""; fresh = false; }  // the stream starts from the top
        pre.textContent += JSON.parse(e.data).text;
        pre.scrollTop = pre.scrollHeight;
      });
      function stop() {
        following.close();
        following = null;
        button.textContent = "Attempt ended";
        if (shown !== null) open(shown);
      }
      following.addEventListener("end", stop);
      following.addEventListener("error", stop);
    });
  }
})();
