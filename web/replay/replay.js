// The replay page of the headless renderer (browserpool/render.go). The
// renderer opens it in a leased tab and calls cobrowseReceive with each
// message of the session's redacted feed ("reset", "events", "info";
// docs/protocol.md); the tab's screencast is what agents see in Rendered
// mode. cobrowseReceive returns the visitor's page as the feed last
// described it ({href, width, height, pixelRatio}, or null before any): the
// renderer sizes the tab to the visitor's viewport and pixel ratio, and
// resolves the page's subresources for its URL.
'use strict';
(function () {
  var player = cobrowsePlayer(document.getElementById('stage'), function () {});
  var page = null;
  var pixelRatio = 1; // the session's, from the hub's Info (docs/api.md)

  // notePage keeps the URL and size of the latest Meta event (type 4) and
  // the size of a later viewport-resize incremental event (type 3, source 4).
  function notePage(events) {
    events.forEach(function (e) {
      var d = e.data || {};
      if (e.type === 4 && d.width > 0 && d.height > 0) {
        page = { href: String(d.href || ''), width: d.width, height: d.height };
      } else if (page && e.type === 3 && d.source === 4 && d.width > 0 && d.height > 0) {
        page = { href: page.href, width: d.width, height: d.height };
      }
    });
  }

  window.cobrowseReceive = function (msg) {
    var events = msg.events || [];
    if (msg.session && msg.session.pixelRatio > 0) pixelRatio = msg.session.pixelRatio;
    if (msg.type === 'reset') {
      page = null;
      notePage(events);
      player.reset(events);
    } else if (msg.type === 'events') {
      notePage(events);
      player.add(events);
    }
    return page && { href: page.href, width: page.width, height: page.height, pixelRatio: pixelRatio };
  };
})();
