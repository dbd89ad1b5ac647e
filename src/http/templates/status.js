// Refreshes the status page's sections in place every two seconds, keeping a section whose
// player is playing as it is (so listening is never cut short).
(function () {
  "use strict";
  var EVERY_MS = 2000;
  function playing(section) {
    return Array.prototype.some.call(section.querySelectorAll("audio, video"), function (m) {
      return !m.paused && !m.ended;
    });
  }
  function refresh() {
    var params = new URLSearchParams(location.search);
    params.set("partial", "1");
    fetch(location.pathname + "?" + params.toString(), { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString("<main>" + text + "</main>", "text/html");
        var main = document.getElementById("status");
        Array.prototype.forEach.call(fresh.querySelectorAll("main > *"), function (next) {
          var current = next.id && document.getElementById(next.id);
          if (!current) return;
          // Unchanged sections stay, so images and players are not reloaded.
          if (current.outerHTML === next.outerHTML || playing(current)) return;
          current.replaceWith(document.importNode(next, true));
        });
        main.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the daemon may be restarting: try again at the next tick */ })
      .finally(function () { setTimeout(refresh, EVERY_MS); });
  }
  setTimeout(refresh, EVERY_MS);
})();
