// pages/people.js: look a person up by userId, anonymousId or email (the
// email is normalised and hashed with SHA-256 in the browser: only the
// hash is sent), see what the identity graph holds, and delete them
// (a privacy request) after confirmation.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var KINDS = {
    userId: { label: 'User ID', param: 'userId' },
    anonymousId: { label: 'Anonymous ID', param: 'anonymousId' },
    email: { label: 'Email', param: 'emailSha256' },
  };

  // sha256Hex hashes text (UTF-8) with crypto.subtle where the page is a
  // secure context (HTTPS, localhost), else with the small implementation
  // below: either way the email never leaves the browser.
  async function sha256Hex(text) {
    var bytes = new TextEncoder().encode(text);
    if (window.crypto && crypto.subtle) {
      var buf = await crypto.subtle.digest('SHA-256', bytes);
      return Array.from(new Uint8Array(buf)).map(function (b) { return b.toString(16).padStart(2, '0'); }).join('');
    }
    return sha256Fallback(bytes);
  }

  // sha256Fallback is FIPS 180-4 SHA-256, for pages served over plain HTTP
  // to another host (no crypto.subtle there).
  function sha256Fallback(msg) {
    var K = [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2];
    var H = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var l = msg.length;
    var n = ((l + 9 + 63) >> 6) << 6;
    var b = new Uint8Array(n);
    b.set(msg);
    b[l] = 0x80;
    var bits = l * 8;
    for (var i = 0; i < 8; i++) b[n - 1 - i] = (i < 4 ? bits >>> (8 * i) : Math.floor(bits / 4294967296) >>> (8 * (i - 4))) & 0xff;
    var w = new Uint32Array(64);
    var rotr = function (x, s) { return (x >>> s) | (x << (32 - s)); };
    for (var off = 0; off < n; off += 64) {
      for (var t = 0; t < 16; t++) w[t] = (b[off + 4 * t] << 24) | (b[off + 4 * t + 1] << 16) | (b[off + 4 * t + 2] << 8) | b[off + 4 * t + 3];
      for (t = 16; t < 64; t++) {
        var s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        var s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = H[0], bb = H[1], cc = H[2], d = H[3], e = H[4], f = H[5], g = H[6], hh = H[7];
      for (t = 0; t < 64; t++) {
        var S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        var ch = (e & f) ^ (~e & g);
        var t1 = (hh + S1 + ch + K[t] + w[t]) | 0;
        var S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        var maj = (a & bb) ^ (a & cc) ^ (bb & cc);
        var t2 = (S0 + maj) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0; d = cc; cc = bb; bb = a; a = (t1 + t2) | 0;
      }
      H[0] = (H[0] + a) | 0; H[1] = (H[1] + bb) | 0; H[2] = (H[2] + cc) | 0; H[3] = (H[3] + d) | 0;
      H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + hh) | 0;
    }
    return H.map(function (x) { return (x >>> 0).toString(16).padStart(8, '0'); }).join('');
  }

  // normaliseEmail is how capstan and LinkedIn normalise an email before
  // hashing it: trimmed and lower-cased.
  function normaliseEmail(s) { return s.trim().toLowerCase(); }

  function keyKind(key) {
    if (key.indexOf('u.') === 0) return 'user';
    if (key.indexOf('a.') === 0) return 'anonymous';
    return '';
  }

  function consentView(p) {
    if (!p.consentAt) return h('span', { class: 'muted' }, 'No stored event since the last update');
    if (!p.consent) return h('span', null, 'Not stated (no consent object) · ', h('span', { class: 'muted' }, c.fmt.time(p.consentAt)));
    var cats = Object.keys(p.consent).sort();
    return h('span', { class: 'consent' },
      cats.map(function (k) {
        var ok = p.consent[k] === true;
        return h('span', { class: 'badge ' + (ok ? 'badge-ok' : 'badge-bad') }, k + ': ' + (ok ? 'granted' : 'denied'));
      }),
      h('span', { class: 'muted' }, ' as of ' + c.fmt.time(p.consentAt)));
  }

  function personCard(p, onDelete) {
    var linked = (p.links || []).concat(p.aliasOf ? [p.aliasOf] : []);
    var unverified = p.unverified ? Object.keys(p.unverified) : [];
    var del = c.operatorOnly(h('button', { type: 'button', class: 'btn btn-danger', onclick: onDelete }, 'Delete'));
    return h('section', { class: 'card person', 'aria-label': 'Person ' + p.key },
      h('div', { class: 'card-head' },
        h('div', null,
          h('h2', null, p.kind === 'user' ? 'User' : 'Anonymous visitor', ' ', h('span', { class: 'badge' }, p.kind)),
          h('p', { class: 'muted mono' }, p.key)),
        del),
      h('dl', { class: 'kv' },
        h('dt', null, 'li_fat_id'), h('dd', null, p.liFatId ? [h('code', null, p.liFatId), h('span', { class: 'muted' }, '  captured ' + c.fmt.time(p.liFatIdAt))] : h('span', { class: 'muted' }, 'none')),
        h('dt', null, 'Email (SHA-256)'), h('dd', null, p.emailSha256 ? h('code', null, p.emailSha256) : h('span', { class: 'muted' }, 'none')),
        h('dt', null, 'First seen'), h('dd', null, c.fmt.time(p.created), h('span', { class: 'muted' }, '  ' + c.fmt.ago(p.created))),
        h('dt', null, 'Last seen'), h('dd', null, c.fmt.time(p.updated), h('span', { class: 'muted' }, '  ' + c.fmt.ago(p.updated))),
        h('dt', null, 'Kept until'), h('dd', null, c.fmt.time(p.expires)),
        h('dt', null, 'Consent'), h('dd', null, consentView(p)),
        h('dt', null, 'Linked ids'), h('dd', null, linked.length === 0 ? h('span', { class: 'muted' }, 'none') :
          h('ul', { class: 'linked' }, linked.map(function (k) {
            return h('li', null, h('span', { class: 'badge' }, keyKind(k)), ' ', h('code', null, k));
          }))),
        unverified.length ? [h('dt', null, 'Unverified (browser)'), h('dd', null, unverified.map(function (src) {
          var u = p.unverified[src];
          return h('div', null, h('strong', null, src), ': ', u.liFatId ? 'li_fat_id ' + u.liFatId + ' ' : '', u.emailSha256 ? 'email ' + u.emailSha256.slice(0, 12) + '… ' : '', (u.links || []).length + ' linked');
        }))] : null));
  }

  c.page('people', {
    title: 'People',
    render: function (root, params) {
      var kind = KINDS[params.get('by')] ? params.get('by') : 'userId';
      var by = h('select', { id: 'people-by' },
        Object.keys(KINDS).map(function (k) { return h('option', { value: k, selected: k === kind }, KINDS[k].label); }));
      var label = h('label', { for: 'people-id' }, KINDS[kind].label);
      var input = h('input', { id: 'people-id', type: kind === 'email' ? 'email' : 'text', autocomplete: 'off', spellcheck: 'false', value: params.get('id') || '' });
      var note = h('p', { class: 'help', id: 'people-note' });
      var results = h('div', { 'aria-live': 'polite', class: 'people-results' });
      var err = h('p', { class: 'form-error', role: 'alert' });
      var setNote = function () {
        note.textContent = by.value === 'email'
          ? 'The email is trimmed, lower-cased and hashed (SHA-256) in your browser: only the hash is sent. Finding ids by email reads every stored event.'
          : 'Exactly as the events carry it.';
      };
      by.addEventListener('change', function () {
        label.textContent = KINDS[by.value].label;
        input.type = by.value === 'email' ? 'email' : 'text';
        setNote();
      });
      setNote();

      var current = null; // {kind, value} of the shown lookup

      async function lookUp() {
        err.textContent = '';
        var raw = input.value;
        if (!raw.trim()) { err.textContent = 'Enter the ' + KINDS[by.value].label.toLowerCase() + ' to look up.'; return; }
        var k = by.value;
        var value = k === 'email' ? await sha256Hex(normaliseEmail(raw)) : raw.trim();
        var shown = k === 'email' ? 'email ' + value.slice(0, 16) + '…' : KINDS[k].label + ' ' + value;
        results.replaceChildren(h('p', { class: 'muted' }, 'Looking up…'));
        var data;
        try {
          data = await c.api('GET', '/admin/api/people?' + new URLSearchParams([[KINDS[k].param, value]]).toString());
        } catch (e) {
          results.replaceChildren();
          if (e.status !== 401) err.textContent = e.message;
          return;
        }
        current = { kind: k, value: value, shown: shown };
        if (!data.people.length) {
          results.replaceChildren(h('p', { class: 'empty' }, 'Nobody found for ' + shown + '.'));
          return;
        }
        results.replaceChildren.apply(results, [
          h('p', { class: 'muted' }, data.people.length === 1 ? '1 profile for ' + shown : data.people.length + ' profiles for ' + shown),
        ].concat(data.people.map(function (p) { return personCard(p, function () { remove(current); }); })));
      }

      async function remove(target) {
        var ok = await c.confirm('Delete everything capstan holds about ' + target.shown + '? This removes the identity graph entries and every linked id, the stored events and dead letters that name them, and suppresses the ids from now on. It cannot be undone.');
        if (!ok) return;
        var body = {};
        body[KINDS[target.kind].param] = target.value;
        results.setAttribute('aria-busy', 'true');
        try {
          var rep = await c.api('POST', '/admin/api/privacy/delete', body);
          c.toast('Deleted: ' + rep.graphKeysRemoved + ' graph entries, ' + rep.eventsDeleted + ' events, ' + rep.deadLettersDeleted + ' dead letters; ' + rep.suppressed + ' ids suppressed.', 'ok');
          results.replaceChildren(h('div', { class: 'card', role: 'status' },
            h('h2', null, 'Deleted'),
            h('p', null, target.shown + ': ' + rep.graphKeysRemoved + ' identity graph entries, ' + rep.eventsDeleted + ' stored events and ' +
              rep.deadLettersDeleted + ' dead letters removed; ' + rep.suppressed + ' ids suppressed. The deletion is in the audit log.')));
        } catch (e) {
          if (e.status !== 401) c.toast('The deletion failed: ' + e.message, 'error');
        } finally {
          results.removeAttribute('aria-busy');
        }
      }

      root.append(
        h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'People'),
          h('p', null, 'What the identity graph holds about a person, and their deletion on request.'))),
        h('form', { class: 'card', 'aria-label': 'Look up a person', onsubmit: function (ev) { ev.preventDefault(); lookUp(); } },
          h('div', { class: 'inline-form' },
            h('div', { class: 'field field-narrow' }, h('label', { for: 'people-by' }, 'Look up by'), by),
            h('div', { class: 'field' }, label, input),
            h('button', { type: 'submit', class: 'btn btn-primary' }, 'Look up')),
          note, err),
        results);
      if (params.get('id')) lookUp();
    },
  });
})();
