// A review item's page follows its state after a replay, so no reload is needed to trust it.
(function () {
  "use strict";
  var box = document.getElementById("mlc-item");
  if (!box) { return; }
  var url = box.getAttribute("data-state-url");
  var shown = document.getElementById("mlc-state");
  var tries = 0;
  function poll() {
    if (box.getAttribute("data-state") !== "queued" || tries > 150) { return; }
    tries += 1;
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s) {
          shown.textContent = s.label;
          box.setAttribute("data-state", s.state);
          if (s.live_id) {  // the replay met the problem again: the item lives on there
            window.location.replace("../../" + s.live_id + "/change/");
            return;
          }
          if (s.state !== "queued") {
            box.classList.toggle("done", s.state === "done");
            var buttons = box.querySelector(".buttons");
            if (buttons && s.resolved) { buttons.remove(); }
            if (s.replay_id && !document.getElementById("mlc-replay-link")) {
              var a = document.createElement("a");
              a.id = "mlc-replay-link";
              a.href = "../../../auditrecord/" + s.replay_id + "/change/";
              a.textContent = "see the replay";
              shown.parentNode.appendChild(document.createTextNode(" \u00b7 "));
              shown.parentNode.appendChild(a);
            }
          }
        }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  setTimeout(poll, 1000);
})();
