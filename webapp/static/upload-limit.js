// Warns before a photo larger than the site accepts is uploaded: on a phone that upload takes
// long and would only be refused. The limit comes from the page (data-max-bytes on the file
// input); the server checks it again whatever this script does.
"use strict";

(function () {
  function describe(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "") + " MiB";
  }

  function warningFor(input) {
    var id = input.id + "-size-warning";
    var warning = document.getElementById(id);
    if (!warning) {
      warning = document.createElement("p");
      warning.id = id;
      warning.className = "field-error";
      warning.setAttribute("role", "alert");
      input.insertAdjacentElement("beforebegin", warning);
    }
    return warning;
  }

  // The message to show, or "" when every chosen file is within the limit.
  function check(input) {
    var limit = Number(input.dataset.maxBytes);
    var file = input.files && input.files[0];
    var message = "";
    if (file && file.size > limit) {
      message = "This photo is " + describe(file.size) + "; photos can be up to " +
        describe(limit) + ". Choose a smaller photo (your review has not been sent).";
    }
    var warning = warningFor(input);
    warning.textContent = message;
    warning.hidden = message === "";
    input.setAttribute("aria-invalid", message ? "true" : "false");
    return message;
  }

  document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
    input.addEventListener("change", function () { check(input); });
    input.form.addEventListener("submit", function (event) {
      if (check(input)) {
        event.preventDefault();
        input.focus();
      }
    });
  });
})();
