// pages/import.js: the Import page. An operator uploads a CSV or JSONL
// file of offline or CRM conversions (POST /admin/api/imports, the same
// import as `capstan import`: source, event name, column mapping as --map,
// dry run); the server imports it in the background, so it runs to the end
// when the browser is closed. The page polls the import (GET
// /admin/api/imports/{id}) for its progress (rows done of total, rows/s,
// time left), shows the summary at the end (read, stored, duplicates,
// invalid by reason, the first invalid rows with their line) and can
// cancel it. Recent imports (kept in memory by the server) are listed.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;
  var POLL_MS = 500;

  var FIELDS = 'userId, anonymousId, messageId, event, timestamp, email, first_name, last_name, title, company, country, li_fat_id, revenue, currency, properties.NAME, traits.NAME, skip';

  var STATES = {
    running: ['badge-info', 'running'],
    done: ['badge-ok', 'done'],
    failed: ['badge-bad', 'failed'],
    cancelled: ['badge-warn', 'cancelled'],
    interrupted: ['badge-warn', 'interrupted'],
  };

  function stateBadge(v) {
    var s = STATES[v.state] || ['', v.state];
    return h('span', { class: 'badge ' + s[0] }, s[1] + (v.dryRun ? ' (dry run)' : ''));
  }

  function duration(sec) {
    sec = Math.max(0, sec);
    if (sec < 10) return sec.toFixed(1) + ' s';
    sec = Math.round(sec);
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min ' + String(sec % 60).padStart(2, '0') + ' s';
    return Math.floor(sec / 3600) + ' h ' + String(Math.floor(sec % 3600 / 60)).padStart(2, '0') + ' min';
  }

  // progressLine says how far an import is: rows done of total, rows/s,
  // time left.
  function progressLine(v) {
    var parts = [c.fmt.num(v.rows) + ' of ' + c.fmt.num(v.total) + ' rows'];
    parts.push(c.fmt.num(Math.round(v.rowsPerSecond)) + ' rows/s');
    if (v.state === 'running') parts.push(v.etaSeconds === null || v.etaSeconds === undefined ? 'time left unknown' : 'about ' + duration(v.etaSeconds) + ' left');
    else if (v.endedAt) parts.push('took ' + duration((new Date(v.endedAt) - new Date(v.startedAt)) / 1000));
    return parts.join(' · ');
  }

  c.page('import', {
    title: 'Import',
    render: function (root, params) {
      var alive = true;
      var timer = null;
      var shownID = params.get('id') || '';
      var maxBytes = 0;

      // ---- the form ------------------------------------------------------
      var file = h('input', { type: 'file', id: 'import-file', accept: '.csv,.jsonl,.ndjson,text/csv,application/x-ndjson', 'aria-describedby': 'import-file-help' });
      var source = h('select', { id: 'import-source' });
      var eventName = h('input', { type: 'text', id: 'import-event', autocomplete: 'off', spellcheck: 'false', placeholder: 'Deal Won', 'aria-describedby': 'import-event-help' });
      var mapping = h('textarea', { id: 'import-map', rows: 3, spellcheck: 'false', placeholder: 'Contact Email=email\nAmount=revenue', 'aria-describedby': 'import-map-help' });
      var format = h('select', { id: 'import-format' },
        h('option', { value: '' }, 'From the file name (.csv, .jsonl)'),
        h('option', { value: 'csv' }, 'CSV'),
        h('option', { value: 'jsonl' }, 'JSONL'));
      var dryRun = h('input', { type: 'checkbox', id: 'import-dry-run' });
      var submit = c.operatorOnly(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Import'));
      var formError = h('p', { class: 'form-error', role: 'alert', id: 'import-error' });
      var fileHelp = h('p', { class: 'help', id: 'import-file-help' }, 'CSV: a header row, then one conversion a row. JSONL: one Segment event a line.');
      var form = h('form', { class: 'card import-form', 'aria-label': 'Upload a file', novalidate: true, onsubmit: function (ev) { ev.preventDefault(); upload(); } },
        h('div', { class: 'import-grid' },
          h('div', { class: 'field' }, h('label', { for: 'import-file' }, 'File'), file, fileHelp),
          h('div', { class: 'field' }, h('label', { for: 'import-source' }, 'Source'), source,
            h('p', { class: 'help' }, 'The configured source the events are stored under.')),
          h('div', { class: 'field' }, h('label', { for: 'import-event' }, 'Event name'), eventName,
            h('p', { class: 'help', id: 'import-event-help' }, 'For CSV rows without an event column.')),
          h('div', { class: 'field' }, h('label', { for: 'import-format' }, 'Format'), format)),
        h('div', { class: 'field' }, h('label', { for: 'import-map' }, 'Column mapping'), mapping,
          h('p', { class: 'help', id: 'import-map-help' }, 'One COLUMN=FIELD a line, as ', h('code', null, 'capstan import --map'),
            '. Columns named like a field (Email, user_id, Amount as revenue: value) map by themselves; others become properties. Fields: ' + FIELDS + '.')),
        h('div', { class: 'field' }, h('label', { class: 'label-inline', for: 'import-dry-run' }, dryRun, ' Dry run: check every row, store nothing')),
        formError,
        h('div', { class: 'import-actions' }, submit,
          h('span', { class: 'help' }, 'Rows are stored like live events (triggers, mappings, identity enrichment, delivery). Importing a file again stores nothing twice.')));

      // ---- progress, summary, recent -------------------------------------
      var progress = h('section', { class: 'card import-progress', 'aria-label': 'Progress', hidden: true });
      var summary = h('section', { class: 'card import-summary', 'aria-label': 'Summary', hidden: true });
      var recentBody = h('tbody');
      var recent = h('section', { class: 'card', 'aria-label': 'Recent imports' },
        h('div', { class: 'card-head' }, h('h2', null, 'Recent imports'),
          h('span', { class: 'muted small' }, 'Kept in memory: a restart forgets the list, not what was stored.')),
        h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'aria-label': 'Recent imports' },
          h('thead', null, h('tr', null, h('th', null, 'Started'), h('th', null, 'File'), h('th', null, 'Source'), h('th', null, 'By'),
            h('th', null, 'State'), h('th', { class: 'num' }, 'Rows'), h('th', { class: 'num' }, 'Stored'), h('th', { class: 'num' }, 'Invalid'), h('th', null, ''))),
          recentBody)));

      root.append(
        h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Import'),
          h('p', null, 'Offline and CRM conversions from a CSV or JSONL file: phone orders, closed deals, trade-show lists. The import runs on the server and finishes when you close the browser.'))),
        form, progress, summary, recent);

      function showUploading(name, loaded, total) {
        progress.hidden = false;
        prog = null;
        var pct = total ? Math.floor(100 * loaded / total) : 0;
        progress.replaceChildren(
          h('div', { class: 'card-head' }, h('h2', null, 'Uploading ' + name), h('span', { class: 'badge badge-info' }, 'uploading')),
          h('progress', { max: total || 1, value: loaded, 'aria-label': 'Upload' }),
          h('p', { class: 'import-line', 'aria-live': 'polite' }, c.fmt.bytes(loaded) + ' of ' + c.fmt.bytes(total) + ' (' + pct + '%)'));
      }

      // The progress card is built once per import and then updated, so
      // that its controls stay put while it is polled.
      var prog = null;
      function showProgress(v) {
        progress.hidden = false;
        if (!prog || prog.id !== v.id) {
          prog = { id: v.id };
          prog.title = h('h2');
          prog.badge = h('span');
          prog.cancel = c.operatorOnly(h('button', { type: 'button', class: 'btn', onclick: function () { cancelImport(v); } }, 'Cancel import'));
          prog.bar = h('progress', { max: 1, value: 0, 'aria-label': 'Rows done' });
          prog.line = h('p', { class: 'import-line', role: 'status' });
          prog.stored = h('div', { class: 'value' });
          prog.storedLabel = h('div', { class: 'label' });
          prog.dups = h('div', { class: 'value' });
          prog.resumed = h('div', { class: 'value' });
          prog.invalid = h('div', { class: 'value' });
          progress.replaceChildren(
            h('div', { class: 'card-head' }, prog.title, h('div', { class: 'import-head-right' }, prog.badge, prog.cancel)),
            prog.bar, prog.line,
            h('div', { class: 'grid import-stats' },
              h('div', { class: 'stat' }, prog.storedLabel, prog.stored),
              h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Duplicates'), prog.dups, h('div', { class: 'sub muted small' }, 'already in the stream')),
              h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Already imported'), prog.resumed, h('div', { class: 'sub muted small' }, 'by an earlier run of this file')),
              h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Invalid'), prog.invalid)),
            h('p', { class: 'muted small' }, 'Source ', h('strong', null, v.source), v.event ? [' · event ', h('strong', null, v.event)] : '',
              v.map && v.map.length ? [' · mapping ', h('code', null, v.map.join('; '))] : '', ' · ', c.fmt.bytes(v.bytes), ' · started by ', v.by, ' at ', c.fmt.time(v.startedAt)));
        }
        var running = v.state === 'running';
        prog.title.textContent = (running ? 'Importing ' : 'Imported ') + v.file;
        prog.badge.replaceChildren(stateBadge(v));
        prog.cancel.hidden = !running;
        prog.bar.max = Math.max(v.total, 1);
        prog.bar.value = Math.min(v.rows, prog.bar.max);
        prog.line.textContent = progressLine(v);
        prog.storedLabel.textContent = v.dryRun ? 'Would be stored' : 'Stored';
        prog.stored.textContent = c.fmt.num(v.stored);
        prog.dups.textContent = c.fmt.num(v.duplicates);
        prog.resumed.textContent = c.fmt.num(v.resumed);
        prog.invalid.textContent = c.fmt.num(v.invalid);
      }

      function showSummary(v) {
        if (v.state === 'running') { summary.hidden = true; return; }
        summary.hidden = false;
        var reasons = Object.keys(v.byReason || {}).sort(function (a, b) { return v.byReason[b] - v.byReason[a] || (a < b ? -1 : 1); });
        var parts = [
          h('div', { class: 'card-head' }, h('h2', null, 'Summary'), stateBadge(v)),
          v.error ? h('p', { class: v.state === 'failed' ? 'error-box' : 'warn-box', role: 'alert' }, v.error) : null,
          h('dl', { class: 'kv' },
            h('dt', null, 'Read'), h('dd', null, c.fmt.num(v.rows) + ' rows'),
            h('dt', null, v.dryRun ? 'Would be stored' : 'Stored'), h('dd', null, c.fmt.num(v.stored)),
            v.dryRun ? null : [h('dt', null, 'Duplicates'), h('dd', null, c.fmt.num(v.duplicates))],
            v.dryRun ? null : [h('dt', null, 'Already imported'), h('dd', null, c.fmt.num(v.resumed))],
            h('dt', null, 'Invalid'), h('dd', null, c.fmt.num(v.invalid) + (reasons.length ? ': ' + reasons.map(function (r) { return c.fmt.num(v.byReason[r]) + ' ' + r; }).join(', ') : ''))),
        ];
        if (v.dryRun && v.state === 'done') parts.push(h('p', { class: 'muted' }, 'Dry run: nothing was stored. Clear “Dry run” and import the file to store it.'));
        if (!v.dryRun && v.state === 'done' && v.stored > 0) {
          parts.push(h('p', { class: 'muted' }, 'The stored events are delivered like live ones; find them in ',
            h('a', { href: '#/tester' }, 'Event tester'), ' (recent events) or with GET /admin/api/events?source=' + v.source + '.'));
        }
        if (v.errors && v.errors.length) {
          parts.push(h('h3', null, 'Invalid rows'),
            h('p', { class: 'muted small' }, v.invalid > v.errors.length ? 'The first ' + v.errors.length + ' of ' + c.fmt.num(v.invalid) + '.' : 'Every invalid row; the others were imported.'),
            h('div', { class: 'table-wrap' }, h('table', { class: 'table import-errors', 'aria-label': 'Invalid rows' },
              h('thead', null, h('tr', null, h('th', { class: 'num' }, 'Line'), h('th', null, 'Field'), h('th', null, 'Reason'), h('th', null, 'Detail'))),
              h('tbody', null, v.errors.map(function (e) {
                return h('tr', null, h('td', { class: 'num mono' }, e.line), h('td', null, h('code', null, e.field)), h('td', null, e.reason), h('td', null, e.detail));
              })))));
        }
        summary.replaceChildren.apply(summary, parts.filter(Boolean));
      }

      function showRecent(list) {
        recentBody.replaceChildren();
        if (!list.length) {
          recentBody.append(h('tr', null, h('td', { colspan: 9, class: 'empty-cell' }, 'No import since the server started.')));
          return;
        }
        list.forEach(function (v) {
          recentBody.append(h('tr', { 'aria-current': v.id === shownID ? 'true' : null },
            h('td', { class: 'nowrap' }, h('time', { datetime: v.startedAt, title: c.fmt.time(v.startedAt) }, c.fmt.ago(v.startedAt))),
            h('td', null, v.file), h('td', null, v.source), h('td', null, v.by), h('td', null, stateBadge(v)),
            h('td', { class: 'num' }, c.fmt.num(v.rows) + ' / ' + c.fmt.num(v.total)),
            h('td', { class: 'num' }, c.fmt.num(v.stored)), h('td', { class: 'num' }, c.fmt.num(v.invalid)),
            h('td', null, h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Show import of ' + v.file + ' ' + v.id,
              onclick: function () { c.navigate('import', { id: v.id }); } }, 'Show'))));
        });
      }

      function loadList() {
        return c.api('GET', 'imports').then(function (data) {
          if (!alive) return;
          maxBytes = data.maxBytes;
          fileHelp.textContent = 'CSV: a header row, then one conversion a row. JSONL: one Segment event a line. Up to ' + c.fmt.bytes(maxBytes) +
            '; larger files: capstan import on the server.';
          var keep = source.value;
          source.replaceChildren.apply(source, data.sources.map(function (s) { return h('option', { value: s }, s); }));
          if (keep && data.sources.indexOf(keep) >= 0) source.value = keep;
          showRecent(data.imports);
        });
      }

      function poll() {
        if (!alive || !shownID) return;
        c.api('GET', 'imports/' + encodeURIComponent(shownID)).then(function (v) {
          if (!alive) return;
          showProgress(v);
          showSummary(v);
          if (v.state === 'running') {
            timer = setTimeout(poll, POLL_MS);
          } else {
            loadList().catch(function () {});
          }
        }).catch(function (e) {
          if (!alive || e.status === 401) return;
          progress.hidden = false;
          progress.replaceChildren(h('p', { class: 'error-box', role: 'alert' }, e.message));
        });
      }

      // upload sends the form with XMLHttpRequest, which reports the
      // upload's progress (fetch does not).
      function upload() {
        formError.textContent = '';
        var f = file.files && file.files[0];
        if (!f) { formError.textContent = 'Choose the CSV or JSONL file to import.'; file.focus(); return; }
        if (maxBytes && f.size > maxBytes) {
          formError.textContent = f.name + ' is ' + c.fmt.bytes(f.size) + ': the console takes files up to ' + c.fmt.bytes(maxBytes) + '. Import it with capstan import on the server.';
          return;
        }
        var fd = new FormData();
        fd.append('source', source.value);
        if (eventName.value.trim()) fd.append('event', eventName.value.trim());
        if (mapping.value.trim()) fd.append('map', mapping.value);
        if (format.value) fd.append('format', format.value);
        if (dryRun.checked) fd.append('dryRun', 'true');
        fd.append('file', f, f.name);
        submit.disabled = true;
        summary.hidden = true;
        showUploading(f.name, 0, f.size);
        var xhr = new XMLHttpRequest();
        xhr.open('POST', '/admin/api/imports');
        xhr.setRequestHeader('Accept', 'application/json');
        xhr.setRequestHeader('X-CSRF-Token', c.session.csrf);
        xhr.upload.onprogress = function (ev) { if (alive) showUploading(f.name, ev.loaded, ev.lengthComputable ? ev.total : f.size); };
        xhr.onload = function () {
          submit.disabled = false;
          c.operatorOnly(submit);
          var data = null;
          try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
          if (xhr.status === 401) { location.reload(); return; }
          if (xhr.status !== 202 || !data || !data.id) {
            progress.hidden = true;
            formError.textContent = data && data.error ? data.error.message : 'The upload failed: HTTP ' + xhr.status;
            if (data && data.error && data.error.code === 'csrf_failed') c.api('GET', 'session').then(function (s) { Object.assign(c.session, s); });
            return;
          }
          c.toast((data.dryRun ? 'Dry run of ' : 'Importing ') + data.file + ' started.', 'ok');
          if (alive) c.navigate('import', { id: data.id });
        };
        xhr.onerror = function () {
          submit.disabled = false;
          progress.hidden = true;
          formError.textContent = 'The upload failed: capstan did not answer.';
        };
        xhr.send(fd);
      }

      function cancelImport(v) {
        c.confirm('Cancel the import of “' + v.file + '”? What is stored stays stored; importing the file again continues where it stopped.').then(function (ok) {
          if (!ok) return;
          return c.api('POST', 'imports/' + encodeURIComponent(v.id) + '/cancel').then(function () {
            c.toast('Import of ' + v.file + ' cancelled.', 'ok');
          }).catch(function (e) {
            if (e.status !== 401) c.toast('Not cancelled: ' + e.message, 'error');
          });
        });
      }

      var loaded = loadList();
      if (shownID) poll();
      return loaded.then(function () {
        return function () { alive = false; clearTimeout(timer); };
      }, function (e) {
        alive = false;
        if (e.status === 503) {
          form.replaceWith(h('p', { class: 'empty' }, 'Imports are not available on this server.'));
          return undefined;
        }
        throw e;
      });
    },
  });
})();
