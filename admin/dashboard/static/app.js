// aibos-worker dashboard: times in the browser's zone, and live pages.
// No inline script anywhere: the Content-Security-Policy forbids it.
"use strict";

function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    el.textContent = d.toLocaleString();
    el.title = el.getAttribute("datetime").replace("T", " ").replace("Z", " UTC");
  });
}

// A datetime-local field has no zone: the user types local time, and the
// server wants UTC. Convert on submit; on load, show the filter's UTC time
// (data-utc; the value is it in UTC for a browser without script) as local.
function utcFields(root) {
  root.querySelectorAll("input[data-utc]").forEach(function (el) {
    var v = el.dataset.utc;
    if (v) {
      var d = new Date(v);
      if (!isNaN(d)) {
        var p = function (n) { return String(n).padStart(2, "0"); };
        el.value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
      }
    }
  });
  root.querySelectorAll("form").forEach(function (f) {
    f.addEventListener("submit", function () {
      f.querySelectorAll("input[data-utc]").forEach(function (el) {
        if (!el.value) { el.disabled = true; return; }
        var d = new Date(el.value);
        if (isNaN(d)) return;
        el.type = "text";
        el.value = d.toISOString().replace(/\.\d{3}Z$/, "Z");
      });
    });
  });
}

// Live pages poll themselves and swap <main>, unless the user is typing
// in it, so that a refresh never eats input.
function live() {
  var main = document.getElementById("main");
  if (!main || !main.dataset.live) return;
  var every = parseInt(main.dataset.live, 10) || 5000;
  setInterval(function () {
    if (document.hidden) return;
    var a = document.activeElement;
    if (a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok && r.url === location.href ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (!next) return;
        main.innerHTML = next.innerHTML;
        localTimes(main);
        utcFields(main);
      })
      .catch(function () { /* the next tick tries again */ });
  }, every);
}

document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  utcFields(document);
  live();
});
