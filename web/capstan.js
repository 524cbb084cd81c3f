/*! capstan.js 0.1.0 - Segment-compatible browser client for capstan. Docs: docs/capstan-js.md
 *
 *   <script src="https://ingest.example.com/capstan.js"></script>
 *   <script>capstan.load({writeKey: 'wk_live_123'}); capstan.page()</script>
 *
 * capstan.load({writeKey, host, ...})  host: capstan's origin (default: this script's). Options:
 *   flushAt 10, flushInterval 500 ms, maxQueue 500, maxAge 7 d, retryDelay 500 ms,
 *   maxRetryDelay 60 s, insightTag {conversions: {"Sign Up": 123456}}, consentCategory
 *   "Advertising", cookieDomain, integrations, userHash (of the stored user id). Calls made
 *   before load wait for it.
 * capstan.page([category,] [name,] [properties,] [options])
 * capstan.track(event, [properties,] [options])
 * capstan.identify([userId,] [traits,] [options])  options.userHash: the site's back end's
 *   HMAC-SHA256 (hex) of userId, sent as context.capstan.userHash with every event of that user
 * capstan.alias(userId, [previousId,] [options])
 * capstan.group(groupId, [traits,] [options])
 *   each returns a Promise of {event, delivered, error}, settled after the first delivery
 *   attempt (rejected only for invalid arguments); options as analytics-next (messageId,
 *   timestamp, anonymousId, userId, context, integrations; other keys go to context).
 * capstan.consent([prefs])  set / read {Category: bool}, sent as context.consent.categoryPreferences
 * capstan.attach(analytics, [options])  add li_fat_id, consent and Insight Tag dedup to analytics-next
 * capstan.flush() -> Promise<bool empty>; capstan.user(); capstan.reset(); capstan.pending()
 *
 * li_fat_id from the URL goes into the first-party cookie li_fat_id (90 d) and onto every event
 * (context.li_fat_id; properties.li_fat_id on page/track). A track named in insightTag.conversions
 * gets ONE id as its messageId and as the event_id of window.lintrk('track', ...). Consent with
 * consentCategory false: no li_fat_id, no lintrk. Events go to {host}/v1/b in batches (text/plain,
 * credentials included), are retried with backoff on network errors, 408/410/429/460/5xx, sent with
 * keepalive / sendBeacon when the page hides, and kept in localStorage until acknowledged.
 */
(function (w, d) {
  'use strict'
  var prev = w.capstan
  if (prev && prev.VERSION) return

  var VERSION = '0.1.0'
  var DAY = 864e5
  var LFI = 'li_fat_id'
  var ANON = 'ajs_anonymous_id'
  var UID = 'ajs_user_id'
  var UTRAITS = 'ajs_user_traits'
  var GID = 'ajs_group_id'
  var GTRAITS = 'ajs_group_properties'
  var CONSENT = 'capstan_consent'
  var UHASH = 'capstan_user_hash'
  var QPREFIX = 'capstan_q.'
  var STALE = 60e3 // a queue not touched for this long belongs to a closed tab
  var MAX_ITEM = 32000 // capstan accepts 32 KiB per event
  var MAX_BATCH = 450000 // and 500 KiB per request
  var KEEPALIVE = 65536 // browsers' budget for keepalive requests in flight
  var script = d.currentScript

  var cfg = null // load options
  var category = 'Advertising' // the consent category that gates advertising
  var lfi = null // li_fat_id
  var domain = null // cookie domain, computed once
  var tab = uuid().slice(0, 8)
  var enc = new TextEncoder()
  var q = [] // events not yet acknowledged, oldest first
  var meta = new Map() // messageId -> {n: bytes, b: when queued}
  var inflight = new Set() // messageIds being sent
  var waiters = new Map() // messageId -> resolve of the method's Promise
  var early = [] // calls made before load
  var attempt = 0
  var blockedUntil = 0
  var timer = null
  var timerAt = 0
  var pumping = null
  var kaBytes = 0 // keepalive bytes in flight
  var closed = false

  // --- small helpers ---------------------------------------------------------------------------
  function now() { return Date.now() }
  function isObj(v) { return Object.prototype.toString.call(v) === '[object Object]' }
  function isStr(v) { return typeof v === 'string' }
  function isFn(v) { return typeof v === 'function' }
  function has(o, k) { return o != null && Object.prototype.hasOwnProperty.call(o, k) }
  function bytes(s) { return enc.encode(s).length }
  function warn(m) { try { console.warn('capstan.js: ' + m) } catch (e) { } }
  function iso(t) { var x = t == null ? new Date() : new Date(t); return isNaN(x) ? new Date().toISOString() : x.toISOString() }

  function uuid() {
    var b = new Uint8Array(16)
    crypto.getRandomValues(b)
    b[6] = (b[6] & 15) | 64
    b[8] = (b[8] & 63) | 128
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1) }).join('')
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20)
  }
  function newMessageId() { return 'capstan-' + now() + '-' + uuid() }

  // --- storage: localStorage (JSON, as analytics-next) and cookies ------------------------------
  var ls = {
    get: function (k) {
      try {
        var v = localStorage.getItem(k)
        if (v == null) return null
        try { return JSON.parse(v) } catch (e) { return v }
      } catch (e) { return null }
    },
    set: function (k, v) {
      try {
        if (v == null) localStorage.removeItem(k)
        else localStorage.setItem(k, JSON.stringify(v))
        return true
      } catch (e) { return false }
    },
    keys: function () { try { return Object.keys(localStorage) } catch (e) { return [] } }
  }

  function getCookie(name) {
    var m
    try { m = d.cookie.match(new RegExp('(?:^|;\\s*)' + name + '=([^;]*)')) } catch (e) { }
    if (!m || m[1] === '') return null
    var v = m[1]
    try { v = decodeURIComponent(v) } catch (e) { }
    try {
      var p = JSON.parse(v)
      if (isStr(p) || typeof p === 'number') return String(p)
    } catch (e) { }
    return v
  }

  // The top-most domain that accepts a cookie (example.com for www.example.com), as
  // analytics-next does, so that ids are shared by subdomains; '' for IPs and localhost.
  function cookieDomain() {
    if (domain != null) return domain
    if (cfg && isStr(cfg.cookieDomain)) return (domain = cfg.cookieDomain)
    domain = ''
    var host = location.hostname
    var parts = host.split('.')
    if (parts.length < 2 || /^[\d.]+$/.test(host) || host.indexOf(':') >= 0) return domain
    for (var i = parts.length - 2; i >= 0; i--) {
      var dom = parts.slice(i).join('.')
      try {
        d.cookie = '__capstan_tld=1; path=/; domain=' + dom
        if (d.cookie.indexOf('__capstan_tld=1') >= 0) {
          d.cookie = '__capstan_tld=; path=/; max-age=0; domain=' + dom
          return (domain = dom)
        }
      } catch (e) { break }
    }
    return domain
  }

  function setCookie(name, value, days) {
    var c = name + '=' + (value == null ? '' : encodeURIComponent(value)) + '; path=/; max-age=' +
      (value == null ? 0 : Math.round(days * 86400)) + '; SameSite=Lax'
    var dom = cookieDomain()
    if (dom) c += '; domain=' + dom
    if (location.protocol === 'https:') c += '; Secure'
    try { d.cookie = c } catch (e) { }
  }

  // An id kept in both localStorage and a cookie (analytics-next reads localStorage first).
  function getId(k) {
    var v = ls.get(k)
    if (v == null || v === '') v = getCookie(k)
    if (v == null || v === '') return null
    v = String(v)
    if (ls.get(k) !== v) ls.set(k, v)
    if (getCookie(k) !== v) setCookie(k, v, 365)
    return v
  }
  function setId(k, v) {
    ls.set(k, v == null ? null : String(v))
    setCookie(k, v == null ? null : String(v), 365)
  }
  function anonymousId() {
    var a = getId(ANON)
    if (!a) setId(ANON, (a = uuid()))
    return a
  }

  // --- consent and li_fat_id --------------------------------------------------------------------
  function prefs() { var p = ls.get(CONSENT); return isObj(p) ? p : null }

  // Identity verification: the userHash of one user id, sent with that user's events.
  function setHash(u, h) { ls.set(UHASH, u && isStr(h) && h ? { u: u, h: h } : null) }
  function hashOf(u) { var s = ls.get(UHASH); return u && isObj(s) && s.u === u ? s.h : null }
  function adsDenied() {
    var p = prefs()
    return !!p && p[category] === false
  }
  function validLfi(v) { return isStr(v) && /^[\w.~-]{1,200}$/.test(v) ? v : null }

  function captureLfi() {
    var v = null
    try { v = validLfi(new URLSearchParams(location.search).get(LFI)) } catch (e) { }
    if (adsDenied()) return
    if (v) {
      lfi = v
      setCookie(LFI, v, 90)
    }
  }
  function liFatId() {
    if (adsDenied()) return null
    return lfi || validLfi(getCookie(LFI)) || validLfi(getCookie('_' + LFI))
  }

  function consent(p) {
    if (arguments.length === 0) return prefs()
    if (p == null) {
      ls.set(CONSENT, null)
      return null
    }
    if (!isObj(p)) throw new TypeError('capstan.consent: preferences must be an object of booleans')
    var c = {}
    Object.keys(p).forEach(function (k) { if (typeof p[k] === 'boolean') c[k] = p[k] })
    ls.set(CONSENT, c)
    if (adsDenied()) {
      lfi = null
      setCookie(LFI, null)
    } else captureLfi()
    return c
  }

  // decorate adds what capstan needs to any Segment event (capstan.js's own or analytics-next's
  // through attach): li_fat_id, consent preferences, and for a mapped track event the shared
  // messageId / Insight Tag event_id.
  function decorate(ev, o) {
    var ctx = ev.context = isObj(ev.context) ? ev.context : {}
    var id = liFatId()
    if (id) {
      if (ctx[LFI] == null) ctx[LFI] = id
      if (ev.type === 'track' || ev.type === 'page' || ev.type === 'screen') {
        if (!isObj(ev.properties)) ev.properties = {}
        if (ev.properties[LFI] == null) ev.properties[LFI] = id
      }
    }
    var p = prefs()
    if (p && !(isObj(ctx.consent) && isObj(ctx.consent.categoryPreferences))) {
      ctx.consent = Object.assign({}, ctx.consent, { categoryPreferences: Object.assign({}, p) })
    }
    var h = hashOf(ev.userId)
    if (h && !(isObj(ctx.capstan) && ctx.capstan.userHash)) ctx.capstan = Object.assign({}, ctx.capstan, { userHash: h })
    var conv = o && o.insightTag && o.insightTag.conversions
    if (ev.type === 'track' && has(conv, ev.event)) {
      var mid = isStr(ev.messageId) && ev.messageId && ev.messageId.length <= 64 ? ev.messageId : newMessageId()
      ev.messageId = mid
      if (isFn(w.lintrk) && !adsDenied()) {
        try { w.lintrk('track', { conversion_id: conv[ev.event], event_id: mid }) } catch (e) { warn('lintrk failed: ' + e) }
      }
    }
    return ev
  }

  // --- events ----------------------------------------------------------------------------------
  function pageContext() {
    var l = d.querySelector("link[rel='canonical']")
    var can = l && l.getAttribute('href')
    var search = location.search
    var path = location.pathname
    var url = location.href.split('#')[0]
    if (can) {
      try { path = new URL(can).pathname } catch (e) { path = can.charAt(0) === '/' ? can : '/' + can }
      url = can.indexOf('?') >= 0 ? can : can + search
    }
    return { path: path, referrer: d.referrer, search: search, title: d.title, url: url }
  }

  function utm(search) {
    var c = {}
    search.replace(/^\?/, '').split(/[&?]/).forEach(function (kv) {
      var i = kv.indexOf('=')
      var k = i < 0 ? kv : kv.slice(0, i)
      if (k.indexOf('utm_') === 0 && k.length > 4) {
        var v = i < 0 ? '' : kv.slice(i + 1)
        try { v = decodeURIComponent(v.replace(/\+/g, ' ')) } catch (e) { }
        c[k === 'utm_campaign' ? 'name' : k.slice(4)] = v
      }
    })
    return c
  }

  // build makes an event the way analytics-next does (EventFactory + page enrichment).
  function build(type, fields, opts) {
    opts = Object.assign({}, opts)
    var ctx = Object.assign({}, isObj(opts.context) ? opts.context : null)
    var over = {}
    Object.keys(opts).forEach(function (k) {
      if (k === 'context' || k === 'integrations' || k === 'userHash' || opts[k] === undefined) return
      if (k === 'userId' || k === 'anonymousId' || k === 'timestamp' || k === 'messageId') over[k] = opts[k]
      else ctx[k] = opts[k]
    })
    if (isStr(over.anonymousId) && over.anonymousId) setId(ANON, over.anonymousId)
    var pg = pageContext()
    var props = fields.properties
    if (type === 'page') {
      var fromProps = {}
      Object.keys(pg).forEach(function (k) { if (has(props, k)) fromProps[k] = props[k] })
      fields.properties = Object.assign({}, pg, props, fields.name != null ? { name: fields.name } : null)
      ctx.page = Object.assign({}, pg, fromProps, ctx.page)
    } else {
      ctx.page = Object.assign({}, pg, ctx.page)
    }
    ctx.userAgent = navigator.userAgent
    var uad = navigator.userAgentData
    if (uad && isFn(uad.toJSON)) ctx.userAgentData = uad.toJSON()
    if (ctx.locale === undefined) ctx.locale = navigator.language
    if (!ctx.library) ctx.library = { name: 'capstan.js', version: VERSION }
    var camp = utm(pg.search)
    if (!ctx.campaign && Object.keys(camp).length) ctx.campaign = camp
    try { ctx.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone } catch (e) { }

    var integrations = {}
    var base = Object.assign({}, cfg && cfg.integrations)
    Object.keys(base).forEach(function (k) { integrations[k] = !!base[k] })
    Object.assign(integrations, isObj(opts.integrations) ? opts.integrations : null)

    var ev = Object.assign({ timestamp: iso(over.timestamp), integrations: integrations, type: type }, fields)
    ev.context = ctx
    ev.messageId = isStr(over.messageId) && over.messageId ? over.messageId : newMessageId()
    ev.anonymousId = over.anonymousId || anonymousId()
    if (type !== 'alias' && type !== 'identify') ev.userId = over.userId || getId(UID) || null
    return decorate(ev, cfg)
  }

  // enqueue hands an event to the queue and returns the method's Promise.
  function enqueue(ev, cb) {
    return new Promise(function (resolve) {
      var done = function (r) {
        if (isFn(cb)) try { cb(r) } catch (e) { warn(e) }
        resolve(r)
      }
      var json = JSON.stringify(ev)
      var n = bytes(json)
      if (n > MAX_ITEM) {
        warn('event ' + ev.messageId + ' is ' + n + ' bytes, more than capstan accepts; dropped')
        return done({ event: ev, delivered: false, error: 'event_too_large' })
      }
      waiters.set(ev.messageId, function (delivered, error) { done({ event: ev, delivered: delivered, error: error }) })
      meta.set(ev.messageId, { n: n, b: now() })
      q = q.filter(function (e) { return e.messageId !== ev.messageId })
      q.push(JSON.parse(json))
      while (q.length > cfg.maxQueue) settle([q.shift()], false, 'queue_full')
      if (closed) hide(true) // tracked while the page unloads: no timer will run
      else if (q.length >= cfg.flushAt) pump()
      else schedule(cfg.flushInterval)
      persist()
    })
  }

  // call runs an event method now, or after load.
  function call(make) {
    var fn = function () {
      var args = Array.prototype.slice.call(arguments)
      if (!cfg) return new Promise(function (resolve) { early.push(function () { resolve(fn.apply(null, args)) }) })
      var ev
      try { ev = make.apply(null, args.filter(function (a) { return !isFn(a) })) } catch (e) { return Promise.reject(e) }
      return enqueue(ev, args.filter(isFn)[0])
    }
    return fn
  }

  function traitsOf(k) { var t = ls.get(k); return isObj(t) ? t : {} }

  var page = call(function () {
    var a = Array.prototype.slice.call(arguments)
    var strs = a.filter(function (x) { return isStr(x) })
    var objs = a.filter(isObj)
    var category = strs.length > 1 ? strs[0] : null
    var name = strs.length > 1 ? strs[1] : strs.length ? strs[0] : null
    var props = Object.assign({}, objs[0])
    var f = { properties: props }
    if (category != null) {
      f.category = category
      props.category = category
    }
    if (name != null) f.name = name
    return build('page', f, objs[1])
  })

  var track = call(function (event, properties, options) {
    if (isObj(event)) {
      options = properties
      properties = event.properties
      event = event.event
    }
    if (!isStr(event) || !event) throw new TypeError('capstan.track: the event name is required')
    return build('track', { event: event, properties: Object.assign({}, isObj(properties) ? properties : null) }, options)
  })

  // userArgs reads (id?, traits?, options?) as analytics-next's resolveUserArguments does.
  function userArgs(a) {
    var id = null
    if (isStr(a[0]) || typeof a[0] === 'number') id = String(a.shift())
    else if (a[0] == null && a.length > 1) a.shift()
    return [id, isObj(a[0]) ? a[0] : {}, isObj(a[1]) ? a[1] : {}]
  }

  var identify = call(function () {
    var r = userArgs(Array.prototype.slice.call(arguments))
    var id = r[0]
    var current = getId(UID)
    var traits = r[1]
    if (id && current && id !== current) setId(ANON, uuid()) // a different person: new anonymous id
    if (!current || !id || current === id) traits = Object.assign({}, traitsOf(UTRAITS), traits)
    if (id && isStr(r[2].userHash)) setHash(id, r[2].userHash)
    else if (id && id !== current) setHash(null)
    if (id) setId(UID, id)
    ls.set(UTRAITS, traits)
    return build('identify', { userId: getId(UID), traits: traits }, r[2])
  })

  var group = call(function () {
    var r = userArgs(Array.prototype.slice.call(arguments))
    var gid = r[0] || getId(GID)
    if (!gid) throw new TypeError('capstan.group: the group id is required')
    var traits = r[1]
    if (gid === getId(GID)) traits = Object.assign({}, traitsOf(GTRAITS), traits)
    setId(GID, gid)
    ls.set(GTRAITS, traits)
    return build('group', { groupId: gid, traits: traits }, r[2])
  })

  var alias = call(function (to, from, options) {
    if (isObj(from)) {
      options = from
      from = null
    }
    if (to == null || to === '') throw new TypeError('capstan.alias: the new user id is required')
    from = from != null && from !== '' ? String(from) : getId(UID) || anonymousId()
    return build('alias', { userId: String(to), previousId: from }, options)
  })

  // --- the queue -------------------------------------------------------------------------------
  function qkey() { return QPREFIX + cfg.writeKey + '.' + tab }

  // persist writes the queue to localStorage (bounded: halves it until it fits).
  function persist() {
    if (!cfg) return
    if (!q.length) return ls.set(qkey(), null)
    var e = q
    var born = function (x) { return (meta.get(x.messageId) || {}).b || now() }
    while (e.length && !ls.set(qkey(), { h: cfg.host, t: now(), c: closed ? 1 : 0, e: e, b: e.map(born) })) e = e.slice(Math.ceil(e.length / 2))
  }

  // adopt takes over the queues of closed or crashed tabs and of previous page loads.
  function adopt() {
    var pre = QPREFIX + cfg.writeKey + '.'
    var ids = new Set(q.map(function (e) { return e.messageId }))
    ls.keys().forEach(function (k) {
      if (k.indexOf(pre) !== 0 || k === qkey()) return
      var v = ls.get(k)
      if (!v || !Array.isArray(v.e)) return ls.set(k, null)
      if (v.h !== cfg.host || (!v.c && now() - v.t < STALE)) return
      ls.set(k, null)
      v.e.forEach(function (e, i) {
        if (isObj(e) && isStr(e.messageId) && !ids.has(e.messageId)) {
          ids.add(e.messageId)
          meta.set(e.messageId, { n: bytes(JSON.stringify(e)), b: +(v.b && v.b[i]) || now() })
          q.push(e)
        }
      })
    })
    var born = function (x) { return (meta.get(x.messageId) || {}).b || 0 }
    q.sort(function (x, y) { return born(x) - born(y) })
    while (q.length > cfg.maxQueue) q.shift()
  }

  // settle removes events from the queue (unless keep) and resolves their Promises.
  function settle(evs, delivered, error, keep) {
    var ids = new Set(evs.map(function (e) { return e.messageId }))
    if (!keep) {
      q = q.filter(function (e) { return !ids.has(e.messageId) })
      ids.forEach(function (id) { meta.delete(id) })
    }
    ids.forEach(function (id) {
      var f = waiters.get(id)
      if (f) {
        waiters.delete(id)
        f(delivered, error)
      }
    })
  }

  function schedule(ms) {
    var at = now() + ms
    if (timer && timerAt <= at) return
    clearTimeout(timer)
    timerAt = at
    timer = setTimeout(function () {
      timer = null
      pump()
    }, ms)
  }

  function expire() {
    var old = q.filter(function (e) { return now() - ((meta.get(e.messageId) || {}).b || 0) > cfg.maxAge })
    if (old.length) {
      warn(old.length + ' events older than maxAge dropped')
      settle(old, false, 'expired')
      persist()
    }
  }

  // chunk takes events not in flight, oldest first, up to limit bytes and max items.
  function chunk(limit, max) {
    var out = []
    var size = 60
    for (var i = 0; i < q.length && out.length < max; i++) {
      var e = q[i]
      if (inflight.has(e.messageId)) continue
      var n = ((meta.get(e.messageId) || {}).n || MAX_ITEM) + 1
      if (out.length && size + n > limit) break
      out.push(e)
      size += n
    }
    return out
  }

  function endpoint() { return cfg.host + '/v1/b' }

  function retryAfter(res) {
    var v = res && (res.headers.get('Retry-After') || res.headers.get('X-RateLimit-Reset'))
    if (!v) return 0
    var ms = /^\d+$/.test(v.trim()) ? +v * 1000 : Date.parse(v) - now()
    return isNaN(ms) ? 0 : Math.max(0, Math.min(ms, 300e3))
  }

  // send posts one batch; it resolves to null when done (delivered or dropped), or to the
  // minimum wait in ms when the batch must be retried.
  function send(evs, keepalive) {
    var body = JSON.stringify({ batch: evs, writeKey: cfg.writeKey, sentAt: iso() })
    var n = bytes(body)
    var ka = n + kaBytes <= KEEPALIVE && (keepalive || n <= KEEPALIVE / 2)
    evs.forEach(function (e) { inflight.add(e.messageId) })
    if (ka) kaBytes += n
    var req
    try {
      req = fetch(endpoint(), { method: 'POST', body: body, credentials: 'include', mode: 'cors', keepalive: ka })
    } catch (e) {
      req = Promise.reject(e)
    }
    return req.then(function (res) { return res }, function () { return null }).then(function (res) {
      if (ka) kaBytes -= n
      evs.forEach(function (e) { inflight.delete(e.messageId) })
      var st = res ? res.status : 0
      if (res && st < 400) {
        settle(evs, true)
        persist()
        return null
      }
      if (!res || st === 408 || st === 410 || st === 429 || st === 460 || (st >= 500 && st !== 501 && st !== 505 && st !== 511)) {
        settle(evs, false, res ? 'http_' + st : 'network', true) // first attempt failed: resolve, keep retrying
        return retryAfter(res)
      }
      warn('capstan refused ' + evs.length + ' events with HTTP ' + st + '; dropped')
      settle(evs, false, 'http_' + st)
      persist()
      return null
    })
  }

  // pump sends the queue batch by batch until it is empty or a batch must wait.
  function pump() {
    if (!cfg || pumping) return pumping || Promise.resolve()
    var wait = blockedUntil - now()
    if (wait > 0) {
      schedule(wait)
      return Promise.resolve()
    }
    clearTimeout(timer)
    timer = null
    pumping = (function loop() {
      expire()
      var evs = chunk(MAX_BATCH, 100)
      if (!evs.length) return Promise.resolve()
      return send(evs, false).then(function (ra) {
        if (ra == null) {
          attempt = 0
          return loop()
        }
        backoff(ra)
      })
    })().then(function () { pumping = null }, function (e) {
      pumping = null
      warn(e)
    })
    return pumping
  }

  // backoff pauses the queue: exponential with jitter, at least Retry-After.
  function backoff(ra) {
    var cap = Math.min(cfg.maxRetryDelay, cfg.retryDelay * Math.pow(2, attempt++))
    var delay = Math.max(ra, cap / 2 + Math.random() * cap / 2)
    blockedUntil = now() + delay
    schedule(delay)
  }

  function flush() {
    if (!cfg) return Promise.resolve(false)
    blockedUntil = 0
    return Promise.resolve(pumping).then(pump).then(function () { return q.length === 0 })
  }

  // hide sends what is queued with keepalive (sendBeacon when the keepalive budget is spent) in
  // chunks of at most 64 KB; the events stay persisted until acknowledged.
  function hide(isPagehide) {
    if (!cfg) return
    if (isPagehide) closed = true
    persist()
    for (var guard = 0; guard < 50; guard++) {
      var evs = chunk(KEEPALIVE - 1024, 500)
      if (!evs.length) break
      var body = JSON.stringify({ batch: evs, writeKey: cfg.writeKey, sentAt: iso() })
      if (isFn(w.fetch) && bytes(body) + kaBytes <= KEEPALIVE) {
        send(evs, true).then(function (ra) { if (ra != null) backoff(ra) })
        continue
      }
      var ok = false
      try { ok = navigator.sendBeacon(endpoint(), new Blob([body], { type: 'text/plain' })) } catch (e) { }
      if (!ok) break
      // Sent, but the answer cannot be read: keep them out of the next batches for a while.
      evs.forEach(function (e) { inflight.add(e.messageId) })
      setTimeout(function (ids) {
        ids.forEach(function (id) { inflight.delete(id) })
        if (q.length) schedule(cfg.flushInterval)
      }, 10e3, evs.map(function (e) { return e.messageId }))
    }
  }

  // --- load, attach, misc ----------------------------------------------------------------------
  function load(o) {
    if (cfg) {
      warn('load called twice; ignored')
      return api
    }
    o = Object.assign({}, o)
    if (!isStr(o.writeKey) || !o.writeKey) throw new TypeError('capstan.load: writeKey is required')
    var host = o.host || (script && script.src ? new URL(script.src, location.href).origin : location.origin)
    if (!/^https?:\/\//.test(host)) host = 'https://' + host
    o.host = host.replace(/\/+$/, '').replace(/\/v1$/, '')
    var defaults = { flushAt: 10, flushInterval: 500, maxQueue: 500, maxAge: 7 * DAY, retryDelay: 500, maxRetryDelay: 60e3 }
    Object.keys(defaults).forEach(function (k) { if (!(o[k] > 0)) o[k] = defaults[k] })
    cfg = o
    if (isStr(o.consentCategory)) category = o.consentCategory
    if (isStr(o.userHash)) setHash(getId(UID), o.userHash)
    domain = null
    captureLfi()
    anonymousId()
    adopt()
    persist()
    w.addEventListener('pagehide', function () { hide(true) })
    w.addEventListener('pageshow', function (e) {
      if (e.persisted) {
        closed = false
        adopt()
        persist()
        pump()
      }
    })
    d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') hide(false) })
    w.addEventListener('online', function () { flush() })
    setInterval(function () { if (q.length && !closed) persist() }, 10e3)
    early.splice(0).forEach(function (f) { f() })
    if (q.length) schedule(0)
    return api
  }

  // attach adds capstan's extras to an @segment/analytics-next instance (AnalyticsBrowser or
  // Analytics) as a source middleware.
  function attach(analytics, o) {
    if (!analytics || !isFn(analytics.addSourceMiddleware)) throw new TypeError('capstan.attach: not an analytics-next instance')
    var opts = Object.assign({}, cfg, o)
    if (isStr(opts.consentCategory)) category = opts.consentCategory
    captureLfi()
    return analytics.addSourceMiddleware(function (m) {
      try { decorate(m.payload.obj, opts) } catch (e) { warn(e) }
      m.next(m.payload)
    })
  }

  function user() {
    return { anonymousId: anonymousId(), userId: getId(UID), groupId: getId(GID), liFatId: liFatId() }
  }

  function reset() {
    ;[UID, GID].forEach(function (k) { setId(k, null) })
    ls.set(UTRAITS, null)
    ls.set(GTRAITS, null)
    setHash(null)
    setId(ANON, uuid())
  }

  var api = {
    VERSION: VERSION,
    load: load,
    page: page,
    track: track,
    identify: identify,
    alias: alias,
    group: group,
    consent: consent,
    attach: attach,
    flush: flush,
    user: user,
    reset: reset,
    pending: function () { return q.length }
  }
  w.capstan = api
  captureLfi()

  // Replay calls recorded by a stub (window.capstan = [['load', {...}], ['page'], ...]).
  if (Array.isArray(prev)) {
    prev.forEach(function (c) {
      var f = api[c && c[0]]
      if (isFn(f)) {
        try { f.apply(api, c.slice(1)) } catch (e) { warn(e) }
      }
    })
  }
})(window, document)
