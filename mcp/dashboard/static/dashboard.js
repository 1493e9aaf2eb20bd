// The dashboard's own script: the bearer token for actions (kept in this
// tab's sessionStorage, sent as an Authorization header by htmx), and live
// task logs over server-sent events.
(function () {
  "use strict";
  var KEY = "claude-parallel-token";
  document.addEventListener("htmx:configRequest", function (ev) {
    var token = sessionStorage.getItem(KEY);
    if (token) { ev.detail.headers["Authorization"] = "Bearer " + token; }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("token-form");
    if (form) {
      var input = form.querySelector("input");
      input.value = sessionStorage.getItem(KEY) || "";
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        if (input.value) { sessionStorage.setItem(KEY, input.value); } else { sessionStorage.removeItem(KEY); }
        form.querySelector("output").textContent = input.value ? "token set for this tab" : "token cleared";
      });
    }
    var log = document.getElementById("log");
    if (log && log.dataset.stream && window.EventSource) {
      var src = new EventSource(log.dataset.stream);
      src.onmessage = function (ev) {
        var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.appendChild(document.createTextNode(ev.data + "\n"));
        if (atEnd) { log.scrollTop = log.scrollHeight; }
      };
      src.addEventListener("end", function () { src.close(); });
    }
  });
})();
