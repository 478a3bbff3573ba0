// Team page: copy the invitation link, and ask before removing a member or revoking an invitation.
// No inline scripts: everything hangs off data- attributes (see ui/templates/team.html).
(function () {
  "use strict";

  // Without JavaScript (or a clipboard) the button stays hidden: the link's field is selectable.
  function setUpCopy() {
    if (!navigator.clipboard) return;
    document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      var field = document.getElementById(button.dataset.copy);
      if (!field) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(field.value).then(function () {
          button.textContent = "Copied";
        }, function () {
          field.select();
          button.textContent = "Press Ctrl+C";
        });
      });
    });
  }

  function setUpConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function start() {
    setUpCopy();
    setUpConfirm();
    var link = document.getElementById("invite-link");
    if (link) link.addEventListener("focus", function () { link.select(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
