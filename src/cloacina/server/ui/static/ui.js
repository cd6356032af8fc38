// Every page: a form with data-confirm asks before it submits (the run's Cancel, Pause,
// Resume). Kept out of the markup so the pages' CSP allows no inline script.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
  }
});
// A select marked data-autosubmit (the tenant switcher) submits its form when changed.
document.addEventListener("change", function (e) {
  var el = e.target;
  if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined && el.form) {
    el.form.requestSubmit();
  }
});
