/* login.js: the login form came back with ?failed=1 after a token that did not pass. */
(function () {
  "use strict";
  if (new URLSearchParams(location.search).get("failed") === "1") {
    document.getElementById("failed").hidden = false;
    document.getElementById("token").setAttribute("aria-invalid", "true");
  }
})();
