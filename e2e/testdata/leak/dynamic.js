// The steps of the dynamic leak cases (e2e/leak_test.go): secrets that
// appear after the page loaded. Served as a file, not inline, so that the
// secrets reach the server only through the changes rrweb records.
'use strict';
window.leakSteps = (function () {
  var n = 0;
  function $(id) { return document.getElementById(id); }
  function tick() { n++; $('tick').textContent = 'step ' + n; return n; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  return {
    // Secrets inserted after load: detectors in plain text and attributes,
    // a masked block, and a node inserted in plain and moved into the
    // masked box in the same task.
    insert: function () {
      var box = $('late-plain');
      box.appendChild(el('p', { id: 'late-text' }, 'Late card 5105 1051 0510 5100 and late.hank@example.com here'));
      box.appendChild(el('span', { id: 'late-attr', 'data-contact': 'late.attr.ivy@example.com', title: 'Fax 030 1234567' }, 'Late public attribute holder'));
      box.appendChild(el('div', { id: 'late-masked', 'class': 'secret', 'aria-label': 'Late-Masked-Aria-Dingo' }, 'Late-Masked-Insert-Gecko'));
      var hop = el('p', { id: 'same-task' }, 'SameTask-Moved-Secret-Ibex');
      box.appendChild(hop);
      $('masked-box').appendChild(hop);
      return tick();
    },
    // Text changed later, plain (detector) and masked.
    changeText: function () {
      $('status').firstChild.data = 'Status: payout to NL91 ABNA 0417 1643 00 now';
      $('status').setAttribute('title', 'Reach me at status.title.kai@example.com');
      $('masked-status').firstChild.data = 'Changed-Masked-Status-Tern';
      $('masked-status').setAttribute('aria-label', 'Changed-Masked-Aria-Newt');
      return tick();
    },
    // A node moved from the plain box into the masked one; its text and
    // an attribute change while it is there.
    moveIn: function () {
      $('masked-box').appendChild($('mover'));
      return tick();
    },
    secretWhileMasked: function () {
      var m = $('mover');
      m.firstChild.data = 'Mover-Secret-While-Masked-Lynx';
      m.setAttribute('title', 'Mover-Title-Secret-Puffin');
      return tick();
    },
    // ...and back, public again (text reset in the same task).
    moveOut: function () {
      var m = $('mover');
      m.firstChild.data = 'Mover public again';
      m.removeAttribute('title');
      $('plain-box').insertBefore(m, $('toggler'));
      return tick();
    },
    // A class toggled on makes an element start matching a mask selector;
    // a secret is written while it matches; then it stops matching.
    toggleOn: function () {
      $('toggler').classList.add('secret');
      return tick();
    },
    secretWhileToggled: function () {
      var t = $('toggler');
      t.firstChild.data = 'Toggler-Secret-Heron-404';
      t.setAttribute('data-note', 'Toggler-Data-Secret-Moth');
      return tick();
    },
    toggleOff: function () {
      var t = $('toggler');
      t.firstChild.data = 'Toggler public again';
      t.removeAttribute('data-note');
      t.classList.remove('secret');
      return tick();
    },
    // The class and the secret in the same task, as one mutation batch.
    toggleWithSecret: function () {
      var t = $('toggler2');
      t.firstChild.data = 'SameTask-Toggle-Secret-Okapi';
      t.classList.add('secret');
      return tick();
    },
    // The second half of a card number split across two spans of the
    // masked box.
    split: function () {
      $('split-card').appendChild(el('span', {}, ' 8689 9855'));
      return tick();
    },
    // Secrets written into removed boxes: one removed from the start, one
    // that a class change made removed.
    removed: function () {
      $('dyn-removed').appendChild(el('p', {}, 'Removed-Late-Insert-Bison'));
      $('becomes-removed').classList.add('internal-notes');
      return tick();
    },
    removedLater: function () {
      $('becomes-removed').firstChild.data = 'Removed-After-Toggle-Yak';
      $('becomes-removed').appendChild(el('b', { title: 'Removed-Child-Title-Emu' }, 'Removed-Child-Text-Kudu'));
      return tick();
    },
    // CSS added later: a <style> element, and a rule inserted through the
    // CSSOM into the page's first style sheet (detectors).
    css: function () {
      document.head.appendChild(el('style', { id: 'late-style' }, '.late::after { content: "late.css.jill@example.com"; }'));
      return tick();
    },
    // The page title changed by script (email detector).
    title: function () {
      document.title = 'Dynamic for title.late.zoe@example.com';
      return tick();
    },
    cssRule: function () {
      var sheet = document.styleSheets[0];
      sheet.insertRule('.late2::before { content: "Rule 6011 0009 9013 9424"; }', sheet.cssRules.length);
      return tick();
    }
  };
})();
