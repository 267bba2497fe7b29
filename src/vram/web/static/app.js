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
    var pick = function (i) { if (items[i]) { input.value = items[i].id; } close(); };
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
          .then(function (found) { if (mine === seq) { active = -1; render(found); } }).catch(function () {});
      }, 120);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden) { return; }
      if (e.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); mark(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); mark(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { pick(active); e.preventDefault(); }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  // Training options only when Training is chosen
  var train = $("#train-opts");
  var syncMode = function () {
    var m = document.querySelector("input[name=mode]:checked");
    if (train) { train.classList.toggle("hidden", !m || m.value !== "train"); }
  };
  Array.prototype.forEach.call(document.querySelectorAll("input[name=mode]"), function (r) { r.addEventListener("change", syncMode); });
  syncMode();

  // Free-text question -> form fields (GET /api/v1/parse, free)
  var ask = $("#ask-form");
  if (ask) {
    ask.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = $("#question").value, status = $("#ask-status");
      fetch("/api/v1/parse?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var set = function (id, v) { var el = document.getElementById(id); if (el && v !== undefined && v !== null) { el.value = String(v); } };
          set("model", p.model); set("gpu", p.gpu); set("gpu_count", p.gpu_count); set("context", p.context);
          set("batch", p.batch); set("quant", p.quant); set("method", p.method);
          if (p.mode) { var r = document.querySelector("input[name=mode][value=" + (p.mode === "train" ? "train" : "inference") + "]"); if (r) { r.checked = true; syncMode(); } }
          var got = Object.keys(p);
          status.textContent = got.length ? "Filled: " + got.join(", ") + ". Check the form, then press Check." : "Could not find a model or GPU in that question.";
          var btn = $("#estimate-btn"); if (btn && got.length) { btn.focus(); }
        }).catch(function () { ask.submit(); });
    });
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

  // Show the result after a form post: bring it into view and announce it
  var result = $(".result");
  if (result && !location.hash) { result.setAttribute("tabindex", "-1"); result.scrollIntoView({ block: "start" }); }
})();
