// cobrowsePlayer: rrweb's Replayer in live mode, fed with the hub's messages
// ("reset" and "events", docs/protocol.md). The agent's session view and the
// headless replay page that the renderer screencasts both use it, so DOM mode
// and Rendered mode replay a session the same way.
//
// The Replayer renders the visitor's page in an iframe that it sandboxes
// without allow-scripts (and turns <script> into <noscript>), so visitor
// markup never runs script.
'use strict';
window.cobrowsePlayer = function (stage, onResize) {
  var replayer = null;
  var lastStamp = 0;

  // rrweb's live mode plays an event once the player's clock (started at
  // startLive) reaches the event's timestamp. Timestamps come from the
  // visitor's clock and an idle visitor leaves old ones, so each batch is
  // moved onto this browser's clock: its last event lands on "now", its
  // internal spacing and the overall order are kept.
  function restamp(events) {
    if (!events.length) return;
    var shift = Date.now() - events[events.length - 1].timestamp;
    events.forEach(function (e) {
      lastStamp = Math.max(e.timestamp + shift, lastStamp);
      e.timestamp = lastStamp;
    });
  }

  return {
    // reset replaces what is shown with the page that events describe. It
    // returns false, and shows nothing, when they hold no full snapshot yet.
    reset: function (events) {
      if (replayer) replayer.destroy();
      replayer = null;
      stage.textContent = '';
      if (!events.some(function (e) { return e.type === 2; })) return false;
      restamp(events);
      replayer = new rrwebReplay.Replayer([], {
        root: stage,
        liveMode: true,
        mouseTail: false,
        triggerFocus: false,
        showWarning: false,
        UNSAFE_replayCanvas: false
      });
      replayer.on('resize', onResize);
      replayer.startLive(lastStamp);
      events.forEach(function (e) { replayer.addEvent(e); });
      return true;
    },
    // add plays events that follow the last reset; before one they are dropped.
    add: function (events) {
      if (!replayer) return;
      restamp(events);
      events.forEach(function (e) { replayer.addEvent(e); });
    }
  };
};
