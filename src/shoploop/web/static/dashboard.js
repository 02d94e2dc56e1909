// Refreshes the live KPI panel every 5 s with a server-rendered fragment (no framework).
(function () {
  "use strict";
  const panel = document.getElementById("live");
  if (!panel) return;
  setInterval(() => {
    fetch(panel.dataset.refresh, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (html) panel.innerHTML = html;
      })
      .catch(() => {});
  }, 5000);
})();
