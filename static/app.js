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

  // The element that opened the dialog, by id: it gets the focus back when
  // the dialog closes (the list may have been redrawn in between).
  var openerId = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var d = dialog();
    var elt = event.detail.elt;
    if (d && !d.open && event.detail.target === d && elt && elt.id) {
      openerId = elt.id;
    }
  });

  function focusFirst(ids) {
    for (var i = 0; i < ids.length; i++) {
      var e = ids[i] && document.getElementById(ids[i]);
      // checkVisibility also sees content folded away in a closed <details>.
      var visible = e && (e.checkVisibility ? e.checkVisibility() : e.getClientRects().length > 0);
      if (visible) {
        e.focus();
        return true;
      }
    }
    return false;
  }

  document.addEventListener("close", function (event) {
    if (event.target === dialog()) {
      event.target.innerHTML = "";
      var active = document.activeElement;
      if (!active || active === document.body || event.target.contains(active)) {
        focusFirst([openerId, "new-connection", "list-title"]);
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

  // The component picker: filters as you type (the same match as the
  // server's search, on name, key, category and aliases), moves between
  // matches with the arrow keys, opens the only match on Enter, and clears
  // the search on Escape.
  // Without JavaScript the search form asks the server instead.
  function pickerItems(root) {
    return Array.prototype.slice.call(root.querySelectorAll("[data-picker-item]"));
  }

  function visibleChoices(root) {
    return pickerItems(root).filter(function (li) { return !li.hidden; })
      .map(function (li) { return li.querySelector("a[data-component]"); });
  }

  function filterPicker(input) {
    var root = input.closest(".picker");
    if (!root) {
      return;
    }
    var needle = input.value.trim().toLowerCase();
    var shown = 0;
    pickerItems(root).forEach(function (li) {
      var match = needle === "" || li.getAttribute("data-search").indexOf(needle) !== -1;
      li.hidden = !match;
      if (match) {
        shown++;
      }
    });
    Array.prototype.forEach.call(root.querySelectorAll("[data-picker-group]"), function (group) {
      group.hidden = !group.querySelector("[data-picker-item]:not([hidden])");
    });
    var empty = root.querySelector("[data-picker-empty]");
    if (empty) {
      empty.hidden = shown > 0;
      empty.querySelector("[data-picker-query]").textContent = input.value.trim();
    }
    var count = root.querySelector("#picker-count");
    if (count) {
      count.textContent = shown === 1 ? "1 component" : shown + " components";
    }
  }

  document.addEventListener("input", function (event) {
    if (event.target.id === "component-search") {
      filterPicker(event.target);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-picker-search]");
    if (!form) {
      return;
    }
    // Filtering happens as you type; Enter opens the single match or
    // steps into the list.
    event.preventDefault();
    var choices = visibleChoices(form.closest(".picker"));
    if (choices.length === 1) {
      choices[0].click();
    } else if (choices.length > 1) {
      choices[0].focus();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp" && event.key !== "Escape") {
      return;
    }
    var root = event.target.closest && event.target.closest(".picker");
    if (!root) {
      return;
    }
    var search = root.querySelector("#component-search");
    if (event.key === "Escape") {
      // A first Escape undoes the search; only on an empty one does it
      // close the picker, as it closes every dialog.
      if (search && search.value !== "") {
        event.preventDefault();
        search.value = "";
        filterPicker(search);
        search.focus();
      }
      return;
    }
    var choices = visibleChoices(root);
    var at = choices.indexOf(event.target);
    if (event.target === search) {
      if (event.key === "ArrowDown" && choices.length) {
        event.preventDefault();
        choices[0].focus();
      }
      return;
    }
    if (at === -1) {
      return;
    }
    event.preventDefault();
    if (event.key === "ArrowDown") {
      (choices[at + 1] || choices[at]).focus();
    } else if (at === 0) {
      search.focus();
    } else {
      choices[at - 1].focus();
    }
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

  // ---- Focus and scroll across list refreshes ----
  // A change refreshes the whole list, which would drop the focus to the
  // page: the element that had it (by id) gets it back, or the nearest
  // thing to it in its row.
  var refocus = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "workspace") {
      return;
    }
    var active = document.activeElement;
    var row = active && active.closest ? active.closest("tr[data-connection]") : null;
    var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
    refocus = {
      id: active && active.id && target.contains(active) ? active.id : null,
      row: row ? row.getAttribute("data-connection") : null,
      paging: !!(trigger && trigger.closest && trigger.closest(".pagination")),
      facets: trigger && trigger.closest && trigger.closest(".facets") ? trigger.closest(".facets").className : null
    };
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!refocus || !target || target.id !== "workspace" || !document.getElementById("workspace")) {
      return;
    }
    var r = refocus;
    refocus = null;
    if (r.paging) {
      // A new page starts at its top, with its heading announced.
      window.scrollTo(0, 0);
      focusFirst(["list-title"]);
      return;
    }
    var d = dialog();
    if (d && d.open) {
      return;
    }
    var ids = [r.id];
    if (r.id && r.id.indexOf("add-tag-") === 0 && r.row) {
      ids.push("add-tag-summary-" + r.row);
    }
    if (r.row) {
      ids.push("add-tag-summary-" + r.row, "test-" + r.row);
    }
    if (focusFirst(ids)) {
      return;
    }
    if (r.facets) {
      var current = document.querySelector("." + r.facets.split(/\s+/).join(".") + " a.current");
      if (current) {
        current.focus();
        return;
      }
    }
    if (r.id || r.row) {
      focusFirst(["list-title"]);
    }
  });

  // "+ tag" opens straight into its input.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (details.classList && details.classList.contains("add-tag") && details.open) {
      var input = details.querySelector("input[name=tag]");
      if (input) {
        input.focus();
      }
    }
  }, true);

  // ---- What was typed survives a method switch ----
  // Values are read from the form in the browser; secrets are carried only
  // in memory, never stored, never sent.
  function formValues(form) {
    var values = [];
    var inputs = form.querySelectorAll("input[name], select[name], textarea[name]");
    for (var i = 0; i < inputs.length; i++) {
      var e = inputs[i];
      if (e.type === "hidden") {
        continue;
      }
      if (e.type === "checkbox") {
        values.push({ name: e.name, value: e.value, checked: e.checked, box: true });
      } else if (e.value !== "") {
        values.push({ name: e.name, value: e.value });
      }
    }
    return values;
  }

  function applyValues(form, values) {
    values.forEach(function (v) {
      if (v.box) {
        var box = form.querySelector("input[type=checkbox][name='" + CSS.escape(v.name) + "'][value='" + CSS.escape(v.value) + "']");
        if (box) {
          box.checked = v.checked;
        } else if (v.name === "tag" && v.checked) {
          addTagChip(form, v.value);
        }
        return;
      }
      var field = form.querySelector("[name='" + CSS.escape(v.name) + "']:not([type=hidden]):not([type=checkbox])");
      if (field) {
        field.value = v.value;
      }
    });
  }

  // Everything typed in this dialog so far, by field: a field the other
  // method lacks is still there when the person switches back.
  var remembered = {};
  var carried = null;
  document.addEventListener("click", function (event) {
    var tab = event.target.closest("[data-method-tab]");
    var form = tab && document.getElementById("connection-form");
    if (!form) {
      return;
    }
    formValues(form).forEach(function (v) {
      remembered[v.box ? "box:" + v.name + "=" + v.value : v.name] = v;
    });
    carried = Object.keys(remembered).map(function (k) { return remembered[k]; });
  }, true);
  document.addEventListener("close", function (event) {
    if (event.target === dialog()) {
      remembered = {};
    }
  }, true);

  document.addEventListener("htmx:afterSwap", function (event) {
    var form = document.getElementById("connection-form");
    if (!carried || event.detail.target !== dialog() || !form) {
      return;
    }
    var values = carried;
    carried = null;
    applyValues(form, values);
  });

  // A session that ended while a form was open: the server kept its
  // non-secret input. Signing in with this flag set brings the person back
  // to the list, which opens that form in the dialog again.
  var scriptFlag = document.querySelector("input[data-script-flag]");
  if (scriptFlag) {
    scriptFlag.value = "1";
  }
  if (document.getElementById("workspace") && window.location.hash === "#restore-draft") {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    // After htmx has set itself up (its own listener came first).
    document.addEventListener("DOMContentLoaded", function () {
      if (window.htmx) {
        window.htmx.ajax("GET", "/connections/draft", { target: "#dialog", swap: "innerHTML" });
      }
    });
  }

  // ---- Tags: type, then Enter or a comma, to add one ----
  function addTagChip(form, name) {
    var box = form.querySelector("#chosen-tags");
    name = name.trim();
    if (!box || name === "") {
      return;
    }
    var existing = box.querySelectorAll("input[name=tag]");
    for (var i = 0; i < existing.length; i++) {
      if (existing[i].value.toLowerCase() === name.toLowerCase()) {
        existing[i].checked = true;
        return;
      }
    }
    var label = document.createElement("label");
    label.className = "tag-choice";
    var input = document.createElement("input");
    input.type = "checkbox";
    input.name = "tag";
    input.value = name;
    input.checked = true;
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + name));
    box.appendChild(label);
  }

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (input.id !== "field-new_tags" || (event.key !== "Enter" && event.key !== ",")) {
      return;
    }
    var form = input.closest("form");
    var parts = input.value.split(",");
    if (!form || input.value.trim() === "") {
      return; // Enter on an empty tag input submits the form, as usual.
    }
    event.preventDefault();
    parts.forEach(function (p) { addTagChip(form, p); });
    input.value = "";
  });

  // ---- Filters: folded on a phone, unless the person opened them ----
  var phone = window.matchMedia("(max-width: 800px)");
  var filtersOpen = false;
  function foldFilters() {
    var filters = document.getElementById("filters");
    if (filters) {
      filters.open = phone.matches ? filtersOpen : true;
    }
  }
  document.addEventListener("toggle", function (event) {
    if (event.target.id === "filters" && phone.matches) {
      filtersOpen = event.target.open;
    }
  }, true);
  phone.addEventListener("change", foldFilters);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "workspace") {
      foldFilters();
    }
  });
  foldFilters();
})();
