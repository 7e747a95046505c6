// Shows the Capacity console inside Locust's own "Capacity" tab.
// Locust's stock UI can only render a table in an extended tab; this script (added to Locust's index page by the
// dcc-capacity blueprint) lays the full console, in an iframe, over that tab's panel while the tab is selected.
// If anything here fails, the tab still shows Locust's table, so the UI never breaks.
"use strict";
(function () {
  const frame = document.createElement("iframe");
  frame.id = "dcc-capacity-frame";
  frame.title = "Capacity";
  frame.src = "./capacity/?embedded=1";
  Object.assign(frame.style, {position: "fixed", left: "0", right: "0", bottom: "0", width: "100%", border: "0",
                              display: "none", zIndex: "1000", background: "#f6f7f9"});
  document.body.appendChild(frame);
  function place() {
    const onTab = new URLSearchParams(window.location.search).get("tab") === "capacity";
    const tabs = document.querySelector("[role=tablist]");
    if (!onTab || !tabs) { frame.style.display = "none"; return; }
    const bottom = Math.max(0, tabs.getBoundingClientRect().bottom);
    frame.style.top = `${bottom}px`;
    frame.style.height = `${window.innerHeight - bottom}px`;
    frame.style.display = "block";
  }
  window.addEventListener("resize", place);
  window.addEventListener("popstate", place);
  setInterval(place, 250);
})();
