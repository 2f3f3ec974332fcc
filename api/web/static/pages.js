// Behaviour of the web pages that is not htmx's: kept in this file, not inline in the
// templates, so the Content Security Policy can refuse every inline script.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-submit-on-change]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
});
