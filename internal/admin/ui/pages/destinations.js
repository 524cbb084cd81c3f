// pages/destinations.js: each destination's state (delivering, paused with
// the reason, degraded), its token's expiry and rate-limit use, its
// conversion rules, and the form that installs a new access token.
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

  c.page('destinations', {
    title: 'Destinations',
    render: function (root) {
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
            list.append(h('section', { class: 'card dest-card', 'aria-label': d.destination }, card.status, card.form));
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
