// Helpers shared by the agent pages.
'use strict';
var cobrowse = {
  // relativeTime renders an ISO time as "5 s ago", "3 min ago", ...
  relativeTime: function (iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    return Math.floor(seconds / 3600) + ' h ago';
  },
  // el builds an element with text content (never HTML: page titles and URLs
  // come from visitors).
  el: function (tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }
};
