// Sites pages: copy buttons, the install page's first-event check, a new site's time zone.
// No inline scripts: everything hangs off data- attributes (see ui/templates/site_*.html).
(function () {
  "use strict";

  // Copy buttons stay hidden without JavaScript (or a clipboard): the text is selectable anyway.
  function setUpCopyButtons() {
    if (!navigator.clipboard) return;
    document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.dataset.copy);
      if (!source) return;
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
          button.classList.add("done");
          setTimeout(function () { button.textContent = label; button.classList.remove("done"); }, 1500);
        }, function () { button.textContent = "Select and copy"; });
      });
    });
  }

  // Waiting → received. Ticks come over the site's live stream, pushed when its events are counted.
  // Once the stream says `ready` no later tick can be missed, so the status is asked for then,
  // for an event counted between the page's render and the subscription. With the live layer
  // down the stream stays silent: a slow poll covers that.
  var POLL_MS = 20000;
  function watchFirstEvent() {
    var box = document.getElementById("first-event");
    if (!box || box.dataset.received === "true") return;
    var text = box.querySelector(".first-event-text");
    var source = null, poll = null;

    function received() {
      if (box.dataset.received === "true") return;
      box.dataset.received = "true";
      box.classList.add("received");
      text.textContent = "Received: events from this site are arriving.";
      document.querySelectorAll(".first-event-hint").forEach(function (hint) { hint.hidden = true; });
      if (source) source.close();
      clearInterval(poll);
    }

    function ask() {
      fetch(box.dataset.status, { headers: { accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { if (body && body.received) received(); })
        .catch(function () { /* asked again on the next ready or poll */ });
    }

    if (window.EventSource) {
      source = new EventSource(box.dataset.stream);
      source.addEventListener("ready", ask);
      source.addEventListener("tick", received);
    }
    poll = setInterval(ask, POLL_MS);
    document.getElementById("first-event-reload").hidden = true;
  }

  // A blank new-site form starts in the browser's own zone when the server knows it.
  function guessTimeZone() {
    var select = document.querySelector("select[data-guess]");
    if (!select || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) { select.selectedIndex = i; return; }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    watchFirstEvent();
    guessTimeZone();
  });
})();
