// pages/audit.js: the durable audit log, newest first, 50 a page: who did
// what, when, and how it ended.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;
  var PAGE = 50;

  var ACTIONS = {
    sign_in: 'Signed in',
    sign_out: 'Signed out',
    token_install: 'Installed an access token',
    identity_delete: 'Deleted an identity',
    privacy_delete: 'Privacy deletion',
    dlq_replay: 'Replayed dead letters',
    test_event: 'Sent a test event',
    linkedin_connect: 'Connected LinkedIn',
    import_start: 'Started an import',
    import: 'Import ended',
    import_cancel: 'Cancelled an import',
  };

  function what(r) {
    var parts = [h('strong', null, r.action === 'sign_in' && r.error ? 'Sign-in refused' : (ACTIONS[r.action] || r.action))];
    if (r.target) parts.push(h('div', { class: 'muted' }, r.target));
    if (r.detail) parts.push(h('div', { class: 'muted' }, r.detail));
    if (r.idKind) parts.push(h('div', { class: 'muted' }, r.idKind + ' ', h('code', { title: 'SHA-256 of the id; the id itself is never recorded' }, (r.idSha256 || '').slice(0, 16) + '…')));
    return parts;
  }

  var COUNTS = {
    graphKeysRemoved: 'identity graph entries removed',
    eventsDeleted: 'stored events deleted',
    deadLettersDeleted: 'dead letters deleted',
    suppressed: 'ids suppressed',
    replayed: 'replayed',
    rows: 'rows',
    stored: 'stored',
    duplicates: 'duplicates',
    resumed: 'already imported',
    invalid: 'invalid',
  };

  function result(r) {
    var counts = r.result ? Object.keys(r.result).filter(function (k) { return r.result[k] || k === 'replayed'; }).map(function (k) {
      if (k === 'httpStatus') return 'LinkedIn answered HTTP ' + r.result[k];
      return c.fmt.num(r.result[k]) + ' ' + (COUNTS[k] || k);
    }) : [];
    return [
      r.error ? h('span', { class: 'badge badge-bad' }, 'failed') : h('span', { class: 'badge badge-ok' }, 'ok'),
      r.error ? h('div', { class: 'audit-error' }, r.error) : null,
      counts.length ? h('div', { class: 'muted' }, counts.join(' · ')) : null,
    ];
  }

  c.page('audit', {
    title: 'Audit log',
    render: function (root, params) {
      var before = params.get('before') || '';
      var body = h('tbody');
      var pager = h('div', { class: 'pager' });
      root.append(
        h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Audit log'),
          h('p', null, 'Every change made through the console, the admin API or the command line, kept durably.'))),
        h('div', { class: 'table-wrap' }, h('table', { class: 'table audit-table', 'aria-label': 'Audit log' },
          h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Who'), h('th', null, 'What'), h('th', null, 'Result'))),
          body)),
        pager);
      var q = new URLSearchParams({ limit: String(PAGE) });
      if (before) q.set('before', before);
      return c.api('GET', '/admin/api/audit?' + q.toString()).then(function (data) {
        if (!data.records.length) {
          body.append(h('tr', null, h('td', { colspan: 4, class: 'empty-cell' }, before ? 'No older records.' : 'Nothing recorded yet.')));
        }
        data.records.forEach(function (r) {
          body.append(h('tr', { class: r.error ? 'failed' : '' },
            h('td', null, h('time', { datetime: r.at }, c.fmt.time(r.at)), h('div', { class: 'muted' }, c.fmt.ago(r.at))),
            h('td', null, r.by),
            h('td', null, what(r)),
            h('td', null, result(r))));
        });
        if (before) pager.append(h('button', { type: 'button', class: 'btn', onclick: function () { c.navigate('audit', null); } }, 'Newest'));
        if (data.more) {
          var last = data.records[data.records.length - 1].seq;
          pager.append(h('button', { type: 'button', class: 'btn', onclick: function () { c.navigate('audit', { before: String(last) }); } }, 'Older'));
        }
      });
    },
  });
})();
