// live.js: the Live events page. Events stream in from GET /admin/api/live
// (server-sent events) as capstan stores them; filters by source, type,
// event name and user are applied by the server; under heavy load the
// server samples and the page says how many events it skipped. Clicking an
// event shows its detail from GET /admin/api/events/{seq}/explain: the
// stored JSON, each mapping's trigger result, the LinkedIn request or why
// none, and the delivery outcome.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var MAX_ROWS = 200;
  var TYPES = ['track', 'page', 'screen', 'identify', 'group', 'alias'];
  var FILTERS = ['source', 'type', 'event', 'user'];

  function clock(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return String(iso);
    var p = function (n, w) { return String(n).padStart(w || 2, '0'); };
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
  }

  // ---- the event detail ------------------------------------------------

  var STATE_BADGE = { delivered: 'badge-ok', pending: 'badge-info', dead_lettered: 'badge-bad', not_sent: '' };
  var STATE_TEXT = { delivered: 'delivered', pending: 'pending', dead_lettered: 'dead-lettered', not_sent: 'not sent' };
  var OUTCOME_TEXT = {
    converted: 'request built', invalid: 'invalid', not_matched: 'trigger not matched',
    filtered_source: 'source not taken', filtered_integrations: 'excluded by integrations',
    filtered_consent: 'consent denied', suppressed: 'suppressed (deleted person)',
    skipped_unusable: 'unusable', replay: 'another destination\'s replay',
  };

  function stateBadge(ds) {
    if (!ds) return null;
    return h('span', { class: ['badge', STATE_BADGE[ds.state]], title: ds.reason || '' }, STATE_TEXT[ds.state] || ds.state);
  }

  function json(v) { return JSON.stringify(v, null, 2); }

  function mappingBlock(m) {
    var body = [];
    body.push(h('p', { class: 'why' }, h('span', { class: m.matched ? 'ok-text' : 'muted' }, m.matched ? 'Trigger matched' : 'Trigger not matched'),
      m.trigger ? h('code', { class: 'trigger' }, m.trigger) : h('span', { class: 'muted' }, ' (no trigger: every event)')));
    if (m.why && !/^matched:/.test(m.why)) body.push(h('p', { class: 'muted small' }, m.why));
    if (m.error) {
      body.push(h('div', { class: 'reason bad' },
        h('strong', null, 'Validation: '), (m.error.code ? m.error.code + ': ' : '') + m.error.message,
        m.error.fields ? h('pre', { class: 'json small' }, json(m.error.fields)) : null));
    }
    if (m.request) {
      body.push(h('details', { class: 'request', open: true },
        h('summary', null, 'LinkedIn request'),
        h('pre', { class: 'json', 'aria-label': 'LinkedIn request of ' + m.mapping }, json(m.request))));
    }
    if (m.delivery) {
      var dl = m.delivery.deadLetter;
      body.push(h('p', { class: 'delivery' }, h('span', { class: 'label-inline' }, 'Delivery'), stateBadge(m.delivery),
        h('span', { class: 'muted small' }, ' ' + (m.delivery.reason || '')),
        dl ? h('a', { href: '#/dead-letters?id=' + dl.id }, ' dead letter ' + dl.id) : null));
    }
    return h('li', { class: 'mapping' },
      h('div', { class: 'mapping-head' }, h('strong', null, m.mapping), h('span', { class: 'badge' }, OUTCOME_TEXT[m.outcome] || m.outcome)),
      body);
  }

  function destinationBlock(d) {
    return h('section', { class: 'dest', 'aria-label': 'Destination ' + d.destination },
      h('div', { class: 'card-head' },
        h('h3', null, d.destination),
        stateBadge(d.delivery)),
      d.reason ? h('p', { class: 'reason' }, h('strong', null, (OUTCOME_TEXT[d.outcome] || d.outcome) + ': '), d.reason) : null,
      d.mappings.length ? h('ul', { class: 'mappings' }, d.mappings.map(mappingBlock)) : h('p', { class: 'muted' }, 'No mapping.'));
  }

  function renderDetail(panel, seq, close) {
    panel.replaceChildren(
      h('div', { class: 'card-head' }, h('h2', { id: 'detail-title' }, 'Event ' + seq),
        h('button', { type: 'button', class: 'btn btn-quiet', onclick: close }, 'Close')),
      h('p', { class: 'muted' }, 'Loading…'));
    panel.hidden = false;
    return c.api('GET', 'events/' + encodeURIComponent(seq) + '/explain').then(function (x) {
      var parts = [
        h('div', { class: 'card-head' },
          h('h2', { id: 'detail-title' }, 'Event ' + (x.pos || x.seq)),
          h('div', { class: 'actions' },
            h('a', { class: 'btn', href: '#/tester?seq=' + encodeURIComponent(x.pos || x.seq) }, 'Open in Event tester'),
            h('button', { type: 'button', class: 'btn btn-quiet', onclick: close }, 'Close'))),
        h('dl', { class: 'kv' },
          h('dt', null, 'Source'), h('dd', null, x.source),
          h('dt', null, 'Type'), h('dd', null, x.type),
          h('dt', null, 'Stored'), h('dd', null, c.fmt.time(x.storedAt) + ' (' + c.fmt.ago(x.storedAt) + ')'),
          x.replayFor ? [h('dt', null, 'Replay for'), h('dd', null, x.replayFor)] : null),
        h('h3', { class: 'section' }, 'Destinations'),
      ];
      if (!x.destinations.length) parts.push(h('p', { class: 'muted' }, 'No destination is configured.'));
      x.destinations.forEach(function (d) { parts.push(destinationBlock(d)); });
      parts.push(h('details', { class: 'stored' },
        h('summary', null, 'Stored event (JSON)'),
        h('pre', { class: 'json', 'aria-label': 'Stored event JSON' }, x.event ? json(x.event) : '(not valid JSON)')));
      panel.replaceChildren.apply(panel, parts);
    }).catch(function (e) {
      if (e.status === 401) return;
      panel.replaceChildren(
        h('div', { class: 'card-head' }, h('h2', { id: 'detail-title' }, 'Event ' + seq),
          h('button', { type: 'button', class: 'btn btn-quiet', onclick: close }, 'Close')),
        h('p', { class: 'error-box', role: 'alert' }, e.message));
    });
  }

  // ---- the page --------------------------------------------------------

  function render(root, params) {
    var filters = {};
    FILTERS.forEach(function (k) { filters[k] = params.get(k) || ''; });
    var paused = false;
    var held = []; // events that arrived while paused, newest first
    var skippedBase = 0, skippedNow = 0;
    var es = null;
    var stopped = false;

    var status = h('span', { class: 'badge badge-info', id: 'live-status' }, 'Connecting…');
    var skipped = h('span', { class: 'badge badge-warn', id: 'live-skipped', hidden: true,
      title: 'Under heavy load the server sends each console a sample of the events (at most about 50 a second) and counts the rest.' });
    var heldNote = h('span', { class: 'muted small', id: 'live-held' });
    var pauseBtn = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false' }, 'Pause');
    var tbody = h('tbody');
    var empty = h('p', { class: 'empty', id: 'live-empty' }, 'Waiting for events… Send one and it shows here within a second or two.');
    var panel = h('aside', { class: 'card live-detail', hidden: true, 'aria-labelledby': 'detail-title', role: 'region' });
    var selected = params.get('seq') || '';

    function fieldInput(name, label, placeholder) {
      return h('div', { class: 'field' },
        h('label', { for: 'live-' + name }, label),
        h('input', { id: 'live-' + name, name: name, type: 'search', value: filters[name], placeholder: placeholder, autocomplete: 'off' }));
    }
    var typeSelect = h('select', { id: 'live-type', name: 'type' },
      h('option', { value: '' }, 'Any type'),
      TYPES.map(function (t) { return h('option', { value: t, selected: filters.type === t }, t); }));
    var form = h('form', { class: 'inline-form card filters', role: 'search', 'aria-label': 'Filter live events' },
      fieldInput('source', 'Source', 'any source'),
      h('div', { class: 'field' }, h('label', { for: 'live-type' }, 'Type'), typeSelect),
      fieldInput('event', 'Event name', 'any event'),
      fieldInput('user', 'User', 'userId or anonymousId'),
      h('div', { class: 'filter-actions' },
        h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply filters'),
        h('button', { type: 'button', class: 'btn', onclick: function () {
          c.navigate('live', selected ? { seq: selected } : {}, true);
        } }, 'Clear')));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var q = {};
      FILTERS.forEach(function (k) {
        var v = form.elements[k].value.trim();
        if (v) q[k] = v;
      });
      if (selected) q.seq = selected;
      c.navigate('live', q, true);
    });

    function setParam(seq) {
      selected = seq ? String(seq) : '';
      var q = {};
      FILTERS.forEach(function (k) { if (filters[k]) q[k] = filters[k]; });
      if (selected) q.seq = selected;
      var qs = new URLSearchParams(q).toString();
      history.replaceState(null, '', '#/live' + (qs ? '?' + qs : ''));
    }
    var layout;
    function closeDetail() {
      layout.classList.remove('has-detail');
      panel.hidden = true;
      panel.replaceChildren();
      setParam('');
      tbody.querySelectorAll('tr[aria-selected="true"]').forEach(function (tr) { tr.setAttribute('aria-selected', 'false'); });
    }
    function open(seq, tr) {
      tbody.querySelectorAll('tr[aria-selected="true"]').forEach(function (x) { x.setAttribute('aria-selected', 'false'); });
      if (tr) tr.setAttribute('aria-selected', 'true');
      setParam(seq);
      layout.classList.add('has-detail');
      renderDetail(panel, seq, closeDetail);
    }

    // dupMark: the mark of a copy delivery skips (cluster mode: another
    // replica stored the same event first).
    function dupMark(le) {
      if (!le.duplicateOf) return null;
      var text = 'Duplicate of event ' + le.duplicateOf;
      return [' ', h('span', { class: 'badge badge-warn badge-dup', role: 'img', 'aria-label': text, title: text + ': delivery skips this copy' }, 'duplicate')];
    }
    function row(le) {
      var user = le.userId || le.anonymousId || '';
      var tr = h('tr', { tabindex: '0', class: 'live-row', 'aria-selected': String(selected === String(le.pos || le.seq)), dataset: { seq: String(le.pos || le.seq) },
        title: 'Show event ' + (le.pos || le.seq) },
        h('td', { class: 'mono nowrap' }, h('time', { datetime: le.time }, clock(le.time))),
        h('td', null, le.source),
        h('td', null, h('span', { class: 'badge type-' + le.type }, le.type)),
        h('td', { class: 'event-name' }, le.event || h('span', { class: 'muted' }, '—'), dupMark(le)),
        h('td', { class: 'mono clip col-user', title: user ? (le.userId ? 'userId ' : 'anonymousId ') + user : '' },
          user ? [le.userId ? null : h('span', { class: 'anon', 'aria-label': 'anonymous' }, 'anon '), user] : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'mono small muted clip col-msg', title: le.messageId || '' }, le.messageId || ''),
        h('td', { class: 'mono small muted num col-seq' }, String(le.pos || le.seq)));
      tr.addEventListener('click', function () { open(le.pos || le.seq, tr); });
      tr.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(le.pos || le.seq, tr); }
      });
      return tr;
    }
    function add(le) {
      empty.hidden = true;
      tbody.insertBefore(row(le), tbody.firstChild);
      while (tbody.children.length > MAX_ROWS) tbody.removeChild(tbody.lastChild);
    }
    function showSkipped() {
      var n = skippedBase + skippedNow;
      skipped.hidden = n === 0;
      skipped.textContent = 'skipped ' + c.fmt.num(n) + ' (sampled)';
    }
    function showHeld() {
      heldNote.textContent = paused && held.length ? held.length + (held.length >= MAX_ROWS ? '+' : '') + ' new while paused' : '';
    }

    pauseBtn.addEventListener('click', function () {
      paused = !paused;
      pauseBtn.textContent = paused ? 'Resume' : 'Pause';
      pauseBtn.setAttribute('aria-pressed', String(paused));
      if (!paused) {
        held.slice().reverse().forEach(add);
        held = [];
      }
      setStatus();
      showHeld();
    });

    var connected = false;
    function setStatus() {
      if (paused) { status.textContent = 'Paused'; status.className = 'badge badge-warn'; return; }
      status.textContent = connected ? 'Live' : 'Reconnecting…';
      status.className = 'badge ' + (connected ? 'badge-ok' : 'badge-info');
    }

    function connect() {
      var q = new URLSearchParams();
      FILTERS.forEach(function (k) { if (filters[k]) q.set(k, filters[k]); });
      var qs = q.toString();
      es = new EventSource('/admin/api/live' + (qs ? '?' + qs : ''));
      es.addEventListener('ready', function () {
        skippedBase += skippedNow;
        skippedNow = 0;
        connected = true;
        setStatus();
        root.dataset.live = 'ready';
      });
      es.addEventListener('skipped', function (ev) {
        try { skippedNow = JSON.parse(ev.data).skipped || 0; } catch (e) { return; }
        showSkipped();
      });
      es.addEventListener('bye', function () {
        connected = false;
        setStatus();
      });
      es.onmessage = function (ev) {
        var le;
        try { le = JSON.parse(ev.data); } catch (e) { return; }
        if (paused) {
          held.unshift(le);
          if (held.length > MAX_ROWS) held.pop();
          showHeld();
          return;
        }
        add(le);
      };
      es.onerror = function () {
        connected = false;
        setStatus();
        if (es.readyState === EventSource.CLOSED && !stopped) {
          // Refused (signed out, or an error answer): ask the API why.
          c.api('GET', 'session').then(function () {
            if (!stopped) setTimeout(function () { if (!stopped) connect(); }, 3000);
          }).catch(function () { /* api() shows the sign-in page on 401 */ });
        }
      };
    }

    var filtered = FILTERS.filter(function (k) { return filters[k]; });
    root.append(
      h('div', { class: 'page-head' },
        h('div', null,
          h('h1', null, 'Live events'),
          h('p', null, 'Events as capstan stores them, within a second or two of their 200.' +
            (filtered.length ? ' Filtered by ' + filtered.map(function (k) { return k + ' “' + filters[k] + '”'; }).join(', ') + '.' : ''))),
        h('div', { class: 'live-controls', role: 'status', 'aria-label': 'Stream status' }, status, skipped, heldNote, pauseBtn)),
      form,
      layout = h('div', { class: 'live-layout' },
        h('div', { class: 'live-table' },
          h('div', { class: 'table-wrap' },
            h('table', { class: 'table live', 'aria-label': 'Live events' },
              h('thead', null, h('tr', null,
                h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Type'),
                h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col', class: 'col-user' }, 'User'), h('th', { scope: 'col', class: 'col-msg' }, 'Message id'),
                h('th', { scope: 'col', class: 'num col-seq' }, 'Seq'))),
              tbody)),
          empty),
        panel));
    connect();
    if (selected) open(selected, null);
    return function () {
      stopped = true;
      if (es) es.close();
    };
  }

  c.page('live', { title: 'Live events', render: render });
})();
