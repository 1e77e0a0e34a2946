/* login.js: the login form came back with ?failed=1 (a token that did not pass),
   ?failed=limit (too many failures from this address) or ?failed=form (no form). */
(function () {
  "use strict";
  var failed = new URLSearchParams(location.search).get("failed");
  var message = { "1": "failed", limit: "failed-limit", form: "failed-form" }[failed];
  if (message) {
    document.getElementById(message).hidden = false;
    document.getElementById("token").setAttribute("aria-invalid", "true");
  }
})();
