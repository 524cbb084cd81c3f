// The page of `capstan demo`. It uses capstan.js exactly as a website would:
// a page view on load, identify + track "Sign Up" on submit, with an
// Insight Tag stub so the browser and server copies share one event id.
(function () {
  'use strict'
  var $ = function (id) { return document.getElementById(id) }
  var rulesById = {}

  // A stand-in for LinkedIn's Insight Tag: it records calls instead of
  // sending them, so the page shows the event id it would have sent.
  window.lintrkCalls = []
  window.lintrk = function (action, data) {
    window.lintrkCalls.push({ action: action, data: data })
    var li = document.createElement('li')
    li.textContent = "lintrk('" + action + "', " + JSON.stringify(data) + ')'
    $('lintrk').appendChild(li)
  }

  function cookie (name) {
    var m = document.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'))
    return m ? decodeURIComponent(m[1]) : ''
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

  function status (text, ok) {
    $('status').textContent = text
    $('status').className = ok ? 'ok' : 'bad'
  }

  function render (list) {
    var ol = $('conversions')
    var items = (list.elements || []).slice().reverse()
    if (ol.childElementCount === items.length) return
    ol.textContent = ''
    items.forEach(function (c) {
      var li = document.createElement('li')
      li.className = 'conv'
      var b = document.createElement('b')
      b.textContent = (rulesById[c.rule] || 'rule ' + c.rule)
      li.appendChild(b)
      li.appendChild(document.createTextNode(' · eventId ' + (c.body.eventId || '—') + ' · ' + new Date(c.body.conversionHappenedAt).toLocaleTimeString()))
      var pre = document.createElement('pre')
      pre.textContent = JSON.stringify(c.body.user, null, 1)
      li.appendChild(pre)
      ol.appendChild(li)
    })
  }

  function poll () {
    fetch('/demo/api/conversions', { cache: 'no-store' })
      .then(function (r) { return r.json() })
      .then(render)
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000) })
  }

  fetch('/demo/api/info').then(function (r) { return r.json() }).then(function (info) {
    Object.keys(info.rules || {}).forEach(function (name) { rulesById[info.rules[name]] = name })
    var conversions = {}
    if (info.signUpRule) conversions['Sign Up'] = Number(info.signUpRule)
    capstan.load({ writeKey: info.writeKey, host: location.origin, flushInterval: 100, insightTag: { conversions: conversions } })
    capstan.consent({ Advertising: $('consent').checked })
    capstan.page('Page View', 'Home Page').then(function () {
      $('li_fat_id').value = new URLSearchParams(location.search).get('li_fat_id') || cookie('li_fat_id')
    })
    $('li_fat_id').value = new URLSearchParams(location.search).get('li_fat_id') || cookie('li_fat_id')
    poll()
  })

  $('email').addEventListener('input', hashEmail)
  hashEmail()
  $('consent').addEventListener('change', function () {
    capstan.consent({ Advertising: $('consent').checked })
  })

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
        status(res.delivered ? 'Sent to capstan as ' + res.event.messageId + ' (user ' + userId + ')' : 'Queued; capstan will get it when reachable', true)
      })
    }).catch(function (err) {
      status('Not sent: ' + err, false)
    }).then(function () { $('submit').disabled = false })
  })
})()
