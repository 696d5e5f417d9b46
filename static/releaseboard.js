/* Releaseboard's own script: small enhancements on top of pages that work without it.
 * Loaded from this origin (the Content-Security-Policy allows no inline script), and
 * bound to elements by data- attributes, so htmx-swapped fragments need no script tags. */
(function () {
  "use strict";

  // Request branch: show the final branch name as it is typed, with the prefix of the
  // chosen kind (a typed prefix of that kind is dropped, as the server does).
  function updateFinalName(input) {
    var output = document.getElementById(input.dataset.finalName);
    if (!output) return;
    var form = input.form;
    var checked = form ? form.querySelector("input[name=kind]:checked") : null;
    var kind = checked ? checked.value : "feature";
    var prefix = kind === "hotfix" ? input.dataset.prefixHotfix : input.dataset.prefixFeature;
    var name = input.value.trim();
    if (prefix && name.indexOf(prefix) === 0) name = name.slice(prefix.length);
    output.textContent = prefix + (name || "<name>");
  }

  function bindFinalName(root) {
    root.querySelectorAll("input[data-final-name]").forEach(function (input) {
      if (input.dataset.bound) return;
      input.dataset.bound = "1";
      input.addEventListener("input", function () { updateFinalName(input); });
      if (input.form) {
        input.form.querySelectorAll("input[name=kind]").forEach(function (radio) {
          radio.addEventListener("change", function () { updateFinalName(input); });
        });
      }
      updateFinalName(input);
    });
  }

  function init(root) {
    bindFinalName(root);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
})();
