// The page of `capstan demo`. It uses capstan.js exactly as a website would:
// a page view on load, identify + track "Sign Up" on submit, with an
// Insight Tag stub so the browser and server copies share one event id.
(function () {
  'use strict'
  var $ = function (id) { return document.getElementById(id) }
  var rulesById = {}
  var shown = ''

  // A stand-in for LinkedIn's Insight Tag: it records calls instead of
  // sending them, so the page shows the event id it would have sent.
  window.lintrkCalls = []
  window.lintrk = function (action, data) {
    window.lintrkCalls.push({ action: action, data: data })
    var ol = $('lintrk')
    if (window.lintrkCalls.length === 1) ol.textContent = ''
    var args = Object.keys(data || {}).map(function (k) { return '  ' + k + ': ' + JSON.stringify(data[k]) })
    var li = document.createElement('li')
    li.className = 'mono'
    li.textContent = "lintrk('" + action + "', {\n" + args.join(',\n') + '\n})'
    ol.appendChild(li)
  }

  function el (tag, cls, text) {
    var e = document.createElement(tag)
    if (cls) e.className = cls
    if (text != null) e.textContent = text
    return e
  }

  function hex (buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) {
      return b.toString(16).padStart(2, '0')
    }).join('')
  }

  // The hash LinkedIn matches on: SHA-256 of the trimmed, lower-cased email.
  function hashEmail () {
    var email = $('email').value.trim().toLowerCase()
    if (!email) { $('hashedEmail').value = ''; return Promise.resolve('') }
    return crypto.subtle.digest('SHA-256', new TextEncoder().encode(email)).then(function (d) {
      $('hashedEmail').value = hex(d)
      return hex(d)
    })
  }

  function status (text, cls) {
    $('status').textContent = text
    $('status').className = cls
  }

  // showClickId shows the click id capstan.js puts on events: none while
  // advertising consent is denied.
  function showClickId () {
    var f = $('li_fat_id')
    f.value = (window.capstan && capstan.user && capstan.user().liFatId) || ''
    f.placeholder = $('consent').checked ? 'open this page with ?li_fat_id=123456' : 'not kept: advertising consent denied'
  }

  function lintrkIds () {
    var ids = {}
    window.lintrkCalls.forEach(function (c) { if (c.data && c.data.event_id) ids[c.data.event_id] = true })
    return ids
  }

  function row (dl, name, value, badge) {
    if (value == null || value === '') return
    dl.appendChild(el('dt', '', name))
    var dd = el('dd', 'mono', value)
    if (badge) dd.appendChild(el('span', 'badge', badge))
    dl.appendChild(dd)
  }

  function conversionItem (c, fromTag) {
    var body = c.body || {}
    var user = body.user || {}
    var li = el('li', 'conv')
    var head = el('div', 'conv-head')
    head.appendChild(el('b', '', rulesById[c.rule] || 'rule ' + c.rule))
    head.appendChild(el('span', 'time', new Date(body.conversionHappenedAt).toLocaleTimeString()))
    li.appendChild(head)
    var dl = el('dl')
    row(dl, 'eventId', body.eventId || '—', fromTag[body.eventId] ? '= Insight Tag event_id' : '')
    ;(user.userIds || []).forEach(function (id) {
      row(dl, id.idType === 'SHA256_EMAIL' ? 'email (SHA-256)' : id.idType === 'LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID' ? 'li_fat_id' : id.idType, id.idValue)
    })
    var ui = user.userInfo
    if (ui) {
      row(dl, 'userInfo', [[ui.firstName, ui.lastName].filter(Boolean).join(' '), ui.title, ui.companyName, ui.countryCode].filter(Boolean).join(' · '))
    }
    if (body.conversionValue) row(dl, 'value', body.conversionValue.amount + ' ' + body.conversionValue.currencyCode)
    li.appendChild(dl)
    var details = el('details')
    details.appendChild(el('summary', '', 'request body'))
    details.appendChild(el('pre', 'mono', JSON.stringify(body, null, 2)))
    li.appendChild(details)
    return li
  }

  function render (list) {
    var items = (list.elements || []).slice().reverse()
    var fromTag = lintrkIds()
    var sig = items.length + '/' + Object.keys(fromTag).length + '/' + Object.keys(rulesById).length
    if (sig === shown) return
    shown = sig
    var ol = $('conversions')
    ol.textContent = ''
    $('count').textContent = items.length ? String(items.length) : ''
    if (!items.length) ol.appendChild(el('li', 'empty', 'none yet'))
    items.forEach(function (c) { ol.appendChild(conversionItem(c, fromTag)) })
  }

  function poll () {
    fetch('/demo/api/conversions', { cache: 'no-store' })
      .then(function (r) { return r.json() })
      .then(render)
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000) })
  }

  // start loads capstan.js with the demo's write key and the Sign Up rule as
  // the Insight Tag conversion id. The rules exist once delivery has started:
  // info is asked again for a few seconds until they do.
  function start (tries) {
    fetch('/demo/api/info', { cache: 'no-store' }).then(function (r) { return r.json() }).then(function (info) {
      if (!info.signUpRule && tries > 0) {
        setTimeout(function () { start(tries - 1) }, 250)
        return
      }
      Object.keys(info.rules || {}).forEach(function (name) { rulesById[info.rules[name]] = name })
      var conversions = {}
      if (info.signUpRule) conversions['Sign Up'] = Number(info.signUpRule)
      capstan.load({ writeKey: info.writeKey, host: location.origin, flushInterval: 100, insightTag: { conversions: conversions } })
      // A returning visitor's choice wins over the box's default.
      var stored = capstan.consent()
      if (stored && typeof stored.Advertising === 'boolean') $('consent').checked = stored.Advertising
      else capstan.consent({ Advertising: $('consent').checked })
      showClickId()
      capstan.page('Page View', 'Home Page').then(function (res) {
        window.lastPageView = { messageId: res.event.messageId, delivered: res.delivered }
      })
      poll()
    }).catch(function (err) {
      status('Cannot reach capstan: ' + err, 'bad')
    })
  }

  $('email').addEventListener('input', hashEmail)
  hashEmail()
  $('consent').addEventListener('change', function () {
    capstan.consent({ Advertising: $('consent').checked })
    showClickId()
  })
  start(40)

  $('signup').addEventListener('submit', function (e) {
    e.preventDefault()
    $('submit').disabled = true
    hashEmail().then(function (hash) {
      var f = function (id) { return $(id).value.trim() }
      var userId = 'demo-' + hash.slice(0, 16)
      capstan.identify(userId, { email: f('email'), firstName: f('firstName'), lastName: f('lastName'), title: f('title'), company: f('company') })
      return capstan.track('Sign Up', {
        firstName: f('firstName'), lastName: f('lastName'), email: f('email'), title: f('title'),
        company: f('company'), countryCode: f('countryCode').toUpperCase(), currency: f('currency').toUpperCase()
      }).then(function (res) {
        window.lastSignUp = { userId: userId, messageId: res.event.messageId, delivered: res.delivered }
        var stored = 'Stored by capstan as ' + res.event.messageId + ' (user ' + userId + ')'
        if (!res.delivered && /^(network|http_429|http_5)/.test(res.error)) {
          status('Not stored yet (' + res.error + '): capstan.js keeps it queued and retries', 'bad')
        } else if (!res.delivered) {
          status('Refused (' + res.error + ')', 'bad')
        } else if (!$('consent').checked) {
          if (!window.lintrkCalls.length) $('lintrk').firstChild.textContent = 'none: advertising consent denied'
          status(stored + '. Advertising consent is denied: capstan keeps it from LinkedIn and out of its identity graph.', 'muted')
        } else {
          status(stored, 'ok')
        }
      })
    }).catch(function (err) {
      status('Not sent: ' + err, 'bad')
    }).then(function () { $('submit').disabled = false })
  })
})()
