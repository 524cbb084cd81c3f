// tester.js: the Event tester page. Paste an event, or pick a stored one,
// choose a destination and mapping, and Preview shows the exact LinkedIn
// request the event produces (what `capstan preview` prints, from POST
// /admin/api/preview: nothing is sent) or why there is none: the
// validation errors, the trigger that does not match, the filter that
// drops it. Send test event (operators) sends one conversion for real
// through POST /admin/api/destinations/{name}/test-event.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var SAMPLE = {
    type: 'track',
    event: 'Sign Up',
    userId: 'user-123',
    properties: { li_fat_id: 'sample-li-fat-id', plan: 'pro' },
    context: { traits: { email: 'jane@example.com' } },
  };

  var WHY = {
    not_matched: 'No mapping of this destination has a trigger that matches the event.',
    filtered_source: 'The destination does not take events of this source (destinations[].sources).',
    filtered_integrations: 'The event\'s integrations object excludes this destination.',
    filtered_consent: 'Consent for a category the destination requires is missing (destinations[].consent_categories).',
    suppressed: 'The person was deleted on request (privacy suppression): nothing is sent for them.',
  };

  function json(v) { return JSON.stringify(v, null, 2); }

  function render(root, params) {
    var destinations = [];
    var alive = true;

    var textarea = h('textarea', { id: 'tester-event', rows: 13, spellcheck: 'false', 'aria-describedby': 'tester-event-help' }, '');
    textarea.value = json(SAMPLE);
    var sourceSelect = h('select', { id: 'tester-source' }, h('option', { value: '' }, 'Any source'));
    var destSelect = h('select', { id: 'tester-destination' });
    var mappingSelect = h('select', { id: 'tester-mapping' });
    var triggerNote = h('p', { class: 'help', id: 'tester-trigger' });
    var previewBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Preview');
    var sendBtn = c.operatorOnly(h('button', { type: 'button', class: 'btn btn-danger', 'aria-describedby': 'tester-send-warning' }, 'Send test event'));
    var result = h('section', { class: 'card tester-result', 'aria-label': 'Result', 'aria-live': 'polite' },
      h('h2', null, 'Result'),
      h('p', { class: 'muted' }, 'Preview shows the exact request LinkedIn would get. Nothing is sent.'));
    var recentList = h('tbody');
    var recentNote = h('p', { class: 'muted small' }, 'Loading recent events…');

    function currentDest() {
      return destinations.find(function (d) { return d.destination === destSelect.value; });
    }
    function fillMappings() {
      var d = currentDest();
      mappingSelect.replaceChildren.apply(mappingSelect, (d ? d.mappings : []).map(function (m) {
        return h('option', { value: m.name }, m.name);
      }));
      var keep = sourceSelect.value;
      sourceSelect.replaceChildren(h('option', { value: '' }, d && d.sources.length ? 'Any source (none of this destination\'s)' : 'Any source'));
      (d ? d.sources : []).forEach(function (s) { sourceSelect.append(h('option', { value: s }, s)); });
      if (keep && d && d.sources.indexOf(keep) >= 0) sourceSelect.value = keep;
      else if (d && d.sources.length) sourceSelect.value = d.sources[0];
      showTrigger();
    }
    function currentMapping() {
      var d = currentDest();
      return d ? d.mappings.find(function (m) { return m.name === mappingSelect.value; }) : null;
    }
    function showTrigger() {
      var m = currentMapping();
      triggerNote.replaceChildren(h('span', null, m ? (m.trigger ? ['Trigger: ', h('code', null, m.trigger)] : 'No trigger: the mapping takes every event.') : ''));
    }
    destSelect.addEventListener('change', fillMappings);
    mappingSelect.addEventListener('change', showTrigger);

    // readEvent parses the textarea; it shows the error and returns
    // undefined when it is not JSON.
    function readEvent() {
      try {
        var ev = JSON.parse(textarea.value);
        if (!ev || typeof ev !== 'object' || Array.isArray(ev)) throw new Error('give one event: a JSON object');
        return ev;
      } catch (e) {
        showResult([h('p', { class: 'error-box', role: 'alert' }, 'The event is not valid JSON: ' + e.message)]);
        return undefined;
      }
    }
    function showResult(children) {
      result.replaceChildren(h('h2', null, 'Result'), h('div', { class: 'result-body' }, children));
    }

    function explainPreview(out) {
      var pe = out.preview.events[0];
      if (!pe) return [h('p', { class: 'error-box', role: 'alert' }, 'The preview returned no event.')];
      if (pe.error) {
        return [h('div', { class: 'error-box validation', role: 'alert' },
          h('strong', null, 'Invalid event: '), pe.error.code + ': ' + pe.error.message,
          h('p', { class: 'small' }, 'Ingest drops this event (answer 200 with it counted as dropped); it is never stored.'))];
      }
      var dest = destSelect.value, mapping = mappingSelect.value;
      var mine = (pe.results || []).filter(function (r) { return r.destination === dest; });
      var r = mine.find(function (x) { return x.mapping === mapping; });
      if (!r) {
        var whole = mine.find(function (x) { return !x.mapping; });
        var m = currentMapping();
        if (whole && whole.outcome !== 'not_matched') {
          return [h('p', { class: 'reason' }, h('span', { class: 'badge' }, whole.outcome.replace(/_/g, ' ')), ' ', WHY[whole.outcome] || whole.outcome)];
        }
        return [h('p', { class: 'reason' }, h('span', { class: 'badge' }, 'trigger not matched'), ' ',
          'The trigger of mapping “' + mapping + '” does not match this event',
          m && m.trigger ? [': ', h('code', null, m.trigger)] : '', '. No request is built.')];
      }
      var parts = [];
      if (r.outcome === 'invalid') {
        var err = r.error || {};
        parts.push(h('div', { class: 'error-box validation', role: 'alert' },
          h('strong', null, 'Validation errors'),
          h('p', null, (err.code ? err.code + ': ' : '') + (err.message || 'invalid')),
          err.fields ? h('pre', { class: 'json small', 'aria-label': 'Validation details' }, json(err.fields)) : null,
          h('p', { class: 'small' }, 'Delivery would dead-letter this conversion (reason invalid).')));
        return parts;
      }
      parts.push(h('p', null, h('span', { class: 'badge badge-ok' }, 'request built'),
        ' The exact request ', h('code', null, 'capstan preview'), ' prints (the access token is redacted). Nothing was sent.'));
      if (r.enriched && Object.keys(r.enriched).length) {
        parts.push(h('p', { class: 'small muted' }, 'Filled in by capstan: ' + Object.keys(r.enriched).map(function (k) {
          return k + ' from ' + r.enriched[k];
        }).join('; ') + '.'));
      }
      var req = out.preview.requests[r.request];
      parts.push(h('pre', { class: 'json', 'aria-label': 'LinkedIn request' }, json(req)));
      return parts;
    }

    function preview() {
      var ev = readEvent();
      if (ev === undefined) return;
      previewBtn.disabled = true;
      showResult([h('p', { class: 'muted' }, 'Building the preview…')]);
      c.api('POST', 'preview', { events: ev, source: sourceSelect.value, destination: destSelect.value }).then(function (out) {
        if (alive) showResult(explainPreview(out));
      }).catch(function (e) {
        if (e.status !== 401 && alive) showResult([h('p', { class: 'error-box', role: 'alert' }, e.message)]);
      }).finally(function () { previewBtn.disabled = false; });
    }

    function sendTest() {
      var ev = readEvent();
      if (ev === undefined) return;
      var dest = destSelect.value, mapping = mappingSelect.value;
      c.confirm('Send a real conversion built from this event to LinkedIn, through destination “' + dest + '”, mapping “' + mapping +
        '”? LinkedIn counts it like any other conversion.').then(function (ok) {
        if (!ok) return;
        sendBtn.disabled = true;
        return c.api('POST', 'destinations/' + encodeURIComponent(dest) + '/test-event', { event: ev, mapping: mapping }).then(function (ans) {
          var accepted = !ans.error && ans.status >= 200 && ans.status < 300;
          showResult([
            h('p', null, h('span', { class: 'badge badge-warn' }, 'sent for real'), ' ',
              accepted ? 'LinkedIn accepted the conversion (HTTP ' + ans.status + ').'
                : ans.status ? 'LinkedIn answered HTTP ' + ans.status + '.' : 'Nothing reached LinkedIn.'),
            ans.error ? h('p', { class: 'error-box', role: 'alert' }, (ans.code ? ans.code + ': ' : '') + ans.error) : null,
            ans.request ? [h('h3', null, 'Request sent'), h('pre', { class: 'json', 'aria-label': 'Request sent' }, json(ans.request))] : null,
            h('h3', null, 'LinkedIn\'s answer'),
            h('pre', { class: 'json', 'aria-label': 'LinkedIn answer' }, json(ans.answer === undefined ? ans : ans.answer))]);
          c.toast(accepted ? 'Test event sent to ' + dest + ': accepted.' : 'Test event sent to ' + dest + ': not accepted.', accepted ? 'ok' : 'error');
        }).catch(function (e) {
          if (e.status === 401) return;
          if (e.status === 404 && /no admin endpoint/i.test(e.message)) {
            showResult([h('p', { class: 'error-box', role: 'alert' }, 'test events are not available in this build')]);
            return;
          }
          showResult([h('p', { class: 'error-box', role: 'alert' }, 'The test event was not sent: ' + e.message)]);
        }).finally(function () { c.operatorOnly(sendBtn); if (c.can('operator')) sendBtn.disabled = false; });
      });
    }

    function useStored(se) {
      var doc = se.event;
      textarea.value = json(doc);
      if (se.source) {
        if (!Array.prototype.some.call(sourceSelect.options, function (o) { return o.value === se.source; })) {
          sourceSelect.append(h('option', { value: se.source }, se.source));
        }
        sourceSelect.value = se.source;
      }
      showResult([h('p', { class: 'muted' }, 'Event ' + (se.pos || se.seq) + ' from source ' + se.source + ' is in the editor. Press Preview.')]);
      textarea.focus();
    }

    function loadRecent() {
      return c.api('GET', 'events?limit=8').then(function (page) {
        if (!alive) return;
        recentList.replaceChildren();
        recentNote.textContent = page.events.length ? '' : 'No stored event yet.';
        page.events.forEach(function (se) {
          var d = se.event || {};
          var name = d.event || d.name || '';
          recentList.append(h('tr', null,
            h('td', { class: 'mono small nowrap' }, c.fmt.ago(se.storedAt)),
            h('td', null, se.source),
            h('td', null, (se.type || d.type || '') + (name ? ' · ' + name : ''),
              se.duplicateOf ? [' ', h('span', { class: 'badge badge-warn badge-dup', role: 'img', 'aria-label': 'Duplicate of event ' + se.duplicateOf,
                title: 'Duplicate of event ' + se.duplicateOf + ': delivery skips this copy' }, 'duplicate')] : null),
            h('td', { class: 'num' }, h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Use event ' + (se.pos || se.seq),
              onclick: function () { useStored(se); } }, 'Use'))));
        });
      }).catch(function (e) {
        if (e.status !== 401 && alive) recentNote.textContent = 'Recent events could not be read: ' + e.message;
      });
    }

    var form = h('form', { class: 'card tester-form', 'aria-label': 'Event tester' },
      h('div', { class: 'field' },
        h('label', { for: 'tester-event' }, 'Event (JSON)'),
        textarea,
        h('p', { class: 'help', id: 'tester-event-help' }, 'One Segment event. It is normalised as ingest does (messageId, timestamps) unless it is a stored event with receivedAt.')),
      h('div', { class: 'tester-choices' },
        h('div', { class: 'field' }, h('label', { for: 'tester-destination' }, 'Destination'), destSelect),
        h('div', { class: 'field' }, h('label', { for: 'tester-mapping' }, 'Mapping'), mappingSelect, triggerNote),
        h('div', { class: 'field' }, h('label', { for: 'tester-source' }, 'Source'), sourceSelect)),
      h('div', { class: 'tester-actions' },
        previewBtn,
        h('div', { class: 'send-zone' },
          sendBtn,
          h('p', { class: 'help warn-text', id: 'tester-send-warning' }, 'Sends for real: LinkedIn receives and counts one conversion. Operators only.'))));
    form.addEventListener('submit', function (e) { e.preventDefault(); preview(); });
    sendBtn.addEventListener('click', sendTest);

    root.append(
      h('div', { class: 'page-head' },
        h('div', null,
          h('h1', null, 'Event tester'),
          h('p', null, 'See the exact LinkedIn request an event produces, or why it produces none. Preview sends nothing.'))),
      h('div', { class: 'tester-layout' },
        h('div', { class: 'tester-main' }, form,
          h('section', { class: 'card tester-recent', 'aria-labelledby': 'recent-title' },
            h('div', { class: 'card-head' }, h('h2', { id: 'recent-title' }, 'Recent events'),
              h('button', { type: 'button', class: 'btn btn-small', onclick: loadRecent }, 'Refresh')),
            h('table', { class: 'table compact', 'aria-label': 'Recent events' }, recentList),
            recentNote)),
        result));

    var ready = c.api('GET', 'mappings').then(function (m) {
      destinations = m.destinations;
      destSelect.replaceChildren.apply(destSelect, destinations.map(function (d) { return h('option', { value: d.destination }, d.destination); }));
      if (!destinations.length) {
        destSelect.append(h('option', { value: '' }, 'No destination configured'));
        previewBtn.disabled = true;
        sendBtn.disabled = true;
      }
      fillMappings();
    }).catch(function (e) {
      if (e.status !== 401) showResult([h('p', { class: 'error-box', role: 'alert' }, 'The destinations could not be read: ' + e.message)]);
    });
    loadRecent();
    var seq = params.get('seq');
    if (seq) {
      // seq is an event position, "seq:index" or a bare sequence (index 0):
      // ask for the first event after the one before it.
      var parts = seq.split(':'), s = Number(parts[0]), i = Number(parts[1] || 0);
      seq = s + ':' + i;
      var prev = i > 0 ? s + ':' + (i - 1) : (s > 1 ? (s - 1) + ':65535' : '');
      var after = prev ? '&after=' + encodeURIComponent(prev) : '';
      c.api('GET', 'events?order=oldest&limit=1' + after).then(function (page) {
        var se = page.events[0];
        if (!alive) return;
        if (!se || (se.pos || se.seq + ':0') !== seq) { showResult([h('p', { class: 'error-box', role: 'alert' }, 'No stored event ' + seq + '.')]); return; }
        return ready.then(function () { useStored(se); });
      }).catch(function (e) {
        if (e.status !== 401 && alive) showResult([h('p', { class: 'error-box', role: 'alert' }, e.message)]);
      });
    }
    return function () { alive = false; };
  }

  c.page('tester', { title: 'Event tester', render: render });
})();
