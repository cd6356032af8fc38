// A run's page. Its tasks, graph and Gantt chart are drawn from one JSON document
// (data-state) and kept live from the run's event stream (data-events): each task event
// carries the task's new status, applied at once; the whole document is fetched again,
// throttled by the run's size, for attempts and anything an event does not say.
// Big runs stay usable: past VIRTUAL rows the task list and the Gantt chart draw only the
// rows in view; past the server's node limit the graph shows groups of layers.
(function () {
  "use strict";
  var box = document.getElementById("run-live");
  if (!box) return;
  var ROW = 30;          // px per task row and per Gantt row (fixed: the lists are windowed)
  var VIRTUAL = 200;     // rows beyond which a list draws only what is in view
  var OVERSCAN = 10;
  var LABEL_W = 170;
  var NS = "http://www.w3.org/2000/svg";

  var tasks = [];        // {id, status, attempts, error, group}
  var byId = {};
  var groups = null;     // for a grouped graph: [{id, group, size}]
  var gantt = { span: 0, rows: [] };
  var shown = [];        // the tasks the list shows (after the filters)
  var filterGroup = null;
  var hovered = null;
  var loaded = false;

  var graphSvg = document.getElementById("graph");
  var rowsBody = document.getElementById("task-rows");
  var taskBox = document.getElementById("task-box");
  var ganttBox = document.getElementById("gantt-box");
  var ganttSvg = document.getElementById("gantt");
  var find = document.getElementById("task-find");
  var statusPick = document.getElementById("task-status");
  var countNote = document.getElementById("task-count");
  var showAll = document.getElementById("task-all");

  function fmt(n) { return n.toLocaleString("en-US"); }

  function svgEl(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function statusSpan(word) {
    var span = document.createElement("span");
    span.className = "status s-" + word;
    var dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    span.appendChild(dot);
    span.appendChild(document.createTextNode(word));
    return span;
  }

  // ---- the task list ------------------------------------------------------------------
  function applyFilters() {
    var text = find.value.trim();
    var word = statusPick.value;
    shown = tasks.filter(function (t) {
      return (!text || t.id.indexOf(text) >= 0) && (!word || t.status === word) &&
        (filterGroup === null || t.group === filterGroup);
    });
    var what = fmt(shown.length) + (shown.length === tasks.length ? "" : " of " + fmt(tasks.length)) + " tasks";
    if (filterGroup !== null && groups) what += " in " + groups[filterGroup].id;
    countNote.textContent = what;
    showAll.hidden = filterGroup === null;
    taskBox.classList.toggle("virtual", shown.length > VIRTUAL);
    drawRows();
  }

  function row(t) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-task", t.id);
    tr.tabIndex = 0;
    tr.setAttribute("aria-label", t.id + ": " + t.status + " (Enter shows its attempts and logs)");
    if (t.id === hovered) tr.className = "hl";
    var id = document.createElement("td");
    var code = document.createElement("code");
    code.textContent = t.id;
    id.appendChild(code);
    var st = document.createElement("td");
    st.appendChild(statusSpan(t.status));
    if (t.map) {  // a mapped task: its instances, summarised
      var map = document.createElement("span");
      map.className = "hint map";
      map.textContent = " " + t.map;
      st.title = t.map;
      st.appendChild(map);
    }
    var n = document.createElement("td");
    n.textContent = String(t.attempts);
    var err = document.createElement("td");
    err.className = "err";
    err.textContent = t.error || "";
    if (t.error) err.title = t.error;
    tr.append(id, st, n, err);
    return tr;
  }

  function spacer(px) {
    var tr = document.createElement("tr");
    tr.className = "spacer";
    tr.setAttribute("aria-hidden", "true");
    tr.style.height = px + "px";  // CSSOM, which the page's CSP allows
    return tr;
  }

  function drawRows() {
    var frag = document.createDocumentFragment();
    if (!shown.length) {
      var empty = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = 4;
      td.className = "empty";
      td.textContent = loaded ? "No task matches." : "Loading…";
      empty.appendChild(td);
      frag.appendChild(empty);
    } else if (shown.length <= VIRTUAL) {
      shown.forEach(function (t) { frag.appendChild(row(t)); });
    } else {
      var first = Math.max(0, Math.floor(taskBox.scrollTop / ROW) - OVERSCAN);
      var count = Math.ceil((taskBox.clientHeight || 600) / ROW) + 2 * OVERSCAN;
      var last = Math.min(shown.length, first + count);
      frag.appendChild(spacer(first * ROW));
      for (var i = first; i < last; i++) frag.appendChild(row(shown[i]));
      frag.appendChild(spacer((shown.length - last) * ROW));
    }
    rowsBody.replaceChildren(frag);
  }

  // ---- the graph ----------------------------------------------------------------------
  var groupCounts = [];

  function groupStatus(c, size) {
    if (c.failed) return "failed";
    if ((c.completed || 0) === size) return "completed";
    var settled = (c.completed || 0) + (c.skipped || 0);
    if (settled === size) return "skipped";
    if (c.running || settled) return "running";
    return "pending";
  }

  function groupSub(c, size) {
    var settled = (c.completed || 0) + (c.failed || 0) + (c.skipped || 0);
    return fmt(settled) + "/" + fmt(size) + " done" + (c.failed ? ", " + fmt(c.failed) + " failed" : "");
  }

  function countGroups() {
    groupCounts = groups.map(function () { return {}; });
    tasks.forEach(function (t) {
      var c = groupCounts[t.group];
      c[t.status] = (c[t.status] || 0) + 1;
    });
  }

  function drawGraph(graph) {
    var note = document.getElementById("graph-note");
    if (graph.groups) {
      countGroups();
      var nodes = groups.map(function (g, i) {
        return { id: g.id, status: groupStatus(groupCounts[i], g.size), sub: groupSub(groupCounts[i], g.size) };
      });
      note.textContent = fmt(tasks.length) + " tasks: drawn as " + groups.length +
        " groups of consecutive layers. Choose a group to list its tasks.";
      note.hidden = false;
      CloacinaDag.draw(graphSvg, { nodes: nodes, edges: graph.edges, width: 210 });
      graphSvg.querySelectorAll("g.node").forEach(function (g, i) {
        g.setAttribute("data-group", String(i));
        g.removeAttribute("data-task");
      });
    } else {
      note.hidden = true;
      CloacinaDag.draw(graphSvg, { nodes: graph.nodes, edges: graph.edges });
    }
  }

  function recolourGraph(changed) {
    if (!groups) {
      var statuses = {};
      changed.forEach(function (t) { statuses[t.id] = t.status; });
      CloacinaDag.recolour(graphSvg, statuses);
      return;
    }
    countGroups();
    var touched = {};
    changed.forEach(function (t) { touched[t.group] = true; });
    Object.keys(touched).forEach(function (g) {
      var node = graphSvg.querySelector('g.node[data-group="' + g + '"]');
      if (!node) return;
      var size = groups[g].size;
      var word = groupStatus(groupCounts[g], size);
      var old = node.getAttribute("data-status");
      if (old !== word) {
        node.classList.remove("s-" + old);
        node.classList.add("s-" + word);
        node.setAttribute("data-status", word);
      }
      var sub = groupSub(groupCounts[g], size);
      node.querySelector(".tstat").textContent = word + " · " + sub;
      node.querySelector("title").textContent = groups[g].id + ": " + word + " (" + sub + ")";
    });
  }

  // ---- the Gantt chart ----------------------------------------------------------------
  function drawGantt() {
    var note = document.getElementById("gantt-note");
    var rows = gantt.rows;
    if (!rows.length) {
      note.textContent = "No attempt has started yet.";
      note.hidden = false;
      ganttBox.hidden = true;
      return;
    }
    note.hidden = true;
    ganttBox.hidden = false;
    ganttBox.classList.toggle("virtual", rows.length > VIRTUAL);
    var chartW = Math.max(360, (ganttBox.clientWidth || 960) - LABEL_W - 50);
    var width = LABEL_W + chartW + 40;
    var height = rows.length * ROW + 24;
    var scale = chartW / Math.max(gantt.span, 0.001);
    ganttSvg.setAttribute("width", width);
    ganttSvg.setAttribute("height", height);
    ganttSvg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var frag = document.createDocumentFragment();
    for (var i = 0; i <= 4; i++) {
      var x = LABEL_W + chartW * i / 4;
      svgEl("line", { class: "tick", x1: x, x2: x, y1: 16, y2: height }, frag);
      var label = svgEl("text", { class: "ticklabel", x: x, y: 11 }, frag);
      label.textContent = (gantt.span * i / 4).toFixed(2) + "s";
    }
    var first = 0, last = rows.length;
    if (rows.length > VIRTUAL) {
      first = Math.max(0, Math.floor((ganttBox.scrollTop - 24) / ROW) - OVERSCAN);
      last = Math.min(rows.length, first + Math.ceil((ganttBox.clientHeight || 600) / ROW) + 2 * OVERSCAN);
    }
    for (var r = first; r < last; r++) {
      var b = rows[r];  // [task, attempt, outcome, wait_from, start, end]
      var y = 24 + r * ROW;
      var end = b[5] === null ? gantt.span : b[5];
      var g = svgEl("g", { class: "bar o-" + b[2] + (b[0] === hovered ? " hl" : ""), "data-task": b[0], "data-attempt": b[1] }, frag);
      var took = b[5] === null ? "running" : (b[5] - b[4]).toFixed(3) + " s";
      var waited = b[3] === null ? "" : ", waited " + (b[4] - b[3]).toFixed(3) + " s";
      svgEl("title", {}, g).textContent = b[0] + " #" + b[1] + ": " + b[2] + ", " + took + waited;
      var name = b[0] + " #" + b[1];
      svgEl("text", { class: "tid", x: 4, y: y + 15 }, g).textContent = name.length > 24 ? name.slice(0, 23) + "…" : name;
      if (b[3] !== null && (b[4] - b[3]) * scale > 0.5) {
        svgEl("rect", { class: "wait", x: (LABEL_W + b[3] * scale).toFixed(1), y: y + 8, width: ((b[4] - b[3]) * scale).toFixed(1), height: 6 }, g);
      }
      svgEl("rect", { class: "run", x: (LABEL_W + b[4] * scale).toFixed(1), y: y + 4, width: Math.max(2, (end - b[4]) * scale).toFixed(1), height: 14, rx: 2 }, g);
    }
    ganttSvg.replaceChildren(frag);
  }

  // ---- loading and live updates -------------------------------------------------------
  function take(doc) {
    tasks = doc.tasks.map(function (t, i) {
      return { id: t[0], status: t[1], attempts: t[2], error: t[3], map: t[4], group: doc.member ? doc.member[i] : null };
    });
    byId = {};
    tasks.forEach(function (t) { byId[t.id] = t; });
    groups = doc.graph.groups || null;
    gantt = doc.gantt;
    loaded = true;
    drawGraph(doc.graph);
    applyFilters();
    drawGantt();
    box.setAttribute("data-loaded", "true");
    refreshPanel();
  }

  var fetching = false, again = false, timer = null, first = true;
  function load() {
    timer = null;
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(box.dataset.state, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) { if (doc) take(doc); })
      .catch(function () {})
      .then(function () {
        fetching = false;
        if (again) { again = false; later(); }
      });
    // The facts and buttons (counts included) follow each fetch but the first.
    if (!first && window.htmx) htmx.trigger(document.body, "cloacina:run");
    first = false;
  }

  // The whole document is fetched again at most every 300 ms, every second per 1,000
  // tasks for big runs (up to 5 s): events keep statuses exact in between.
  function later() {
    if (timer !== null) return;
    var wait = Math.min(5000, Math.max(300, tasks.length));
    timer = setTimeout(load, wait);
  }

  var pending = [];
  var frame = null;
  function applyEvents() {
    frame = null;
    var changed = pending.filter(function (t, i) { return pending.indexOf(t) === i; });
    pending = [];
    if (!changed.length) return;
    recolourGraph(changed);
    if (find.value || statusPick.value) applyFilters(); else drawRows();
  }

  function onChange(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (err) { return; }
    var t = data.task_id ? byId[data.task_id] : null;
    if (t && data.status) {
      t.status = data.status;
      if (data.type === "task_started") t.attempts += 1;
      pending.push(t);
      if (frame === null) frame = requestAnimationFrame(applyEvents);
    }
    if (data.type && data.type.indexOf("execution_") === 0 && window.htmx) htmx.trigger(document.body, "cloacina:run");
    later();
  }

  if (box.dataset.events && window.EventSource) {
    var source = new EventSource(box.dataset.events);
    source.addEventListener("change", onChange);
    source.addEventListener("end", function (e) { source.close(); onChange(e); load(); });
    window.addEventListener("beforeunload", function () { source.close(); });
  }
  load();

  taskBox.addEventListener("scroll", function () { if (shown.length > VIRTUAL) drawRows(); }, { passive: true });
  ganttBox.addEventListener("scroll", function () { if (gantt.rows.length > VIRTUAL) drawGantt(); }, { passive: true });
  find.addEventListener("input", applyFilters);
  statusPick.addEventListener("change", applyFilters);
  showAll.addEventListener("click", function () { filterGroup = null; applyFilters(); });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { drawRows(); drawGantt(); }, 150);
  });

  // ---- hovering one task highlights it everywhere ---------------------------------------
  function mark(event, on) {
    var el = event.target.closest ? event.target.closest("[data-task]") : null;
    if (!el || !box.contains(el)) return;
    var task = el.getAttribute("data-task");
    hovered = on ? task : null;
    box.querySelectorAll('[data-task="' + CSS.escape(task) + '"]').forEach(function (other) {
      other.classList.toggle("hl", on);
    });
  }
  box.addEventListener("mouseover", function (e) { mark(e, true); });
  box.addEventListener("mouseout", function (e) { mark(e, false); });
  box.addEventListener("focusin", function (e) { mark(e, true); });
  box.addEventListener("focusout", function (e) { mark(e, false); });

  // ---- a task's panel: attempts, errors, logs (fetched on click) ------------------------
  var panel = document.getElementById("task-panel");
  var open = null;         // the task whose panel is shown
  var openSeen = null;     // its status and attempts when the panel was fetched
  var following = null;
  function showPanel(task) {
    open = task;
    var t = byId[task];
    openSeen = t ? t.status + "/" + t.attempts : null;
    fetch(panel.dataset.base + encodeURIComponent(task), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        // A panel fetched before "Follow logs" was pressed must not replace the log being
        // followed (the panel holds still meanwhile; it is fetched again when that ends).
        if (html === null || open !== task || following) return;
        panel.innerHTML = html;
        if (window.htmx) htmx.process(panel);  // its htmx parts (a map's instance list)
        panel.hidden = false;
      });
  }
  panel.addEventListener("keydown", function (event) {
    var instance = event.target.closest("[data-instance]");
    if (instance && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      showPanel(instance.getAttribute("data-instance"));
    }
  });
  function refreshPanel() {
    if (open === null || following) return;
    var t = byId[open];
    if (t && t.status + "/" + t.attempts !== openSeen) showPanel(open);
  }
  function pick(event) {
    if (event.target.closest("a, button, form, input, select")) return;
    var group = event.target.closest("[data-group]");
    if (group && graphSvg.contains(group)) {
      filterGroup = Number(group.getAttribute("data-group"));
      applyFilters();
      taskBox.scrollTop = 0;
      return;
    }
    var el = event.target.closest("[data-task]");
    if (el && box.contains(el)) showPanel(el.getAttribute("data-task"));
  }
  box.addEventListener("click", pick);
  // Enter or Space on a focused row, node or bar opens its panel (or lists a group).
  box.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" && e.key !== " ") return;
    if (e.target.closest("a, button, form, input, select")) return;
    if (e.key === " " && e.target.closest("[data-task], [data-group]")) e.preventDefault();
    pick(e);
  });
  // "Follow logs" tails the running attempt's logs (the panel holds still meanwhile).
  panel.addEventListener("click", function (event) {
    var instance = event.target.closest("[data-instance]");  // an instance of a mapped task
    if (instance && !event.target.closest("a, button")) { showPanel(instance.getAttribute("data-instance")); return; }
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
      if (open !== null) showPanel(open);
    }
    following.addEventListener("end", stop);
    following.addEventListener("error", stop);
  });
})();
