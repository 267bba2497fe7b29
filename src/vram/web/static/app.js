// Enhancements only: the page works without this file (server-rendered forms).
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var $ = function (sel, root) { return (root || document).querySelector(sel); };

  // Model search-as-you-type (an ARIA combobox over /api/v1/models?q=)
  var input = $("#model"), list = $("#model-list");
  if (input && list) {
    var timer = null, active = -1, items = [], seq = 0;
    var close = function () { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; input.removeAttribute("aria-activedescendant"); };
    var pick = function (i) { if (items[i]) { input.value = items[i].id; input.dispatchEvent(new Event("change")); } close(); };
    var mark = function () {
      Array.prototype.forEach.call(list.children, function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
      if (active >= 0) { input.setAttribute("aria-activedescendant", "model-opt-" + active); }
    };
    var render = function (found) {
      items = found; list.textContent = "";
      found.forEach(function (m, i) {
        var li = document.createElement("li");
        li.id = "model-opt-" + i; li.setAttribute("role", "option"); li.setAttribute("aria-selected", "false");
        li.dataset.id = m.id;
        li.textContent = m.name;
        var small = document.createElement("small");
        small.textContent = m.id + (m.params ? " · " + (m.params / 1e9).toFixed(1) + "B params" : "");
        li.appendChild(small);
        li.addEventListener("mousedown", function (e) { e.preventDefault(); pick(i); });
        list.appendChild(li);
      });
      list.hidden = found.length === 0; input.setAttribute("aria-expanded", found.length ? "true" : "false");
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      timer = setTimeout(function () {
        var mine = ++seq;  // only the answer to the latest query is shown
        fetch("/api/v1/models?limit=8&q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : []; })
          // an answer that comes after focus has left is dropped: an open list would lie over the form
          .then(function (found) { if (mine === seq && document.activeElement === input) { active = -1; render(found); } }).catch(function () {});
      }, 120);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) { return; }
      if (e.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); mark(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); mark(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { pick(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { clearTimeout(timer); seq++; setTimeout(close, 150); });
  }

  // Training options only when Training is chosen
  var train = $("#train-opts");
  var syncMode = function () {
    var m = document.querySelector("input[name=mode]:checked");
    if (train) { train.classList.toggle("hidden", !m || m.value !== "train"); }
  };
  Array.prototype.forEach.call(document.querySelectorAll("input[name=mode]"), function (r) { r.addEventListener("change", syncMode); });
  syncMode();

  // The plain-words box is a plain GET form (/ask): the server fills the form from defaults and says what it
  // understood, with or without this file.

  // Image / speech inputs only for models of that kind (the catalog search answers each model's kind)
  var kinds = {}, families = document.querySelectorAll("fieldset.family");
  var syncFamily = function () {
    if (!input) { return; }
    var k = kinds[input.value.trim().toLowerCase()];
    Array.prototype.forEach.call(families, function (f) { f.classList.toggle("hidden", k !== undefined && f.dataset.kind !== k); });
  };
  if (input && families.length) {
    var learn = function (found) { found.forEach(function (m) { kinds[m.id] = m.kind; }); syncFamily(); };
    var lookup = function () {
      var v = input.value.trim();
      if (!v || kinds[v.toLowerCase()] !== undefined) { syncFamily(); return; }
      fetch("/api/v1/models?limit=1&q=" + encodeURIComponent(v), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (found) { if (found.length && found[0].id === v.toLowerCase()) { learn(found); } })
        .catch(function () {});
    };
    input.addEventListener("change", lookup);
    list && list.addEventListener("mousedown", function () { setTimeout(lookup, 0); });
    lookup();
  }

  // Copy buttons: data-copy="#selector" (value or text of the target)
  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (b) {
    b.addEventListener("click", function () {
      var t = $(b.getAttribute("data-copy"));
      if (!t) { return; }
      var text = t.value !== undefined && t.tagName !== "CODE" ? t.value : t.textContent;
      var done = function () { var old = b.textContent; b.textContent = "Copied"; setTimeout(function () { b.textContent = old; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, function () {}); }
      else { var ta = document.createElement("textarea"); ta.value = text; document.body.appendChild(ta); ta.select(); try { document.execCommand("copy"); done(); } catch (err) {} document.body.removeChild(ta); }
    });
  });

  // After a question was read, focus goes to Check (the answer is one key away)
  var asked = $("#ask-status .chip");
  if (asked && !$(".result") && !$("#error")) { var check = $("#estimate-btn"); if (check) { check.focus(); } }

  // After a form post, focus moves to the error or the result (so keyboard and screen-reader users land on it)
  var target = $("#error") || $(".result");
  if (target) { if (!target.hasAttribute("tabindex")) { target.setAttribute("tabindex", "-1"); } target.focus({ preventScroll: true }); target.scrollIntoView({ block: "start" }); }
})();
