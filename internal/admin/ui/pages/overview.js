// pages/overview.js: the Overview page. Per destination and per mapping,
// over 1 h / 24 h / 7 d, from GET /admin/api/stats (durable statistics,
// internal/stats): the funnel received → matched → valid → delivered →
// dead-lettered, events per second over time, delivery latency p50/p95 and
// match coverage (delivered conversions carrying li_fat_id, an email hash,
// both or neither), as charts (chart.js) and as numbers.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var WINDOWS = [{ id: '1h', label: '1 h' }, { id: '24h', label: '24 h' }, { id: '7d', label: '7 d' }];
  var REFRESH_MS = 10000;
  var COVERAGE = [
    { key: 'both', label: 'Both', color: '#009e73' },
    { key: 'li_fat_id', label: 'li_fat_id only', color: '#0a66c2' },
    { key: 'email', label: 'Email hash only', color: '#56b4e9' },
    { key: 'neither', label: 'Neither', color: '#d55e00' },
  ];
  var OUTCOMES = {
    not_matched: 'No mapping matched', filtered_source: 'Source not taken', filtered_integrations: 'Excluded by integrations',
    filtered_consent: 'No advertising consent', suppressed: 'Deleted on request', skipped_unusable: 'Unusable (other source)', other: 'Other',
  };

  function seconds(s) {
    if (s === undefined || s === null) return '—';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 60) return (Math.round(s * 10) / 10) + ' s';
    if (s < 3600) return (Math.round(s / 6) / 10) + ' min';
    return (Math.round(s / 360) / 10) + ' h';
  }
  function percent(part, whole) { return whole > 0 ? (Math.round((part / whole) * 1000) / 10) + '%' : '—'; }
  function rate(n, step) { return n / step; }

  function stat(label, value, sub) {
    return h('div', { class: 'stat' },
      h('div', { class: 'label' }, label),
      h('div', { class: 'value' }, value),
      sub ? h('div', { class: 'sub' }, sub) : null);
  }

  // scopeView shows one destination, or one of its mappings.
  function scopeView(rep, d, m) {
    var scope = m || d;
    var f = scope.funnel, cov = scope.coverage;
    var delivered = cov.li_fat_id + cov.email + cov.both + cov.neither;
    var matchable = cov.li_fat_id + cov.email + cov.both;
    var step = rep.stepSeconds;
    var name = m ? d.name + ' · ' + m.name : d.name;
    var stepText = step === 60 ? 'per minute' : step === 900 ? 'per 15 minutes' : 'per hour';

    var tiles = h('div', { class: 'grid overview-stats' },
      stat('Received', c.fmt.num(f.received), 'events read by ' + d.name),
      stat('Delivered', c.fmt.num(f.delivered), percent(f.delivered, f.valid) + ' of valid conversions'),
      stat('Dead-lettered', c.fmt.num(f.deadLettered), f.deadLettered ? 'see Dead letters' : 'none'),
      stat('Latency p50 / p95', seconds(scope.latency.p50) + ' / ' + seconds(scope.latency.p95), 'stored → accepted by LinkedIn'),
      stat('Match coverage', percent(matchable, delivered), 'delivered with li_fat_id or email'));

    var funnel = c.chart.funnel([
      { label: 'Received', value: f.received, color: '#7f8c9b' },
      { label: 'Matched', value: f.matched, color: '#56b4e9' },
      { label: 'Valid', value: f.valid, color: '#0a66c2' },
      { label: 'Delivered', value: f.delivered, color: '#009e73' },
      { label: 'Dead-lettered', value: f.deadLettered, color: '#d55e00' },
    ], { label: 'Delivery funnel of ' + name + ' over ' + rep.window, width: 440 });

    var series = scope.series || [];
    var pts = function (key) {
      return series.map(function (p) { return { x: new Date(p.t).getTime(), y: rate(p[key], step) }; });
    };
    var lines = [{ name: 'received/s', points: pts('received'), color: '#7f8c9b' }];
    if (m) lines.push({ name: 'matched/s', points: pts('matched'), color: '#56b4e9' });
    lines.push({ name: 'delivered/s', points: pts('delivered'), color: '#009e73' });
    lines.push({ name: 'dead-lettered/s', points: pts('deadLettered'), color: '#d55e00' });
    var rateChart = c.chart.line(lines, { label: 'Events per second of ' + name + ' over ' + rep.window + ', averaged ' + stepText, width: 900, height: 220, unit: '/s' });

    var coverage = c.chart.bar(COVERAGE.map(function (k) { return { label: k.label, value: cov[k.key], color: k.color }; }),
      { label: 'Match coverage of delivered conversions of ' + name + ' over ' + rep.window, width: 440 });

    var outcomes = null;
    if (!m && d.outcomes && Object.keys(d.outcomes).length) {
      outcomes = h('ul', { class: 'overview-outcomes', 'aria-label': 'Events that became no conversion' },
        Object.keys(d.outcomes).sort().map(function (k) {
          return h('li', null, h('span', null, OUTCOMES[k] || k), h('strong', null, c.fmt.num(d.outcomes[k])));
        }));
    }

    return h('div', { class: 'overview-scope' },
      tiles,
      h('div', { class: 'overview-charts' },
        h('section', { class: 'card', 'aria-labelledby': 'ov-funnel' },
          h('h3', { id: 'ov-funnel' }, 'Funnel'),
          funnel,
          outcomes ? h('details', { class: 'overview-more' }, h('summary', null, 'Events that became no conversion'), outcomes) : null),
        h('section', { class: 'card', 'aria-labelledby': 'ov-coverage' },
          h('h3', { id: 'ov-coverage' }, 'Match coverage'),
          h('p', { class: 'muted' }, 'Delivered conversions by the identifiers LinkedIn matches on.'),
          coverage,
          h('p', { class: 'help overview-coverage-help' },
            'li_fat_id is the click id of a LinkedIn ad, captured on the landing page and kept in the identity graph; ' +
            'the email is sent as its SHA-256. A conversion with neither cannot be attributed to a member.'))),
      h('section', { class: 'card', 'aria-labelledby': 'ov-rate' },
        h('h3', { id: 'ov-rate' }, 'Events per second'),
        rateChart));
  }

  // mappingTable lists a destination's mappings with their figures; each
  // name selects the mapping.
  function mappingTable(d, select) {
    if (!d.mappings.length) return h('p', { class: 'empty' }, 'This destination has no mappings.');
    var rows = d.mappings.map(function (m) {
      var f = m.funnel, cov = m.coverage;
      var delivered = cov.li_fat_id + cov.email + cov.both + cov.neither;
      return h('tr', null,
        h('td', null, h('button', { type: 'button', class: 'linkish', onclick: function () { select(m.name); } }, m.name)),
        h('td', { class: 'num' }, c.fmt.num(f.matched)),
        h('td', { class: 'num' }, c.fmt.num(f.valid)),
        h('td', { class: 'num' }, c.fmt.num(f.delivered)),
        h('td', { class: 'num' }, c.fmt.num(f.deadLettered)),
        h('td', { class: 'num' }, percent(cov.li_fat_id + cov.both, delivered)),
        h('td', { class: 'num' }, percent(cov.email + cov.both, delivered)),
        h('td', { class: 'num' }, seconds(m.latency.p50)),
        h('td', { class: 'num' }, seconds(m.latency.p95)));
    });
    return h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'aria-label': 'Mappings of ' + d.name },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Mapping'), h('th', { scope: 'col', class: 'num' }, 'Matched'), h('th', { scope: 'col', class: 'num' }, 'Valid'),
        h('th', { scope: 'col', class: 'num' }, 'Delivered'), h('th', { scope: 'col', class: 'num' }, 'Dead-lettered'),
        h('th', { scope: 'col', class: 'num' }, 'With li_fat_id'), h('th', { scope: 'col', class: 'num' }, 'With email'),
        h('th', { scope: 'col', class: 'num' }, 'p50'), h('th', { scope: 'col', class: 'num' }, 'p95'))),
      h('tbody', null, rows)));
  }

  function render(root, params) {
    var win = params.get('window') || '1h';
    if (!WINDOWS.some(function (w) { return w.id === win; })) win = '1h';
    var destName = params.get('destination') || '';
    var mapName = params.get('mapping') || '';
    var go = function (changes) {
      var p = { window: win, destination: destName, mapping: mapName };
      Object.keys(changes).forEach(function (k) { p[k] = changes[k]; });
      Object.keys(p).forEach(function (k) { if (!p[k] || (k === 'window' && p[k] === '1h')) delete p[k]; });
      c.navigate('overview', p, true);
    };

    var windowGroup = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Window' },
      WINDOWS.map(function (w) {
        return h('label', null, h('input', {
          type: 'radio', name: 'overview-window', value: w.id, checked: w.id === win,
          onchange: function () { go({ window: w.id }); },
        }), w.label);
      }));
    var updated = h('span', { class: 'muted overview-updated', 'aria-live': 'polite' });
    var body = h('div', { class: 'overview-body', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
    root.append(
      h('div', { class: 'page-head' },
        h('div', null, h('h1', null, 'Overview'),
          h('p', null, 'Delivery per destination and mapping. The figures are kept in the engine and survive restarts.')),
        h('div', { class: 'overview-controls' }, windowGroup, updated)),
      body);

    var stopped = false;
    var timer = null;
    var last = '';
    async function load() {
      var rep;
      try {
        rep = await c.api('GET', 'stats?window=' + encodeURIComponent(win));
      } catch (e) {
        if (stopped) return;
        body.setAttribute('aria-busy', 'false');
        if (e.status === 401) return;
        body.replaceChildren(h('p', { class: 'error-box', role: 'alert' }, 'The statistics could not be read: ' + e.message));
        return;
      }
      if (stopped) return;
      // Redraw only what changed, so that a refresh does not take the
      // focus from a control.
      var key = JSON.stringify(rep.destinations) + rep.window;
      if (key !== last) {
        last = key;
        draw(rep);
      }
      updated.textContent = 'Updated ' + c.fmt.time(new Date().toISOString()) + ' · every ' + REFRESH_MS / 1000 + ' s';
    }
    function draw(rep) {
      body.setAttribute('aria-busy', 'false');
      if (!rep.destinations.length) {
        body.replaceChildren(h('p', { class: 'empty' }, 'No destination is configured: add one to capstan.yaml to see its delivery here.'));
        return;
      }
      var d = rep.destinations.find(function (x) { return x.name === destName; }) || rep.destinations[0];
      var m = mapName ? d.mappings.find(function (x) { return x.name === mapName; }) : null;
      var destSelect = h('select', { id: 'ov-destination', onchange: function (ev) { go({ destination: ev.target.value, mapping: '' }); } },
        rep.destinations.map(function (x) { return h('option', { value: x.name, selected: x.name === d.name }, x.name); }));
      var mapSelect = h('select', { id: 'ov-mapping', onchange: function (ev) { go({ destination: d.name, mapping: ev.target.value }); } },
        h('option', { value: '' }, 'All mappings'),
        d.mappings.map(function (x) { return h('option', { value: x.name, selected: m && x.name === m.name }, x.name); }));
      body.replaceChildren(
        h('div', { class: 'inline-form overview-scope-form' },
          h('div', { class: 'field' }, h('label', { for: 'ov-destination' }, 'Destination'), destSelect),
          h('div', { class: 'field' }, h('label', { for: 'ov-mapping' }, 'Mapping'), mapSelect)),
        h('h2', { class: 'overview-title' }, m ? d.name + ' · ' + m.name : d.name + ' · all mappings',
          h('span', { class: 'muted' }, ' — last ' + WINDOWS.find(function (w) { return w.id === rep.window; }).label)),
        scopeView(rep, d, m),
        h('section', { 'aria-labelledby': 'ov-mappings' },
          h('h3', { id: 'ov-mappings' }, 'Mappings'),
          mappingTable(d, function (name) { go({ destination: d.name, mapping: name }); })),
        h('p', { class: 'help' }, 'A destination counts conversions from Matched on: an event that two mappings match counts twice. ' +
          'Figures are written to the engine every ' + rep.flushSeconds + ' s; a crash can lose the last seconds of figures, never events.'));
    }
    load();
    timer = setInterval(load, REFRESH_MS);
    return function () { stopped = true; clearInterval(timer); };
  }

  c.page('overview', { title: 'Overview', render: render });
})();
