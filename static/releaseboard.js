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

  // The live log follows its tail while the job runs, like `tail -f`, until the reader
  // scrolls up to read; scrolling back to the end follows again.
  var NEAR_END = 24;

  function atEnd(log) {
    return log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR_END;
  }

  function bindLog(root) {
    var logs = root.matches && root.matches(".log[data-follow]") ? [root] : [];
    root.querySelectorAll(".log[data-follow]").forEach(function (log) { logs.push(log); });
    logs.forEach(function (log) {
      if (log.dataset.bound) return;
      log.dataset.bound = "1";
      log.dataset.following = "1";
      log.scrollTop = log.scrollHeight;
      log.addEventListener("scroll", function () {
        log.dataset.following = atEnd(log) ? "1" : "0";
      });
    });
  }

  // A git command's output that came in a later poll than the command: into its fold.
  function foldLateOutput(root) {
    root.querySelectorAll(".log [data-git-output]").forEach(function (output) {
      var chunk = output.parentElement;
      var previous = chunk ? chunk.previousElementSibling : null;
      var fold = previous ? previous.querySelector("details.log-git:last-child") : null;
      if (fold && !fold.querySelector(".log-git-output")) {
        output.removeAttribute("data-git-output");
        fold.appendChild(output);
      }
    });
  }

  // The poller swaps itself out (outerHTML), so look at every following log, not the target.
  document.addEventListener("htmx:afterSettle", function () {
    foldLateOutput(document);
    document.querySelectorAll(".log[data-follow]").forEach(function (log) {
      if (log.dataset.following === "1") log.scrollTop = log.scrollHeight;
    });
  });

  // The radar's cells carry no title (there are 5,050 at 100 open branches): the cell under
  // the pointer, or with the keyboard's focus, gets its column's branch name when first needed.
  function titleRadarCell(event) {
    var link = event.target instanceof Element ? event.target.closest(".radar-matrix td > a") : null;
    if (!link || link.title) return;
    var table = link.closest("table");
    var heads = table && table.tHead ? table.tHead.rows[0] : null;
    var head = heads ? heads.cells[link.parentElement.cellIndex] : null;
    if (head) link.title = head.textContent.trim();
  }

  document.addEventListener("mouseover", titleRadarCell);
  document.addEventListener("focusin", titleRadarCell);

  function init(root) {
    bindFinalName(root);
    bindLog(root);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
})();
