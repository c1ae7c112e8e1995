// Plugboard's own script: small conveniences on top of htmx. Every page
// works without it; the Content Security Policy allows no inline script, so
// behaviour lives here and markup only carries data-* hooks.
(function () {
  "use strict";

  var dialog = function () { return document.getElementById("dialog"); };

  function openDialog(d) {
    var wasOpen = d.open;
    if (!wasOpen) {
      d.showModal();
    }
    // A refused save has already moved the focus to the field to fix.
    var active = document.activeElement;
    if (wasOpen && active && active !== d && d.contains(active)) {
      return;
    }
    // In order of preference, not of position: the close link comes first
    // in the markup but should not take the focus.
    var first = d.querySelector("[autofocus]") ||
      d.querySelector("input:not([type=hidden]), select, textarea") ||
      d.querySelector("button, a[href]");
    if (first) {
      first.focus();
    }
  }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) {
      d.close();
    }
  }

  // Content swapped into the dialog opens it; an empty answer (a save
  // succeeded) closes it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var d = dialog();
    if (event.detail.target !== d) {
      return;
    }
    if (d.innerHTML.trim() === "") {
      closeDialog();
    } else {
      openDialog(d);
    }
  });

  // After a refused save only the error messages change: move focus to the
  // first field that has one, so keyboard and screen reader users land on it.
  document.addEventListener("htmx:oobAfterSwap", function () {
    var d = dialog();
    if (!d || !d.open) {
      return;
    }
    var errors = d.querySelectorAll(".field-error");
    for (var i = 0; i < errors.length; i++) {
      var field = errors[i].closest(".field");
      var input = field && field.querySelector("input, select, textarea");
      if (input) {
        input.setAttribute("aria-invalid", errors[i].textContent.trim() ? "true" : "false");
      }
    }
    var invalid = d.querySelector("[aria-invalid=true]");
    if (invalid) {
      invalid.focus();
    }
  });

  // "Cancel" and "×" links lead back to the list without JavaScript; with
  // it, they just close the dialog.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-close-dialog]");
    if (link && link.closest("dialog")) {
      event.preventDefault();
      closeDialog();
    }
  });

  document.addEventListener("close", function (event) {
    if (event.target === dialog()) {
      event.target.innerHTML = "";
      var opener = document.getElementById("new-connection");
      if (document.activeElement === document.body && opener) {
        opener.focus();
      }
    }
  }, true);

  // Server-sent notices ("Created “Slack” in Staging.") for the live region.
  document.body.addEventListener("plugboard-notice", function (event) {
    var notice = document.getElementById("notice");
    if (!notice) {
      return;
    }
    notice.textContent = event.detail.value;
    notice.classList.add("shown");
    clearTimeout(notice.hideTimer);
    notice.hideTimer = setTimeout(function () { notice.classList.remove("shown"); }, 4000);
  });
})();
