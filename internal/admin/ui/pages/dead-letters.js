// pages/dead-letters.js: the Dead letters page, on the DLQ API
// (GET /admin/api/dlq, /dlq/{id}, /dlq/count, POST /dlq/replay): the list
// with reason, destination, mapping and age, filtered by reason and
// destination; each dead letter opens to LinkedIn's answer, the payload and
// the original event; Replay for one, for a selection and for the filter
// (operators, after confirmation). It also keeps the navigation's count
// ([data-count="dead-letters"]) current.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var REASONS = [
    { id: 'rejected', label: 'Rejected by LinkedIn' },
    { id: 'invalid', label: 'Invalid' },
    { id: 'expired', label: 'Expired' },
    { id: 'unusable', label: 'Unusable' },
  ];
  var REASON_BADGE = { rejected: 'badge-bad', invalid: 'badge-warn', expired: 'badge-warn', unusable: 'badge-info' };
  var PAGE = 100;
  var COUNT_MS = 15000;

  // ---- the navigation count --------------------------------------------

  var countTimer = null;
  // refreshCount reads GET /admin/api/dlq/count and shows it beside the
  // "Dead letters" link (nothing when the DLQ is empty).
  async function refreshCount() {
    var el = document.querySelector('[data-count="dead-letters"]');
    if (!el) return null;
    try {
      var r = await c.api('GET', 'dlq/count');
      el.textContent = r.count > 0 ? c.fmt.num(r.count) : '';
      el.title = r.count === 1 ? '1 dead letter' : c.fmt.num(r.count) + ' dead letters';
      return r;
    } catch (e) {
      return null; // signed out or the engine is busy: try again later
    }
  }
  function startCount() {
    if (countTimer) return;
    var tries = 0;
    // The shell marks itself ready once the session is loaded.
    var wait = setInterval(function () {
      if (document.documentElement.dataset.ready === 'true' || ++tries > 100) {
        clearInterval(wait);
        refreshCount();
        countTimer = setInterval(refreshCount, COUNT_MS);
      }
    }, 100);
  }
  document.addEventListener('DOMContentLoaded', startCount);
  c.deadLetterCount = refreshCount;

  // ---- helpers ---------------------------------------------------------

  function json(v) {
    if (v === undefined || v === null) return '—';
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }
  function reasonBadge(reason) {
    return h('span', { class: 'badge ' + (REASON_BADGE[reason] || '') }, reason);
  }
  function short(s, n) {
    s = String(s || '');
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  // ---- the page --------------------------------------------------------

  function render(root, params) {
    var reason = params.get('reason') || '';
    var dest = params.get('destination') || '';
    var openID = params.get('id') || '';
    var go = function (changes) {
      var p = { reason: reason, destination: dest, id: openID };
      Object.keys(changes).forEach(function (k) { p[k] = changes[k]; });
      Object.keys(p).forEach(function (k) { if (!p[k]) delete p[k]; });
      c.navigate('dead-letters', p, true);
    };
    var stopped = false;
    var list = [];
    var more = false;
    var selected = new Set();
    var total = null;

    var summary = h('p', { 'aria-live': 'polite' }, 'Loading…');
    var reasonSel = h('select', { id: 'dl-reason', onchange: function (ev) { go({ reason: ev.target.value, id: '' }); } },
      h('option', { value: '' }, 'All reasons'),
      REASONS.map(function (r) { return h('option', { value: r.id, selected: r.id === reason }, r.label); }));
    var destSel = h('select', { id: 'dl-destination', onchange: function (ev) { go({ destination: ev.target.value, id: '' }); } },
      h('option', { value: '' }, 'All destinations'));
    if (dest) destSel.appendChild(h('option', { value: dest, selected: true }, dest));

    var replaySelected = c.operatorOnly(h('button', { type: 'button', class: 'btn', disabled: true, onclick: function () { replayIDs(Array.from(selected)); } }, 'Replay selected'));
    var replayFilter = c.operatorOnly(h('button', { type: 'button', class: 'btn btn-primary', disabled: true, onclick: replayAll }, 'Replay all'));
    var tableBody = h('tbody');
    var selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select every dead letter shown', onchange: function (ev) {
      list.forEach(function (dl) { if (ev.target.checked) selected.add(dl.seq); else selected.delete(dl.seq); });
      drawRows();
    } });
    var moreBtn = h('button', { type: 'button', class: 'btn', hidden: true, onclick: function () { load(true); } }, 'Load more');
    var detail = h('section', { class: 'dl-detail', 'aria-label': 'Dead letter', hidden: true });
    var listBox = h('div', { class: 'table-wrap' }, h('table', { class: 'table dl-table', 'aria-label': 'Dead letters' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', class: 'dl-check' }, selectAll),
        h('th', { scope: 'col' }, 'Reason'), h('th', { scope: 'col' }, 'Destination'), h('th', { scope: 'col' }, 'Mapping'),
        h('th', { scope: 'col', class: 'dl-what' }, 'What happened'), h('th', { scope: 'col' }, 'Age'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Open')))),
      tableBody));
    var empty = h('p', { class: 'empty', hidden: true }, '');

    root.append(
      h('div', { class: 'page-head' },
        h('div', null, h('h1', null, 'Dead letters'), summary)),
      h('div', { class: 'inline-form dl-filters' },
        h('div', { class: 'field' }, h('label', { for: 'dl-reason' }, 'Reason'), reasonSel),
        h('div', { class: 'field' }, h('label', { for: 'dl-destination' }, 'Destination'), destSel),
        h('div', { class: 'dl-actions' }, replaySelected, replayFilter)),
      h('div', { class: openID ? 'dl-layout dl-open' : 'dl-layout' },
        h('div', { class: 'dl-list' }, listBox, empty, moreBtn),
        detail));

    function filterQuery() {
      var q = [];
      if (reason) q.push('reason=' + encodeURIComponent(reason));
      if (dest) q.push('destination=' + encodeURIComponent(dest));
      return q;
    }
    function filterText() {
      var parts = [];
      if (reason) parts.push('reason ' + reason);
      if (dest) parts.push('destination ' + dest);
      return parts.length ? ' with ' + parts.join(' and ') : '';
    }

    function drawActions() {
      var n = selected.size;
      replaySelected.textContent = n ? 'Replay selected (' + n + ')' : 'Replay selected';
      var all = total === null ? list.length : total;
      replayFilter.textContent = (reason || dest ? 'Replay all matching' : 'Replay all') + (all ? ' (' + c.fmt.num(all) + ')' : '');
      if (c.can('operator')) {
        replaySelected.disabled = n === 0;
        replayFilter.disabled = all === 0;
      }
      selectAll.checked = list.length > 0 && list.every(function (dl) { return selected.has(dl.seq); });
    }

    function drawRows() {
      tableBody.replaceChildren.apply(tableBody, list.map(function (dl) {
        var id = String(dl.seq);
        var box = h('input', { type: 'checkbox', checked: selected.has(dl.seq), 'aria-label': 'Select dead letter ' + id,
          onchange: function (ev) { if (ev.target.checked) selected.add(dl.seq); else selected.delete(dl.seq); drawActions(); } });
        var what = dl.status ? dl.status + ' · ' + dl.message : dl.message;
        return h('tr', { class: id === openID ? 'selected' : '', dataset: { seq: id } },
          h('td', { class: 'dl-check' }, box),
          h('td', null, reasonBadge(dl.reason)),
          h('td', null, dl.destination),
          h('td', null, dl.mapping || '—'),
          h('td', { class: 'dl-what', title: dl.message }, short(what, 90)),
          h('td', { class: 'dl-age', title: c.fmt.time(dl.at) }, c.fmt.ago(dl.at)),
          h('td', null, h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Show dead letter ' + id,
            onclick: function () { go({ id: id }); } }, 'Show')));
      }));
      listBox.hidden = list.length === 0;
      empty.hidden = list.length > 0;
      empty.textContent = 'No dead letters' + filterText() + '. Conversions LinkedIn refuses, that fail validation or expire land here.';
      moreBtn.hidden = !more;
      drawActions();
    }

    async function loadCount() {
      var r = await c.deadLetterCount();
      if (!r || stopped) return;
      total = 0;
      Object.keys(r.byDestination).forEach(function (d) {
        if (!Array.prototype.some.call(destSel.options, function (o) { return o.value === d; })) destSel.appendChild(h('option', { value: d, selected: d === dest }, d));
      });
      // The count of the filter: reasons of the destination shown.
      if (!reason && !dest) total = r.count;
      else {
        try {
          var f = await c.api('GET', 'dlq/count' + (filterQuery().length ? '?' + filterQuery().join('&') : ''));
          total = f.count;
        } catch (e) { total = null; }
      }
      if (stopped) return;
      summary.textContent = (total === 0 ? 'No' : c.fmt.num(total)) + ' dead letter' + (total === 1 ? '' : 's') + filterText() + ' in the queue.' +
        (r.count !== total ? ' ' + c.fmt.num(r.count) + ' in all.' : '');
      drawActions();
    }

    async function load(append) {
      var q = filterQuery();
      q.push('limit=' + PAGE);
      if (append && list.length) q.push('after=' + list[list.length - 1].seq);
      try {
        var r = await c.api('GET', 'dlq?' + q.join('&'));
        if (stopped) return;
        list = append ? list.concat(r.deadLetters) : r.deadLetters;
        more = r.more;
        var have = new Set(list.map(function (dl) { return dl.seq; }));
        selected.forEach(function (s) { if (!have.has(s)) selected.delete(s); });
        drawRows();
      } catch (e) {
        if (stopped || e.status === 401) return;
        summary.textContent = '';
        listBox.hidden = true;
        empty.hidden = false;
        empty.textContent = 'The dead letters could not be read: ' + e.message;
      }
    }

    async function showDetail(id) {
      if (!id) { detail.hidden = true; return; }
      detail.hidden = false;
      detail.replaceChildren(h('p', { class: 'muted' }, 'Loading dead letter ' + id + '…'));
      var dl;
      try {
        dl = await c.api('GET', 'dlq/' + encodeURIComponent(id));
      } catch (e) {
        if (stopped) return;
        detail.replaceChildren(h('p', { class: 'error-box', role: 'alert' }, e.status === 404 ? 'Dead letter ' + id + ' is no longer in the queue (replayed or expired).' : e.message));
        return;
      }
      if (stopped) return;
      var answer = { status: dl.status, code: dl.code, message: dl.message, errors: dl.errors, requestId: dl.requestId };
      Object.keys(answer).forEach(function (k) { if (answer[k] === undefined || answer[k] === '' || answer[k] === 0) delete answer[k]; });
      var replayOne = c.operatorOnly(h('button', { type: 'button', class: 'btn btn-primary', onclick: function () { replayIDs([dl.seq], true); } }, 'Replay this dead letter'));
      detail.replaceChildren(
        h('div', { class: 'card-head' },
          h('h2', null, 'Dead letter ' + dl.seq),
          h('div', { class: 'dl-detail-actions' }, replayOne,
            h('button', { type: 'button', class: 'btn', onclick: function () { go({ id: '' }); } }, 'Close'))),
        h('dl', { class: 'kv' },
          h('dt', null, 'Reason'), h('dd', null, reasonBadge(dl.reason)),
          h('dt', null, 'Destination'), h('dd', null, dl.destination),
          h('dt', null, 'Mapping'), h('dd', null, dl.mapping || '—'),
          h('dt', null, 'Dead-lettered'), h('dd', null, c.fmt.time(dl.at) + ' (' + c.fmt.ago(dl.at) + ')'),
          h('dt', null, 'Attempts'), h('dd', null, dl.attempts ? String(dl.attempts) : (dl.reason === 'invalid' ? 'never sent' : '—')),
          h('dt', null, 'Source'), h('dd', null, dl.source || '—'),
          h('dt', null, 'Message id'), h('dd', { class: 'mono' }, dl.messageId || '—'),
          dl.requestId ? [h('dt', null, 'LinkedIn request id'), h('dd', { class: 'mono' }, dl.requestId)] : null),
        h('h3', null, dl.reason === 'invalid' ? "capstan's validation" : "LinkedIn's answer"),
        h('pre', { class: 'json', 'aria-label': "LinkedIn's answer" }, json(answer)),
        h('h3', null, 'Payload'),
        h('pre', { class: 'json', 'aria-label': 'Payload' }, dl.payload ? json(dl.payload) : 'none: the conversion was not built or not sent'),
        h('h3', null, 'Original event'),
        h('pre', { class: 'json', 'aria-label': 'Original event' }, json(dl.event)));
    }

    async function replay(body, what) {
      if (!(await c.confirm('Replay ' + what + '? ' +
        'Their events are stored again and delivered with the current configuration; one that fails again returns to the queue.'))) return;
      try {
        var r = await c.api('POST', 'dlq/replay', body);
        c.toast('Replayed ' + r.replayed + ' dead letter' + (r.replayed === 1 ? '' : 's') + '.', 'ok');
      } catch (e) {
        c.toast('Replay failed: ' + e.message, 'error');
      }
      selected.clear();
      await refresh();
    }
    function replayIDs(ids, closing) {
      if (!ids.length) return;
      var what = ids.length === 1 ? 'dead letter ' + ids[0] : ids.length + ' selected dead letters';
      if (closing) openID = '';
      replay({ ids: ids }, what).then(function () { if (closing) go({ id: '' }); });
    }
    function replayAll() {
      var body = reason || dest ? {} : { all: true };
      if (reason) body.reason = reason;
      if (dest) body.destination = dest;
      var n = total === null ? 'every' : c.fmt.num(total);
      replay(body, (reason || dest ? n + ' dead letter' + (total === 1 ? '' : 's') + filterText() : 'all ' + n + ' dead letter' + (total === 1 ? '' : 's')));
    }

    async function refresh() {
      await Promise.all([load(false), loadCount()]);
    }

    refresh();
    showDetail(openID);
    var timer = setInterval(function () { if (!document.hidden) refresh(); }, 30000);
    return function () { stopped = true; clearInterval(timer); };
  }

  c.page('dead-letters', { title: 'Dead letters', render: render });
})();
