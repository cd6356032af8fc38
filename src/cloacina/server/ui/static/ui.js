// Every page: a form with data-confirm asks before it submits (the run's Cancel, Pause,
// Resume). Kept out of the markup so the pages' CSP allows no inline script.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
  }
});
