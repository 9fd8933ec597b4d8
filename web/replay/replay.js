// The replay page of the headless renderer (browserpool/render.go). The
// renderer opens it in a leased tab and calls cobrowseReceive with each
// message of the session's redacted feed ("reset", "events", "info";
// docs/protocol.md); the tab's screencast is what agents see in Rendered
// mode. cobrowseReceive returns the visitor's viewport size as the feed last
// described it ({width, height}, or null before any), so that the renderer
// can size the tab to match.
'use strict';
(function () {
  var player = cobrowsePlayer(document.getElementById('stage'), function () {});
  var viewport = null;

  // noteViewport keeps the size of the latest Meta event (type 4) or
  // viewport-resize incremental event (type 3, source 4) in events.
  function noteViewport(events) {
    events.forEach(function (e) {
      var d = e.data || {};
      if ((e.type === 4 || (e.type === 3 && d.source === 4)) && d.width > 0 && d.height > 0) {
        viewport = { width: d.width, height: d.height };
      }
    });
  }

  window.cobrowseReceive = function (msg) {
    var events = msg.events || [];
    if (msg.type === 'reset') {
      viewport = null;
      noteViewport(events);
      player.reset(events);
    } else if (msg.type === 'events') {
      noteViewport(events);
      player.add(events);
    }
    return viewport;
  };
})();
