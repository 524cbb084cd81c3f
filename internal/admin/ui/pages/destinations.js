// pages/destinations.js: each destination's state (delivering, paused with
// the reason, degraded), its token's expiry and rate-limit use, its
// conversion rules, for LinkedIn the rules' status at LinkedIn and the
// latest reconciliation (with eventId collisions), Connect LinkedIn, and the
// form that installs a new access token.
(function () {
  'use strict';
  var c = window.capstan;
  var h = c.h;

  var HEALTH = {
    delivering: ['Delivering', 'badge-ok'],
    degraded: ['Degraded', 'badge-warn'],
    paused: ['Paused', 'badge-bad'],
    standby: ['Standby', 'badge-info'],
  };

  function meter(used, limit, label) {
    var share = limit > 0 ? Math.min(1, used / limit) : 0;
    var cls = share >= 1 ? 'meter bad' : share >= 0.8 ? 'meter warn' : 'meter';
    var bar = h('span');
    bar.style.width = (share * 100).toFixed(1) + '%';
    return h('div', { class: cls, role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': limit, 'aria-valuenow': used }, bar);
  }

  function stat(label, value, sub, extra) {
    return h('div', { class: 'stat' },
      h('div', { class: 'label' }, label),
      h('div', { class: 'value' }, value),
      extra || null,
      sub ? h('div', { class: 'sub' }, sub) : null);
  }

  function tokenStat(d) {
    if (!d.tokenExpiresAt) return stat('Access token expiry', 'Unknown', 'LinkedIn did not say when it expires');
    var days = d.tokenDaysLeft;
    var left = days < 0 ? 'expired' : days === 1 ? '1 day left' : days + ' days left';
    var badge = h('span', { class: 'badge ' + (days < 14 ? 'badge-warn' : 'badge-ok') }, left);
    return h('div', { class: 'stat' },
      h('div', { class: 'label' }, 'Access token expiry'),
      h('div', { class: 'value' }, c.fmt.time(d.tokenExpiresAt).slice(0, 10), ' ', badge),
      days < 14 ? h('div', { class: 'sub warn-text', role: 'note' }, 'Install a new token before it expires: delivery pauses without one.') :
        h('div', { class: 'sub' }, c.fmt.time(d.tokenExpiresAt)));
  }

  function rateStats(u) {
    return [
      h('div', { class: 'stat' },
        h('div', { class: 'label' }, 'Requests this minute'),
        h('div', { class: 'value' }, c.fmt.num(u.minute), h('span', { class: 'of' }, ' / ' + c.fmt.num(u.perMinute))),
        meter(u.minute, u.perMinute, 'Requests this minute'),
        h('div', { class: 'sub' }, 'token ' + u.key + ' · UTC minute')),
      h('div', { class: 'stat' },
        h('div', { class: 'label' }, 'Requests today'),
        h('div', { class: 'value' }, c.fmt.num(u.day), h('span', { class: 'of' }, ' / ' + c.fmt.num(u.perDay))),
        meter(u.day, u.perDay, 'Requests today'),
        h('div', { class: 'sub' }, 'token ' + u.key + ' · UTC day')),
    ];
  }

  function rulesTable(d) {
    if (!d.rules.length) return h('p', { class: 'muted' }, 'No mappings.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, h('th', null, 'Mapping'), h('th', null, 'Conversion rule'), h('th', null, 'LinkedIn id'), h('th', null, 'Campaigns'))),
      h('tbody', null, d.rules.map(function (r) {
        return h('tr', null,
          h('td', null, h('strong', null, r.mapping)),
          h('td', null, r.created ? [r.name, ' ', h('span', { class: 'badge' }, r.type)] : h('span', { class: 'muted' }, 'configured by id')),
          h('td', null, r.ruleId ? h('code', { title: 'urn:lla:llaPartnerConversion:' + r.ruleId }, r.ruleId) : h('span', { class: 'badge badge-warn' }, 'not created yet')),
          h('td', null, r.campaigns.length === 0 ? h('span', { class: 'muted' }, 'none') : [
            h('span', { class: 'mono' }, r.campaigns.join(', ')), ' ',
            r.campaignsAssociated ? h('span', { class: 'badge badge-ok' }, 'associated') : h('span', { class: 'badge badge-warn' }, 'not associated yet'),
          ]));
      }))));
  }

  function statusPart(d) {
    var hl = HEALTH[d.health] || [d.health, 'badge'];
    var parts = [];
    parts.push(h('div', { class: 'card-head' },
      h('div', null,
        h('h2', null, d.destination, ' ', h('span', { class: 'badge ' + hl[1], 'data-health': d.health }, hl[0])),
        h('p', { class: 'muted' }, (d.type === 'linkedin' ? 'LinkedIn Conversions API' : d.type) + (d.adAccount ? ' · ad account ' + d.adAccount : '')))));
    if (d.state === 'paused') parts.push(h('p', { class: 'error-box', role: 'note' }, 'Paused: ' + d.reason));
    if (d.problems.length) parts.push(h('ul', { class: 'warn-box', 'aria-label': 'Problems' }, d.problems.map(function (p) { return h('li', null, p); })));
    parts.push(h('div', { class: 'grid dest-stats' }, tokenStat(d), rateStats(d.rateLimit)));
    parts.push(h('h3', { class: 'section-title' }, 'Conversion rules'));
    parts.push(rulesTable(d));
    return parts;
  }

  function installForm(d, refresh) {
    var id = 'tok-' + d.destination;
    var token = h('input', { id: id + '-value', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
    var expires = h('input', { id: id + '-expires', type: 'datetime-local' });
    var err = h('p', { class: 'form-error', role: 'alert' });
    var button = c.operatorOnly(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Install token'));
    var form = h('form', { class: 'install-form', 'aria-label': 'Install token for ' + d.destination, novalidate: true,
      onsubmit: async function (ev) {
        ev.preventDefault();
        err.textContent = '';
        if (!token.value.trim()) { err.textContent = 'Enter the new access token.'; return; }
        var body = { access_token: token.value.trim() };
        if (expires.value) body.expires_at = new Date(expires.value + 'Z').toISOString().replace(/\.\d{3}Z$/, 'Z');
        button.disabled = true;
        try {
          await c.api('PUT', '/admin/api/destinations/' + encodeURIComponent(d.destination) + '/token', body);
          token.value = '';
          expires.value = '';
          c.toast('New access token installed for ' + d.destination + '.', 'ok');
          await refresh();
        } catch (e) {
          if (e.status !== 401) err.textContent = e.message;
        } finally {
          button.disabled = false;
          c.operatorOnly(button);
        }
      } },
      h('h3', { class: 'section-title' }, 'Install a new access token'),
      h('div', { class: 'inline-form' },
        h('div', { class: 'field' }, h('label', { for: id + '-value' }, 'Access token'), token),
        h('div', { class: 'field field-narrow' }, h('label', { for: id + '-expires' }, 'Expires at (UTC, optional)'), expires),
        button),
      h('p', { class: 'help' }, 'The token is kept encrypted and used at once; a paused destination resumes.'),
      err);
    return form;
  }

  // connectForm is the Connect LinkedIn control: it asks the server for
  // LinkedIn's authorization URL and sends the browser there; LinkedIn
  // sends it back to /admin/oauth/callback, which returns here.
  function connectForm(d) {
    var err = h('p', { class: 'form-error', role: 'alert' });
    var button = c.operatorOnly(h('button', { type: 'submit', class: 'btn' }, 'Connect LinkedIn'));
    return h('form', { class: 'connect-form', 'aria-label': 'Connect LinkedIn for ' + d.destination, novalidate: true,
      onsubmit: async function (ev) {
        ev.preventDefault();
        err.textContent = '';
        button.disabled = true;
        try {
          var res = await c.api('POST', '/admin/api/destinations/' + encodeURIComponent(d.destination) + '/connect');
          window.location.assign(res.url);
        } catch (e) {
          if (e.status !== 401) err.textContent = e.message;
          button.disabled = false;
          c.operatorOnly(button);
        }
      } },
      h('h3', { class: 'section-title' }, 'Connect LinkedIn'),
      h('p', { class: 'help' }, 'Sign in to LinkedIn as a member who manages the ad account and allow capstan access ' +
        '(r_ads, r_ads_reporting, rw_conversions). The new token is checked, kept encrypted and used at once.'),
      button,
      err);
  }

  var RULE_STATUS = {
    receiving: ['receiving', 'badge-ok'],
    stale: ['stale', 'badge-warn'],
    unverified: ['unverified', 'badge-warn'],
    disabled: ['disabled', 'badge-bad'],
    not_capi: ['not a CAPI rule', 'badge-warn'],
    not_created: ['not created yet', 'badge-warn'],
    unknown: ['unknown', 'badge-bad'],
  };

  function when(iso) { return iso ? h('span', { title: iso }, c.fmt.time(iso).slice(0, 16)) : h('span', { class: 'muted' }, 'never'); }

  function pct(r) { return r === null || r === undefined ? '—' : (r * 100).toFixed(r < 0.1 ? 1 : 0) + '%'; }

  // ruleStatusTable shows each rule as LinkedIn has it (spec §22: GET
  // /admin/api/destinations/{name}/rules): capstan's derived status, the
  // switches and the two callback times, and what differs from the
  // configuration.
  function ruleStatusTable(rules) {
    if (!rules.length) return h('p', { class: 'muted' }, 'No mappings.');
    return h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'aria-label': 'Rule status at LinkedIn' },
      h('thead', null, h('tr', null, h('th', null, 'Mapping'), h('th', null, 'LinkedIn id'), h('th', null, 'Status'),
        h('th', null, 'Enabled'), h('th', null, 'Value'), h('th', null, 'Associated campaigns'),
        h('th', null, 'Last callback'), h('th', null, 'Latest first-party callback'))),
      h('tbody', null, rules.map(function (r) {
        var st = RULE_STATUS[r.status] || [r.status, 'badge'];
        var f = r.rule || null;
        var notes = [r.verdict];
        if (r.error) notes.push(r.error);
        (r.differs || []).forEach(function (x) { notes.push('differs from the configuration: ' + x); });
        return [
          h('tr', { 'data-rule-status': r.status },
            h('td', null, h('strong', null, r.mapping)),
            h('td', null, r.ruleId ? h('code', null, r.ruleId) : h('span', { class: 'muted' }, '—')),
            h('td', null, h('span', { class: 'badge ' + st[1] }, st[0]), r.noCampaigns ? [' ', h('span', { class: 'badge badge-warn' }, 'no campaigns')] : null),
            h('td', null, f ? (f.enabled ? 'yes' : 'no') : '—'),
            h('td', null, f ? (f.valueType || 'DYNAMIC') + (f.value ? ' ' + f.value.amount + ' ' + f.value.currencyCode : '') : '—'),
            h('td', null, f ? ((f.associatedCampaigns || []).length ? h('span', { class: 'mono' }, f.associatedCampaigns.map(function (a) { return a.campaign; }).join(', ')) : h('span', { class: 'muted' }, 'none')) : '—'),
            h('td', null, f ? when(f.lastCallbackAt) : '—'),
            h('td', null, f ? when(f.latestFirstPartyCallbackAt) : '—')),
          h('tr', { class: 'sub-row' }, h('td', { colspan: 8, class: 'muted' }, notes.filter(Boolean).join(' · '))),
        ];
      }))));
  }

  // reconcileView shows the latest reconciliation (GET
  // /admin/api/reconcile): per rule, what LinkedIn accepted beside what it
  // reports over the mature days, the ratio, eventId collisions and flags.
  function reconcileView(v) {
    if (!v.supported) return [h('p', { class: 'muted' }, 'This destination cannot reconcile.')];
    var out = [];
    if (!v.enabled) out.push(h('p', { class: 'muted' }, 'Periodic reconciliation is off (reconcile.disabled); Reconcile now still works.'));
    if (v.error) out.push(h('p', { class: 'error-box', role: 'note' }, 'The latest reconciliation failed: ' + v.error));
    var l = v.latest;
    if (!l) {
      out.push(h('p', { class: 'muted' }, 'Not reconciled yet: capstan serve reconciles a minute after it starts, then every reconcile.interval.'));
      return out;
    }
    out.push(h('p', { class: 'muted' }, 'Reconciled ' + c.fmt.time(l.at) + ' · UTC days ' + l.from + ' to ' + l.to +
      ' · flagged under ' + pct(l.minRatio) + ' with at least ' + l.minAccepted + ' accepted. Days within 72 hours of sending are still processing and never flagged.'));
    if (l.missingScope) out.push(h('p', { class: 'warn-box', role: 'note' }, l.error || ('The token lacks the ' + l.missingScope + ' scope: LinkedIn\'s report cannot be read (delivery is not affected). Connect LinkedIn again to add it.')));
    else if (l.error) out.push(h('p', { class: 'error-box', role: 'note' }, l.error));
    if (!l.rules.length) {
      out.push(h('p', { class: 'muted' }, 'Nothing accepted or reported in this range.'));
      return out;
    }
    out.push(h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'aria-label': 'Reconciliation' },
      h('thead', null, h('tr', null, h('th', null, 'Rule'), h('th', null, 'Mappings'), h('th', null, 'Accepted (mature days)'), h('th', null, 'Reported (mature days)'),
        h('th', null, 'Ratio'), h('th', null, 'Still processing'), h('th', null, 'eventId collisions'), h('th', null, 'Flag'))),
      h('tbody', null, l.rules.map(function (r) {
        var pdays = (r.days || []).filter(function (d) { return d.state === 'processing'; });
        var processing = pdays.length;
        var pAccepted = pdays.reduce(function (n, d) { return n + d.accepted; }, 0);
        return [
          h('tr', { 'data-flag': r.flag || '' },
            h('td', null, h('code', null, r.rule)),
            h('td', null, (r.mappings || []).join(', ')),
            h('td', null, c.fmt.num(r.accepted)),
            h('td', null, r.reported === null ? '—' : c.fmt.num(r.reported)),
            h('td', null, pct(r.ratio)),
            h('td', null, processing ? h('span', { class: 'badge badge-info', title: 'days within 72 hours of sending: LinkedIn may not report them yet' },
              processing + (processing === 1 ? ' day, ' : ' days, ') + c.fmt.num(pAccepted) + ' accepted') : h('span', { class: 'muted' }, 'none')),
            h('td', null, r.collisions ? h('span', { class: 'badge badge-warn', title: 'conversions that repeated an eventId with other content (event_id_collision): sent under a derived eventId or dead-lettered' },
              c.fmt.num(r.collisions) + (r.collisions === 1 ? ' collision' : ' collisions')) : h('span', { class: 'muted' }, '0')),
            h('td', null, r.flag ? h('span', { class: 'badge badge-bad' }, r.flag) : h('span', { class: 'badge badge-ok' }, 'ok'))),
          r.reason ? h('tr', { class: 'sub-row' }, h('td', { colspan: 8, class: 'muted' }, r.reason)) : null,
        ];
      })))));
    return out;
  }

  // linkedInPart is the LinkedIn-only part of a card: rule status and
  // reconciliation, read when the card is made and on Refresh (they ask
  // LinkedIn, so not at every 5-second refresh of the card).
  function linkedInPart(d) {
    var name = encodeURIComponent(d.destination);
    var rules = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Asking LinkedIn…'));
    var recon = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
    function failed(e) { return h('p', { class: 'error-box', role: 'alert' }, e.message); }
    function loadRules() {
      rules.setAttribute('aria-busy', 'true');
      return c.api('GET', '/admin/api/destinations/' + name + '/rules').then(function (res) {
        rules.replaceChildren(ruleStatusTable(res.rules || []));
      }).catch(function (e) { if (e.status !== 401) rules.replaceChildren(failed(e)); })
        .finally(function () { rules.removeAttribute('aria-busy'); });
    }
    function showRecon(v) { recon.replaceChildren.apply(recon, reconcileView(v)); }
    function loadRecon() {
      recon.setAttribute('aria-busy', 'true');
      return c.api('GET', '/admin/api/reconcile?destination=' + name).then(function (res) {
        showRecon(res.destinations[0]);
      }).catch(function (e) { if (e.status !== 401) recon.replaceChildren(failed(e)); })
        .finally(function () { recon.removeAttribute('aria-busy'); });
    }
    var refreshBtn = h('button', { type: 'button', class: 'btn', onclick: function () { loadRules(); loadRecon(); } }, 'Refresh rule status');
    var runBtn = c.operatorOnly(h('button', { type: 'button', class: 'btn', onclick: function () {
      runBtn.disabled = true;
      recon.setAttribute('aria-busy', 'true');
      c.api('POST', '/admin/api/reconcile?destination=' + name).then(function () {
        c.toast('Reconciled ' + d.destination + '.', 'ok');
        return loadRecon();
      }).catch(function (e) {
        if (e.status !== 401) recon.replaceChildren(failed(e));
      }).finally(function () { recon.removeAttribute('aria-busy'); runBtn.disabled = false; c.operatorOnly(runBtn); });
    } }, 'Reconcile now'));
    loadRules();
    loadRecon();
    return h('div', { class: 'linkedin-part' },
      h('h3', { class: 'section-title' }, 'Rule status at LinkedIn'), rules, refreshBtn,
      h('h3', { class: 'section-title' }, 'Reconciliation: accepted vs reported by LinkedIn'), recon, runBtn);
  }

  c.page('destinations', {
    title: 'Destinations',
    render: function (root, params) {
      // Back from LinkedIn (/admin/oauth/callback): say how it went.
      if (params && params.get('connected')) {
        c.toast('Destination ' + (params.get('destination') || '') + ' is connected to LinkedIn.', 'ok');
      } else if (params && params.get('connect_error')) {
        c.toast(params.get('connect_error'), 'error');
      }
      var list = h('div', { class: 'dest-list', 'aria-busy': 'true' });
      var updated = h('span', { class: 'muted' });
      root.append(
        h('div', { class: 'page-head' },
          h('div', null, h('h1', null, 'Destinations'), h('p', null, 'Where conversions go, whether they get there, and the tokens that carry them.')),
          updated),
        list);
      var cards = {};
      var timer = null;
      var stopped = false;

      async function refresh() {
        var data = await c.api('GET', '/admin/api/destinations');
        if (stopped) return;
        list.removeAttribute('aria-busy');
        if (!data.destinations.length) {
          list.replaceChildren(h('p', { class: 'empty' }, 'No destinations are configured: add one under destinations: in capstan.yaml.'));
          return;
        }
        data.destinations.forEach(function (d) {
          var card = cards[d.destination];
          if (!card) {
            card = cards[d.destination] = { status: h('div'), form: installForm(d, refresh) };
            list.append(h('section', { class: 'card dest-card', 'aria-label': d.destination }, card.status,
              d.type === 'linkedin' ? linkedInPart(d) : null,
              d.type === 'linkedin' ? connectForm(d) : null, card.form));
          }
          card.status.replaceChildren.apply(card.status, statusPart(d));
        });
        updated.textContent = 'Updated ' + c.fmt.time(new Date().toISOString()).slice(11);
      }

      refresh().catch(function (e) {
        if (e.status !== 401) list.replaceChildren(h('p', { class: 'error-box', role: 'alert' }, 'Could not load the destinations: ' + e.message));
      });
      timer = setInterval(function () { refresh().catch(function () {}); }, 5000);
      return function () { stopped = true; clearInterval(timer); };
    },
  });
})();
