// The packages page: a .cloacina file dropped on the drop zone is put in the upload form's
// file input and the form submitted (htmx posts it and swaps in the result); a refusal
// (413/422) is shown like a success, not dropped as an htmx error. Listeners are on the
// document so that they survive the swap.
(function () {
  "use strict";

  function zoneOf(target) {
    return target instanceof Element ? target.closest("[data-dropzone]") : null;
  }

  document.addEventListener("dragover", function (e) {
    var zone = zoneOf(e.target);
    if (!zone) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  document.addEventListener("dragleave", function (e) {
    var zone = zoneOf(e.target);
    if (zone && !zone.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  document.addEventListener("drop", function (e) {
    var zone = zoneOf(e.target);
    if (!zone) return;
    e.preventDefault();
    zone.classList.remove("over");
    var files = e.dataTransfer && e.dataTransfer.files;
    var input = zone.querySelector('input[type="file"]');
    if (!files || !files.length || !input) return;
    var chosen = new DataTransfer();
    chosen.items.add(files[0]);
    input.files = chosen.files;
    showChosen(input);
    input.form.requestSubmit();
  });
  document.addEventListener("change", function (e) {
    if (e.target instanceof HTMLInputElement && e.target.id === "package-file") showChosen(e.target);
  });

  function showChosen(input) {
    var out = document.getElementById("package-chosen");
    if (out) out.textContent = input.files && input.files.length ? "Chosen: " + input.files[0].name : "";
  }

  // htmx 2 swaps only 2xx answers by default; the page's refusals carry the reason.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if (status === 413 || status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    } else if (status >= 400) {
      var out = document.getElementById("upload-result");
      if (out) {
        out.className = "error";
        out.setAttribute("role", "alert");
        out.textContent = "Refused (" + status + "): reload the page and retry.";
      }
    }
  });
})();
