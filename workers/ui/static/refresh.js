// Keeps the dead-letter counts on the page current without a reload: every few seconds (the body's
// data-refresh-s), GET /ui/api/status from the same origin, with the same login, and write the counts into the
// elements that show them (#dlq-total, .dlq-count[data-source]). Plain fetch: no build step, nothing downloaded.
(function () {
  "use strict";
  var every = Number(document.body.dataset.refreshS || 5) * 1000;

  function show(status) {
    document.querySelectorAll("#dlq-total").forEach(function (el) {
      el.textContent = String(status.dlq_total);
    });
    document.querySelectorAll(".dlq-count[data-source]").forEach(function (el) {
      var info = status.sources[el.dataset.source];
      if (info && typeof info.dlq === "number") {
        el.textContent = String(info.dlq);
      }
    });
  }

  function tick() {
    fetch("/ui/api/status", { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (status) { if (status) { show(status); } })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { setTimeout(tick, every); });
  }

  setTimeout(tick, every);
})();
