// Draws a task graph left to right as SVG, laid out by dagre (vendored). Used by the run
// page and the workflow page:
//   CloacinaDag.draw(svg, {nodes: [{id, status?, sub?}], edges: [[from, to]], critical?: [id]})
// Each node is <g class="node s-STATUS" data-task=ID data-status=STATUS tabindex=0> holding
// its id and its status word (never colour alone); each edge <path class="edge"
// data-edge="FROM TO">, with class "critical" when both ends are on the critical path.
// spec.width sets the nodes' width (150 px by default).
// CloacinaDag.recolour(svg, {id: status}) updates statuses without a new layout.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var H = 40;

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, cls, value) {
    var t = el("text", { x: x, y: y, class: cls }, parent);
    t.textContent = value;
    return t;
  }

  function short(id, chars) { return id.length > chars ? id.slice(0, chars - 1) + "…" : id; }

  // spec.width: a node's width in px (150 by default; its id is cut to fit).
  function draw(svg, spec) {
    var W = spec.width || 150;
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 50, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var known = {};
    spec.nodes.forEach(function (n) { known[n.id] = n; g.setNode(n.id, { width: W, height: H }); });
    spec.edges.forEach(function (e) { if (known[e[0]] && known[e[1]]) g.setEdge(e[0], e[1]); });
    dagre.layout(g);
    var critical = {};
    (spec.critical || []).forEach(function (id) { critical[id] = true; });
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var size = g.graph();
    svg.setAttribute("width", Math.ceil(size.width));
    svg.setAttribute("height", Math.ceil(size.height));
    svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
    g.edges().forEach(function (e) {
      var pts = g.edge(e).points;
      var d = "M" + pts.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" L");
      var cls = "edge" + (critical[e.v] && critical[e.w] ? " critical" : "");
      el("path", { d: d, class: cls, "data-edge": e.v + " " + e.w }, svg);
    });
    spec.nodes.forEach(function (n) {
      var at = g.node(n.id);
      var status = n.status || "";
      var cls = "node" + (status ? " s-" + status : "") + (critical[n.id] ? " critical" : "");
      var node = el("g", {
        class: cls, "data-task": n.id, "data-status": status, tabindex: "0", role: "button",
        transform: "translate(" + (at.x - W / 2).toFixed(1) + "," + (at.y - H / 2).toFixed(1) + ")"
      }, svg);
      el("title", {}, node).textContent = n.id + (status ? ": " + status : "") + (n.sub ? " (" + n.sub + ")" : "");
      el("rect", { width: W, height: H, rx: 6 }, node);
      text(node, 8, 16, "tid", short(n.id, Math.floor((W - 16) / 7)));
      text(node, 8, 32, "tstat", [status, n.sub].filter(Boolean).join(" · "));
    });
    return { width: size.width, height: size.height };
  }

  function recolour(svg, statuses) {
    Object.keys(statuses).forEach(function (id) {
      var node = svg.querySelector('g.node[data-task="' + CSS.escape(id) + '"]');
      if (!node) return;
      var old = node.getAttribute("data-status");
      var now = statuses[id];
      if (old === now) return;
      if (old) node.classList.remove("s-" + old);
      node.classList.add("s-" + now);
      node.setAttribute("data-status", now);
      node.querySelector("title").textContent = id + ": " + now;
      node.querySelector(".tstat").textContent = now;
    });
  }

  window.CloacinaDag = { draw: draw, recolour: recolour };
})();
