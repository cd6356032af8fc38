// The runs page's live updates: the session's event stream names runs that started or
// changed; their rows are fetched (batched) and put at the top or in place. No reload.
(function () {
  "use strict";
  var body = document.getElementById("runs");
  if (!body || !body.dataset.live || !window.EventSource) return;
  var pending = new Set();
  var timer = null;

  function flush() {
    timer = null;
    var ids = Array.from(pending);
    pending.clear();
    if (!ids.length) return;
    var url = body.dataset.live + (body.dataset.live.indexOf("?") < 0 ? "?" : "&") +
      "ids=" + encodeURIComponent(ids.join(","));
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      var counts = r.headers.get("X-Cloacina-Counts");
      if (counts) {
        try {
          var parsed = JSON.parse(counts);
          Object.keys(parsed).forEach(function (s) {
            var el = document.querySelector('[data-count="' + s + '"]');
            if (el) el.textContent = String(parsed[s]);
          });
        } catch (err) { /* keep the counts shown */ }
      }
      return r.ok ? r.text() : "";
    }).then(function (html) {
      if (!html.trim()) return;
      var tmp = document.createElement("tbody");
      tmp.innerHTML = html;
      var started = 0, changed = 0;
      Array.from(tmp.querySelectorAll("tr[data-id]")).reverse().forEach(function (row) {
        var old = body.querySelector('tr[data-id="' + row.dataset.id + '"]');
        if (old) { old.replaceWith(row); changed += 1; return; }
        row.classList.add("fresh");
        body.insertBefore(row, body.firstChild);
        started += 1;
        var empty = document.getElementById("no-runs");
        if (empty) empty.remove();
      });
      // Screen readers hear a short summary, not every row.
      var news = document.getElementById("runs-news");
      if (news) {
        var parts = [];
        if (started) parts.push(started + (started === 1 ? " new run" : " new runs"));
        if (changed) parts.push(changed + (changed === 1 ? " run changed" : " runs changed"));
        news.textContent = parts.join(", ") + ".";
      }
    }).catch(function () {});
  }

  var source = new EventSource("/ui/events");
  source.addEventListener("run", function (e) {
    try { pending.add(JSON.parse(e.data).execution_id); } catch (err) { return; }
    if (timer === null) timer = setTimeout(flush, 150);
  });
  window.addEventListener("beforeunload", function () { source.close(); });
})();
