// cobrowsePlayer: rrweb's Replayer in live mode, fed with the hub's messages
// ("reset" and "events", docs/protocol.md). The agent's session view and the
// headless replay page that the renderer screencasts both use it, so DOM mode
// and Rendered mode replay a session the same way.
//
// The Replayer renders the visitor's page in an iframe that it sandboxes
// without allow-scripts (and turns <script> into <noscript>), so visitor
// markup never runs script.
//
// options.assetURL(url), if given, names where the replayed page loads a
// resource from instead of url, an absolute http(s) URL without fragment:
// the agent console gives its asset route, so that the agent's browser never
// contacts the visitor's site (docs/assets.md). The headless replay page
// gives none: the renderer answers its tab's requests itself.
'use strict';
(function () {
  var HTML_SPACE = /[ \t\n\f\r]/;
  var CSS_SPACE = /[ \t\n\f\r]/;
  var CSS_NAME = /[A-Za-z0-9_\u0080-\uffff-]/;
  var CSS_NEWLINE = /[\n\f\r]/;
  var CSS_BAD_IN_URL = /["'(\u0001-\u0008\u000b\u000e-\u001f\u007f]/;

  // assetMapper rewrites, in place, the URLs of the resources that rrweb
  // events make the replayed page load: element attributes (src, srcset,
  // imagesrcset, poster, background; href of <link>, and of SVG <image>,
  // <use> and <feImage>, also as xlink:href; data of <object>), CSS (style
  // attributes and their changes, rrweb's inlined _cssText, the text of
  // <style> elements, stylesheet rules, declarations and adopted sheets) and
  // the sources of web fonts. rrweb records these URLs absolute; only http
  // and https URLs are mapped (data:, blob:, about: and #fragment stay).
  // Attribute and text changes name only a node id, so the mapper keeps the
  // tag of every element and which text nodes are inside a <style>.
  function assetMapper(assetURL) {
    var tags = new Map(); // element id -> lower-case tag name
    var styleTexts = new Set(); // ids of text nodes inside a <style>

    function mapURL(u) {
      if (typeof u !== 'string') return u;
      var t = u.trim();
      if (!/^https?:\/\//i.test(t)) return u;
      var hash = t.indexOf('#');
      return hash < 0 ? assetURL(t) : assetURL(t.slice(0, hash)) + t.slice(hash);
    }

    // mapSrcset maps each candidate URL of a srcset, as the HTML standard
    // splits them (a URL ends at whitespace; commas at its end separate
    // candidates; descriptors run to a comma outside parentheses).
    function mapSrcset(v) {
      if (typeof v !== 'string') return v;
      var out = '';
      var i = 0;
      while (i < v.length) {
        var start = i;
        while (i < v.length && (HTML_SPACE.test(v[i]) || v[i] === ',')) i++;
        out += v.slice(start, i);
        start = i;
        while (i < v.length && !HTML_SPACE.test(v[i])) i++;
        var candidate = v.slice(start, i);
        var commas = /,*$/.exec(candidate)[0];
        out += mapURL(candidate.slice(0, candidate.length - commas.length)) + commas;
        if (commas) continue;
        start = i;
        for (var depth = 0; i < v.length && (depth > 0 || v[i] !== ','); i++) {
          if (v[i] === '(') depth++;
          else if (v[i] === ')' && depth > 0) depth--;
        }
        out += v.slice(start, i);
      }
      return out;
    }

    function mapCSS(text) {
      if (typeof text !== 'string' || !/url\(|@import/i.test(text)) return text;
      return cssURLs(text, mapURL);
    }

    function mapAttribute(tag, name, value) {
      if (typeof value !== 'string') return value;
      switch (name) {
        case 'src': case 'poster': case 'background':
          return mapURL(value);
        case 'srcset': case 'imagesrcset':
          return mapSrcset(value);
        case 'style': case '_cssText':
          return mapCSS(value);
        case 'href': case 'xlink:href':
          return tag === 'link' || tag === 'image' || tag === 'use' || tag === 'feimage' ? mapURL(value) : value;
        case 'data':
          return tag === 'object' ? mapURL(value) : value;
      }
      return value;
    }

    function mapAttributes(tag, attrs) {
      if (!attrs || typeof attrs !== 'object') return;
      Object.keys(attrs).forEach(function (name) {
        var v = attrs[name];
        if (name === 'style' && v && typeof v === 'object') {
          // A style change: {property: value, or [value, priority], or false}.
          Object.keys(v).forEach(function (p) {
            if (typeof v[p] === 'string') v[p] = mapCSS(v[p]);
            else if (Array.isArray(v[p])) v[p][0] = mapCSS(v[p][0]);
          });
        } else {
          attrs[name] = mapAttribute(tag, name, v);
        }
      });
    }

    // mapNode maps a serialized node and its children; parentTag is the
    // tag of its parent element ('' for none or unknown).
    function mapNode(n, parentTag) {
      if (!n || typeof n !== 'object') return;
      var tag = '';
      if (n.type === 2) {
        tag = String(n.tagName || '').toLowerCase();
        tags.set(n.id, tag);
        mapAttributes(tag, n.attributes);
      } else if (n.type === 3 && (n.isStyle || parentTag === 'style')) {
        styleTexts.add(n.id);
        n.textContent = mapCSS(n.textContent);
      }
      if (Array.isArray(n.childNodes)) {
        n.childNodes.forEach(function (c) { mapNode(c, tag); });
      }
    }

    function each(list, f) {
      if (Array.isArray(list)) list.forEach(function (x) { if (x && typeof x === 'object') f(x); });
    }

    function mapRules(rules) {
      each(rules, function (r) { r.rule = mapCSS(r.rule); });
    }

    return {
      reset: function () {
        tags.clear();
        styleTexts.clear();
      },
      event: function (e) {
        var d = e && e.data;
        if (!d || typeof d !== 'object') return;
        if (e.type === 2) { // full snapshot
          tags.clear();
          styleTexts.clear();
          mapNode(d.node, '');
          return;
        }
        if (e.type !== 3) return; // only incremental snapshots carry more
        switch (d.source) {
          case 0: // mutation
            each(d.adds, function (a) { mapNode(a.node, tags.get(a.parentId) || ''); });
            each(d.attributes, function (a) { mapAttributes(tags.get(a.id) || '', a.attributes); });
            each(d.texts, function (t) { if (styleTexts.has(t.id)) t.value = mapCSS(t.value); });
            break;
          case 8: // StyleSheetRule
            mapRules(d.adds);
            if (typeof d.replace === 'string') d.replace = mapCSS(d.replace);
            if (typeof d.replaceSync === 'string') d.replaceSync = mapCSS(d.replaceSync);
            break;
          case 10: // Font: a CSS src value, unless the font came as bytes
            if (!d.buffer) d.fontSource = mapCSS(d.fontSource);
            break;
          case 13: // StyleDeclaration
            if (d.set && typeof d.set === 'object') d.set.value = mapCSS(d.set.value);
            break;
          case 15: // AdoptedStyleSheet
            each(d.styles, function (s) { mapRules(s.rules); });
            break;
        }
      }
    };
  }

  // cssURLs returns text with the URL of every url() and of every
  // @import "string" replaced by mapURL's answer (as a double-quoted CSS
  // string), leaving comments, other strings and @namespace alone. It reads
  // the tokens that matter as the CSS Syntax standard does (strings with
  // escapes, url tokens and bad urls, names), for CSS as browsers serialize
  // it, which is what rrweb records; the server's rewrite.AppendCSSURLs is
  // the full version, for stylesheets from sites.
  function cssURLs(text, mapURL) {
    var out = '';
    var done = 0; // text.slice(0, done) is in out
    var importing = false; // right after @import: a string there is a URL
    var namespace = false; // in an @namespace prelude: url() names no resource
    var i = 0;
    var n = text.length;

    function replace(start, end, ref) {
      var mapped = mapURL(ref);
      if (mapped === ref) return;
      out += text.slice(done, start) + quoteCSS(mapped);
      done = end;
    }

    function nameEnd(j) {
      while (j < n) {
        if (CSS_NAME.test(text[j])) j++;
        else if (text[j] === '\\' && j + 1 < n && !CSS_NEWLINE.test(text[j + 1])) j += 2;
        else break;
      }
      return j;
    }

    // readURL reads what follows "url(" at j, replaces the URL (unless in
    // an @namespace prelude) and returns where the next token starts.
    function readURL(j) {
      var k = j;
      while (k < n && CSS_SPACE.test(text[k])) k++;
      if (text[k] === '"' || text[k] === "'") {
        var s = readCSSString(text, k);
        if (s.ok && !namespace) replace(k, s.end, s.value);
        return s.end;
      }
      var value = '';
      while (k < n && text[k] !== ')') {
        var ch = text[k];
        if (CSS_SPACE.test(ch)) {
          var w = k;
          while (w < n && CSS_SPACE.test(text[w])) w++;
          if (w < n && text[w] !== ')') return badURLEnd(w);
          k = w;
          break;
        }
        if (ch === '\\') {
          if (k + 1 >= n || CSS_NEWLINE.test(text[k + 1])) return badURLEnd(k);
          var esc = readCSSEscape(text, k + 1);
          value += esc.value;
          k = esc.end;
          continue;
        }
        if (CSS_BAD_IN_URL.test(ch)) return badURLEnd(k);
        value += ch === '\u0000' ? '\ufffd' : ch;
        k++;
      }
      if (!namespace && value) replace(j, k, value);
      return Math.min(k + 1, n);
    }

    function badURLEnd(k) {
      while (k < n && text[k] !== ')') k += text[k] === '\\' ? 2 : 1;
      return Math.min(k + 1, n);
    }

    while (i < n) {
      var c = text[i];
      if (c === '/' && text[i + 1] === '*') {
        var close = text.indexOf('*/', i + 2);
        i = close < 0 ? n : close + 2;
        continue;
      }
      if (CSS_SPACE.test(c)) {
        i++;
        continue;
      }
      if (c === '"' || c === "'") {
        var s = readCSSString(text, i);
        if (importing && s.ok) replace(i, s.end, s.value);
        i = s.end;
      } else if (c === '@') {
        var at = nameEnd(i + 1);
        var keyword = text.slice(i + 1, at).toLowerCase();
        importing = keyword === 'import';
        namespace = keyword === 'namespace';
        i = at;
        continue;
      } else if (c === '#' || CSS_NAME.test(c) || c === '\\') {
        // A name: only one that is exactly "url" and followed by "(" opens
        // a url (not myurl(, -url(, 1url( or #url().
        var end = c === '#' ? nameEnd(i + 1) : nameEnd(i);
        if (end === i) end = i + 1; // a backslash that escapes nothing
        if (c !== '#' && text[end] === '(' && text.slice(i, end).toLowerCase() === 'url') {
          i = readURL(end + 1);
        } else {
          i = end;
        }
      } else {
        if (c === ';' || c === '{' || c === '}') namespace = false;
        i++;
      }
      importing = false;
    }
    return done === 0 ? text : out + text.slice(done);
  }

  // readCSSString reads the string whose quote is at text[i]: its decoded
  // value, where it ends, and whether it is a good string (not cut by a
  // newline, which is left for the next token).
  function readCSSString(text, i) {
    var quote = text[i];
    var value = '';
    for (var j = i + 1; j < text.length;) {
      var c = text[j];
      if (c === quote) return { value: value, end: j + 1, ok: true };
      if (CSS_NEWLINE.test(c)) return { value: value, end: j, ok: false };
      if (c === '\\') {
        if (j + 1 >= text.length) { j++; continue; }
        if (CSS_NEWLINE.test(text[j + 1])) { // an escaped newline continues the string
          j += text[j + 1] === '\r' && text[j + 2] === '\n' ? 3 : 2;
          continue;
        }
        var esc = readCSSEscape(text, j + 1);
        value += esc.value;
        j = esc.end;
        continue;
      }
      value += c === '\u0000' ? '\ufffd' : c;
      j++;
    }
    return { value: value, end: text.length, ok: true };
  }

  // readCSSEscape decodes the escape after a backslash at text[i - 1]: up
  // to six hex digits and one whitespace, or the character itself.
  function readCSSEscape(text, i) {
    var hex = /^[0-9A-Fa-f]{1,6}/.exec(text.slice(i, i + 6));
    if (!hex) {
      var cp = text.codePointAt(i);
      return { value: cp === 0 ? '\ufffd' : String.fromCodePoint(cp), end: i + (cp > 0xffff ? 2 : 1) };
    }
    var end = i + hex[0].length;
    if (text[end] === '\r' && text[end + 1] === '\n') end += 2;
    else if (end < text.length && CSS_SPACE.test(text[end])) end++;
    var v = parseInt(hex[0], 16);
    var ok = v > 0 && v <= 0x10ffff && (v < 0xd800 || v > 0xdfff);
    return { value: ok ? String.fromCodePoint(v) : '\ufffd', end: end };
  }

  // quoteCSS writes s as a double-quoted CSS string.
  function quoteCSS(s) {
    return '"' + s.replace(/["\\]/g, '\\$&').replace(/[\u0000-\u001f\u007f]/g, function (c) {
      return '\\' + c.charCodeAt(0).toString(16) + ' ';
    }) + '"';
  }

  window.cobrowsePlayer = function (stage, onResize, options) {
    var replayer = null;
    var lastStamp = 0;
    var assets = options && options.assetURL ? assetMapper(options.assetURL) : null;

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

    function feed(events) {
      events.forEach(function (e) {
        if (assets) assets.event(e);
        replayer.addEvent(e);
      });
    }

    return {
      // reset replaces what is shown with the page that events describe. It
      // returns false, and shows nothing, when they hold no full snapshot yet.
      reset: function (events) {
        if (replayer) replayer.destroy();
        replayer = null;
        stage.textContent = '';
        if (assets) assets.reset();
        if (!events.some(function (e) { return e.type === 2; })) return false;
        restamp(events);
        replayer = new rrwebReplay.Replayer([], {
          root: stage,
          liveMode: true,
          // The reset's events up to the last are applied at once ("sync").
          // rrweb's virtual DOM for such events is written to the page only
          // by a fast-forward (play at an offset), which live mode never
          // does: with it, every mutation in a reset after the snapshot was
          // lost (a late agent saw the page as it was at the snapshot).
          useVirtualDom: false,
          mouseTail: false,
          triggerFocus: false,
          showWarning: false,
          UNSAFE_replayCanvas: false
        });
        replayer.on('resize', onResize);
        replayer.startLive(lastStamp);
        feed(events);
        return true;
      },
      // add plays events that follow the last reset; before one they are dropped.
      add: function (events) {
        if (!replayer) return;
        restamp(events);
        feed(events);
      }
    };
  };
})();
