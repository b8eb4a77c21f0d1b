// officebox admin pages: a little progressive enhancement. Every page works without
// this file; with it, the live tables (leases, zone, mail queue, phones) refresh by
// themselves and the confirm page counts down to the undo.
"use strict";

(function () {
  var EVERY_MS = 5000;

  // The live part of a page, fetched again from data-live and swapped in when it changed.
  var live = document.querySelector("[data-live]");
  if (live) {
    var last = null;
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) {
        return;
      }
      // Not under a button being pressed or a field being typed in.
      var focus = document.activeElement;
      if (focus && focus !== document.body && live.contains(focus)) {
        return;
      }
      busy = true;
      fetch(live.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          // A session that ended redirects to the login page: keep what is shown.
          return r.ok && !r.redirected ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            live.innerHTML = html;
            last = html;
          }
        })
        .catch(function () {})
        .then(function () {
          busy = false;
        });
    }, EVERY_MS);
  }

  // The confirm page: the seconds left before the previous settings come back.
  var countdown = document.getElementById("countdown");
  if (countdown) {
    var deadline = Date.now() + 1000 * parseInt(countdown.textContent, 10);
    var timer = setInterval(function () {
      var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      countdown.textContent = String(left);
      if (left > 0) {
        return;
      }
      clearInterval(timer);
      var heading = document.querySelector("h1");
      if (heading) {
        heading.textContent = "The change is being undone";
      }
      var note = document.getElementById("confirm-note");
      if (note) {
        note.textContent = "The time ran out: officebox is putting the previous settings back. ";
        var history = document.createElement("a");
        history.href = "/history";
        history.textContent = "Config History shows every version.";
        note.appendChild(history);
      }
      var form = document.getElementById("confirm");
      if (form) {
        form.hidden = true;
      }
    }, 1000);
  }
})();
