// tgsearch web UI: a little progressive enhancement. Everything works without it.
(function () {
  "use strict";

  var TEXT_INPUTS = { text: 1, search: 1, date: 1, password: 1, number: 1, email: 1, url: 1, tel: 1 };

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "INPUT") return !!TEXT_INPUTS[(el.type || "text").toLowerCase()];
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // "/" focuses the search box (on the search page), or opens search from other pages.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(document.activeElement)) return;
    var box = document.getElementById("q");
    event.preventDefault();
    if (box) {
      box.focus();
      box.select();
    } else {
      window.location.href = "/";
    }
  });

  // Escape leaves the search box.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.activeElement && document.activeElement.id === "q") {
      document.activeElement.blur();
    }
  });

  function submit(form) {
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  // Mode, sort and kind switches apply at once.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.classList && el.classList.contains("autosubmit") && el.form) submit(el.form);
  });

  // Drop empty fields so shared URLs stay short (?q=… rather than ?q=…&since=&until=…).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "searchform") return;
    var fields = form.querySelectorAll("input[name], select[name]");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      var isDefault = (f.name === "mode" && f.value === "hybrid") || (f.name === "sort" && f.value === "relevance");
      if ((f.value === "" || isDefault) && f.type !== "checkbox") f.disabled = true;
    }
    // Re-enable after the navigation has read them (for bfcache / back button).
    window.setTimeout(function () {
      for (var j = 0; j < fields.length; j++) fields[j].disabled = false;
    }, 0);
  });

  // Close the channel picker when clicking elsewhere.
  document.addEventListener("click", function (event) {
    var open = document.querySelectorAll("details.channel-picker[open]");
    for (var i = 0; i < open.length; i++) {
      if (!open[i].contains(event.target)) open[i].removeAttribute("open");
    }
  });
})();
