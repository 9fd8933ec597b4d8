// cobrowse remote control: applies an agent's input actions to the visitor's
// page, once the visitor granted control (docs/protocol.md, "input").
//
// Actions arrive with a point in the viewport (where the agent's pointer
// is) and are applied so that the page's own code sees them as it sees the
// visitor's: a click is the pointer and mouse events a browser sends, then
// click(), and moves the focus; typed text goes through the field's native
// value setter and an "input" event, so React's and Vue's controlled inputs
// take it; a select's new value, or a date, time or colour field's, fires
// "input" and "change"; Enter submits
// the field's form as a browser would; scrolling scrolls what is under the
// pointer.
//
// Refused, with the reason sent back to the agent: the cobrowse UI itself,
// elements under the policy's no_control selectors, and fields whose value
// is masked (passwords, card fields, the policy's masked fields): an agent
// never types into what it may not read.
//
// cobrowseControl(doc, win, refusal) returns apply(msg), which returns ""
// when it applied the action and the reason when it did not; refusal(el)
// returns the policy's reason to refuse el, or "".
function cobrowseControl(doc, win, refusal) {
  'use strict';

  // PICKERS are the input types whose value a browser picks in a pop-up
  // (date pickers and the like): an agent chooses their value directly.
  var PICKERS = /^(date|datetime-local|month|week|time|color|range)$/i;

  function nativeSetter(el) {
    var proto = el instanceof win.HTMLTextAreaElement ? win.HTMLTextAreaElement.prototype :
      el instanceof win.HTMLSelectElement ? win.HTMLSelectElement.prototype : win.HTMLInputElement.prototype;
    var d = Object.getOwnPropertyDescriptor(proto, 'value');
    return d && d.set;
  }

  // setValue sets a field's value so that frameworks notice: their own
  // value property wrapper is bypassed, then the events a user's edit fires.
  function setValue(el, value, alsoChange) {
    var set = nativeSetter(el);
    if (set) set.call(el, value); else el.value = value;
    el.dispatchEvent(new win.Event('input', { bubbles: true }));
    if (alsoChange) el.dispatchEvent(new win.Event('change', { bubbles: true }));
  }

  function editable(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    if (el.tagName === 'TEXTAREA') return !el.readOnly && !el.disabled;
    if (el.tagName !== 'INPUT') return false;
    var t = (el.type || 'text').toLowerCase();
    return ['text', 'search', 'email', 'url', 'tel', 'number', 'password', ''].indexOf(t) >= 0 && !el.readOnly && !el.disabled;
  }

  function mouse(el, type, x, y) {
    var Ctor = type.indexOf('pointer') === 0 && win.PointerEvent ? win.PointerEvent : win.MouseEvent;
    el.dispatchEvent(new Ctor(type, { bubbles: true, cancelable: true, composed: true, clientX: x, clientY: y, button: 0, view: win, pointerType: 'mouse', isPrimary: true }));
  }

  // target returns the element at the point, or the focused one for keys.
  function target(msg) {
    if (msg.action === 'text' || msg.action === 'key') return doc.activeElement || doc.body;
    return doc.elementFromPoint(msg.x, msg.y);
  }

  function insertText(el, text) {
    if (el.isContentEditable) {
      doc.execCommand('insertText', false, text);
      return;
    }
    var v = el.value || '';
    var start = typeof el.selectionStart === 'number' ? el.selectionStart : v.length;
    var end = typeof el.selectionEnd === 'number' ? el.selectionEnd : v.length;
    setValue(el, v.slice(0, start) + text + v.slice(end), false);
    try { el.setSelectionRange(start + text.length, start + text.length); } catch (e) { /* number fields */ }
  }

  function key(el, name) {
    var init = { key: name, bubbles: true, cancelable: true, composed: true };
    var go = el.dispatchEvent(new win.KeyboardEvent('keydown', init));
    if (go) {
      if (name === 'Backspace' && editable(el) && !el.isContentEditable) {
        var v = el.value || '';
        var start = typeof el.selectionStart === 'number' ? el.selectionStart : v.length;
        var end = typeof el.selectionEnd === 'number' ? el.selectionEnd : v.length;
        if (start === end && start > 0) start--;
        setValue(el, v.slice(0, start) + v.slice(end), false);
        try { el.setSelectionRange(start, start); } catch (e) { /* number fields */ }
      } else if (name === 'Enter' && el.tagName === 'INPUT' && el.form) {
        if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
      } else if (name === 'Enter' && (el.tagName === 'BUTTON' || el.tagName === 'A')) {
        el.click();
      }
    }
    el.dispatchEvent(new win.KeyboardEvent('keyup', init));
  }

  return function apply(msg) {
    var el = target(msg);
    if (!el) return 'nothing there on the visitor\'s page';
    if (el.tagName === 'COBROWSE-UI') return 'that is the visitor\'s cobrowse panel';
    var why = refusal(el);
    if (why) return why;
    switch (msg.action) {
      case 'click':
        mouse(el, 'pointerdown', msg.x, msg.y);
        mouse(el, 'mousedown', msg.x, msg.y);
        if (el.focus) el.focus();
        mouse(el, 'pointerup', msg.x, msg.y);
        mouse(el, 'mouseup', msg.x, msg.y);
        // SVG elements have no click(): the event then, without the
        // default action an HTML element's click() runs.
        if (typeof el.click === 'function') el.click(); else mouse(el, 'click', msg.x, msg.y);
        return '';
      case 'text':
        if (!editable(el)) return 'the focused element does not take text';
        insertText(el, String(msg.text || ''));
        return '';
      case 'key':
        key(el, String(msg.key || ''));
        return '';
      case 'select':
        if (el.tagName === 'SELECT') {
          var ok = Array.prototype.some.call(el.options, function (o) { return o.value === msg.value; });
          if (!ok) return 'the list has no such option';
        } else if (!(el.tagName === 'INPUT' && PICKERS.test(el.type || ''))) {
          return 'that is not a list or a date, time or colour field';
        }
        if (el.focus) el.focus();
        setValue(el, msg.value, true);
        // A value the field does not take (a malformed date) leaves it empty.
        if (el.tagName === 'INPUT' && el.value !== msg.value) return 'the field does not take "' + msg.value + '"';
        return '';
      case 'scroll':
        for (var n = el; n && n !== doc.documentElement; n = n.parentElement) {
          var style = win.getComputedStyle(n);
          if (/(auto|scroll)/.test(style.overflowY + style.overflowX) &&
              (n.scrollHeight > n.clientHeight || n.scrollWidth > n.clientWidth)) {
            n.scrollBy(msg.dx || 0, msg.dy || 0);
            return '';
          }
        }
        win.scrollBy(msg.dx || 0, msg.dy || 0);
        return '';
    }
    return 'unknown action';
  };
}
