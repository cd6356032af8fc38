// Every page: a form with data-confirm asks before it submits (the run's Cancel, Pause,
// Resume). Kept out of the markup so the pages' CSP allows no inline script.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
  }
});
// A select marked data-autosubmit (the tenant switcher) submits its form when picked with
// the pointer. Changed with the keyboard (arrow keys change a closed select at once) it
// waits for its form's button: a keyboard user is not sent away while going through it.
document.addEventListener("keydown", function (e) {
  var el = e.target;
  if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined) el.dataset.keyed = "1";
});
document.addEventListener("pointerdown", function (e) {
  var el = e.target;
  if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined) delete el.dataset.keyed;
});
document.addEventListener("change", function (e) {
  var el = e.target;
  if (el instanceof HTMLSelectElement && el.dataset.autosubmit !== undefined && el.form &&
      el.dataset.keyed === undefined) {
    el.form.requestSubmit();
  }
});
// A live part (htmx) answered 401: the session ended (signed out, expired, key revoked).
// Go to the sign-in page rather than asking again every few seconds.
document.addEventListener("htmx:responseError", function (e) {
  if (e.detail && e.detail.xhr && e.detail.xhr.status === 401) window.location.assign("/");
});
