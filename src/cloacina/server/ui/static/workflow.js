// The workflow page: draws its graph (critical path highlighted) from the JSON embedded in
// the page, and checks the start form's context as it is typed: a context that is not a JSON
// object gets a message and the form refuses to submit (the server checks it again).
(function () {
  "use strict";

  function drawGraph() {
    var svg = document.getElementById("workflow-graph");
    var data = document.getElementById("workflow-graph-data");
    if (!svg || !data || !window.CloacinaDag) return;
    window.CloacinaDag.draw(svg, JSON.parse(data.textContent));
  }

  function problem(text) {
    if (text.trim() === "") return null;
    var value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return "Not valid JSON: " + err.message;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "The context must be a JSON object ({...}), not " + (Array.isArray(value) ? "an array" : value === null ? "null" : typeof value) + ".";
    }
    return null;
  }

  function check(area, out) {
    var message = problem(area.value);
    area.setCustomValidity(message || "");
    area.setAttribute("aria-invalid", message ? "true" : "false");
    out.textContent = message || (area.value.trim() === "" ? "An empty context is {}." : "Valid JSON object.");
    out.className = message ? "error" : "hint";
    return message;
  }

  function setupForm() {
    var form = document.getElementById("start-form");
    var area = document.getElementById("context");
    var out = document.getElementById("context-check");
    if (!form || !area || !out) return;
    area.addEventListener("input", function () { check(area, out); });
    form.addEventListener("submit", function (e) {
      if (check(area, out)) { e.preventDefault(); area.focus(); }
    });
    // The browser's own bubble would hide our message: keep ours, focus the field.
    area.addEventListener("invalid", function (e) { e.preventDefault(); area.focus(); });
  }

  function start() { drawGraph(); setupForm(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
