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

  function showNotice(text) {
    var notice = document.getElementById("notice");
    if (!notice) {
      return;
    }
    notice.textContent = text;
    notice.classList.add("shown");
    clearTimeout(notice.hideTimer);
    notice.hideTimer = setTimeout(function () { notice.classList.remove("shown"); }, 6000);
  }

  // OAuth2 Connect: with JavaScript the provider's sign-in opens in a
  // popup, so the dialog and the list stay where they are. The form is a
  // plain POST (it works the same without JavaScript, as a full page).
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-oauth-connect]");
    if (!form) {
      return;
    }
    var popup = window.open("", "plugboard-oauth", "popup,width=520,height=680");
    if (!popup) {
      return; // Blocked: the full-page flow goes ahead.
    }
    form.target = "plugboard-oauth";
    var flag = form.querySelector("input[name=popup]");
    if (flag) {
      flag.value = "1";
    }
    // Some providers cut the link back to this page (Cross-Origin-Opener-
    // Policy); then the popup cannot report, so its closing refreshes.
    var watch = setInterval(function () {
      if (popup.closed) {
        clearInterval(watch);
        if (window.htmx) {
          window.htmx.trigger(document.body, "connections-changed");
        }
      }
    }, 500);
  });

  // In the popup, once the callback has answered: tell the page that
  // opened it, then close.
  var done = document.querySelector("[data-oauth-done]");
  if (done && window.opener && !window.opener.closed) {
    window.opener.postMessage({
      type: "plugboard-oauth-done",
      ok: done.getAttribute("data-oauth-done") === "ok",
      notice: done.getAttribute("data-notice") || ""
    }, window.location.origin);
    if (done.getAttribute("data-oauth-done") === "ok") {
      window.close();
    }
  }

  // In the page that opened the popup: refresh the list and say how it went.
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || event.data.type !== "plugboard-oauth-done") {
      return;
    }
    if (event.data.ok) {
      closeDialog();
    }
    if (window.htmx) {
      window.htmx.trigger(document.body, "connections-changed");
    }
    showNotice(event.data.notice);
  });

  // Copy buttons (the OAuth2 redirect URI).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = source.value || source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { showNotice("Copied."); });
    } else {
      source.select();
      document.execCommand("copy");
      showNotice("Copied.");
    }
  });
})();
