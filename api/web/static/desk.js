// The stores desk, live: each decision and alert the server pushes (server-sent events from
// /web/desk/stream) goes on the page as it happens, and a new alert beeps. A file, not an
// inline script, so the Content Security Policy can refuse every inline script. The sound is
// made with WebAudio (no audio file); browsers start it only after someone has touched the
// page, so any click or key press at the desk arms it.
(function () {
  "use strict";
  var MAX_ROWS = 25; // as many as the server renders (api.web.desk.MAX_FEED_ROWS)
  var audio = null;

  function armSound() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) { audio = new Context(); }
    if (audio && audio.state === "suspended") { audio.resume(); }
  }

  function beep() {
    armSound();
    if (!audio) { return; }
    var now = audio.currentTime;
    [0, 0.35].forEach(function (offset) { // two short tones: unlike any reader's own beep
      var tone = audio.createOscillator();
      var gain = audio.createGain();
      tone.type = "square";
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.001, now + offset + 0.3);
      tone.connect(gain);
      gain.connect(audio.destination);
      tone.start(now + offset);
      tone.stop(now + offset + 0.3);
    });
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
    document.body.dataset.sound = audio.state;
  }

  function element(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html.trim(); // the server's escaped HTML; scripts never run from here
    return holder.content.firstElementChild;
  }

  function onDecision(event) {
    var list = document.getElementById("decisions");
    var row = element(event.data);
    if (!list || !row || list.querySelector('[data-id="' + row.dataset.id + '"]')) { return; }
    var empty = list.querySelector("li.none");
    if (empty) { empty.remove(); }
    list.insertBefore(row, list.firstChild);
    while (list.children.length > MAX_ROWS) { list.lastElementChild.remove(); }
    document.body.dispatchEvent(new Event("desk-changed")); // htmx re-fetches the holdings
  }

  function onAlert(event) {
    var banner = element(event.data);
    var alerts = document.getElementById("alerts");
    if (!alerts || !banner ||
        alerts.querySelector('[data-alert="' + banner.dataset.alert + '"]')) { return; }
    alerts.insertBefore(banner, alerts.firstChild);
    beep();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var feed = document.getElementById("feed");
    if (!feed || !feed.dataset.stream || !window.EventSource) { return; }
    document.addEventListener("click", armSound);
    document.addEventListener("keydown", armSound);
    if (document.querySelector("#alerts .raised")) { beep(); }
    var state = document.getElementById("live-state");
    var source = new EventSource(feed.dataset.stream);
    source.addEventListener("open", function () {
      document.body.dataset.live = "open";
      if (state) { state.textContent = "Live: new decisions appear as they are made."; }
    });
    source.addEventListener("error", function () {
      document.body.dataset.live = "reconnecting";
      if (state) { state.textContent = "Reconnecting to the live feed…"; }
    });
    source.addEventListener("decision", onDecision);
    source.addEventListener("alert", onAlert);
    source.addEventListener("signed-out", function () {
      source.close();
      window.location.assign("/web/login");
    });
  });
}());
