// app.js: the console's shell (see CONSOLE.md). It defines window.capstan,
// the small API the page modules (pages/*.js) are written against:
//
//   capstan.api(method, path, body?)  -> Promise of the parsed JSON answer
//   capstan.page(id, {title, render(root, params)})  registers a page
//   capstan.h(tag, attrs, ...children)  builds an element (never innerHTML)
//   capstan.session, capstan.can(role), capstan.operatorOnly(el)
//   capstan.fmt.time / ago / num / bytes, capstan.toast(msg, kind),
//   capstan.confirm(msg) -> Promise<bool>
//
// The router renders the page of location.hash (#/id?k=v) on hashchange; a
// page whose module is not in this build says so.
(function () {
  'use strict';

  var pages = {};
  var session = { user: '', role: '', csrf: '', expiresAt: null, via: '' };
  var cleanup = null;
  var renderSeq = 0;
  var DEFAULT_PAGE = 'live';

  // ---- elements --------------------------------------------------------

  // h builds an element: attrs are properties or attributes (on* are event
  // handlers, class/className the class, style an object or a string,
  // dataset an object, boolean false/null/undefined leave it out);
  // children are nodes, strings (text nodes), numbers, or arrays of them.
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var SVG_TAGS = /^(svg|g|path|line|polyline|polygon|rect|circle|ellipse|text|tspan|title|desc|defs|linearGradient|stop|clipPath)$/;
  function h(tag, attrs) {
    var svg = SVG_TAGS.test(tag);
    var el = svg ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k.length > 2 && k.slice(0, 2) === 'on' && typeof v === 'function') {
          el.addEventListener(k.slice(2).toLowerCase(), v);
        } else if (k === 'class' || k === 'className') {
          el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
        } else if (k === 'style') {
          if (typeof v === 'string') el.style.cssText = v;
          else Object.keys(v).forEach(function (p) { el.style.setProperty(p, v[p]); });
        } else if (k === 'dataset') {
          Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
        } else if (!svg && (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden' || k === 'textContent')) {
          el[k] = v;
        } else {
          el.setAttribute(k, v === true ? '' : String(v));
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  // ---- API -------------------------------------------------------------

  function apiError(status, code, message) {
    var e = new Error(message);
    e.status = status;
    e.code = code;
    return e;
  }

  // api calls the admin API. path is absolute (/admin/api/...) or relative
  // to /admin/api/. Non-GET requests carry the session's CSRF token.
  async function api(method, path, body) {
    method = (method || 'GET').toUpperCase();
    if (path.charAt(0) !== '/') path = '/admin/api/' + path;
    var headers = { 'Accept': 'application/json' };
    var init = { method: method, credentials: 'same-origin', headers: headers, cache: 'no-store' };
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = session.csrf;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    var res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw apiError(0, 'network', 'capstan did not answer: ' + e.message);
    }
    if (res.status === 401) {
      showSignIn();
      throw apiError(401, 'unauthorized', 'You are signed out.');
    }
    var data = null;
    var text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      var err = data && data.error ? data.error : {};
      if (err.code === 'csrf_failed') await loadSession();
      throw apiError(res.status, err.code || 'http_' + res.status, err.message || ('HTTP ' + res.status));
    }
    return data;
  }

  // showSignIn reloads the console: the server answers the sign-in page to
  // a browser without a session, and brings it back to this page after.
  function showSignIn() {
    if (showSignIn.done) return;
    showSignIn.done = true;
    location.reload();
  }

  async function loadSession() {
    var s = await api('GET', '/admin/api/session');
    Object.assign(session, s);
    return session;
  }

  var ROLES = { viewer: 1, operator: 2 };
  function can(role) { return (ROLES[session.role] || 0) >= (ROLES[role] || 99); }

  // operatorOnly disables el (a control that changes state) for a viewer,
  // with a title saying why; the server refuses it anyway (403).
  function operatorOnly(el) {
    if (!can('operator')) {
      el.disabled = true;
      el.setAttribute('aria-disabled', 'true');
      el.title = 'Needs the operator role; you are signed in as ' + (session.role || 'nobody') + '.';
      el.classList.add('needs-operator');
    }
    return el;
  }

  // ---- formatting ------------------------------------------------------

  var numFmt = new Intl.NumberFormat('en-US');
  var fmt = {
    time: function (iso) {
      if (!iso) return '—';
      var d = new Date(iso);
      if (isNaN(d)) return String(iso);
      var p = function (n) { return String(n).padStart(2, '0'); };
      return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
        p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
    },
    ago: function (iso) {
      if (!iso) return '—';
      var s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
      if (isNaN(s)) return String(iso);
      var future = s < 0;
      s = Math.abs(s);
      var t;
      if (s < 5) return 'just now';
      if (s < 60) t = s + ' s';
      else if (s < 3600) t = Math.floor(s / 60) + ' min';
      else if (s < 86400) t = Math.floor(s / 3600) + ' h';
      else t = Math.floor(s / 86400) + ' d';
      return future ? 'in ' + t : t + ' ago';
    },
    num: function (n) { return n === undefined || n === null || isNaN(n) ? '—' : numFmt.format(n); },
    bytes: function (n) {
      if (n < 1024) return n + ' B';
      // One decimal, none when it is 0: 23.7 KiB, 256 MiB.
      if (n < 1048576) return parseFloat((n / 1024).toFixed(1)) + ' KiB';
      return parseFloat((n / 1048576).toFixed(1)) + ' MiB';
    },
  };

  // ---- toasts and confirmation -----------------------------------------

  var toastTimer = null;
  function toast(message, kind) {
    var status = document.getElementById('toast-status');
    var alertEl = document.getElementById('toast-alert');
    var target = kind === 'error' ? alertEl : status;
    var other = kind === 'error' ? status : alertEl;
    other.textContent = '';
    other.className = '';
    target.textContent = message;
    target.className = 'toast toast-' + (kind || 'info');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      target.textContent = '';
      target.className = '';
    }, kind === 'error' ? 12000 : 6000);
  }

  function confirmDialog(message) {
    var dlg = document.getElementById('confirm');
    document.getElementById('confirm-message').textContent = message;
    return new Promise(function (resolve) {
      var done = function () {
        dlg.removeEventListener('close', done);
        resolve(dlg.returnValue === 'confirm');
      };
      dlg.returnValue = '';
      dlg.addEventListener('close', done);
      dlg.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  // ---- router ----------------------------------------------------------

  function page(id, def) { pages[id] = def; }

  function parseHash() {
    var hash = location.hash.replace(/^#\/?/, '');
    var q = hash.indexOf('?');
    var id = q < 0 ? hash : hash.slice(0, q);
    return { id: id || DEFAULT_PAGE, params: new URLSearchParams(q < 0 ? '' : hash.slice(q + 1)) };
  }

  function render() {
    var seq = ++renderSeq;
    if (cleanup) {
      try { cleanup(); } catch (e) { console.error(e); }
      cleanup = null;
    }
    var r = parseHash();
    var root = document.getElementById('page');
    root.replaceChildren();
    document.querySelectorAll('nav[aria-label="Console"] a').forEach(function (a) {
      if (a.dataset.page === r.id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
    var link = document.querySelector('nav[aria-label="Console"] a[data-page="' + r.id + '"]');
    var def = pages[r.id];
    var title = def && def.title ? def.title : (link ? link.firstChild.textContent.trim() : 'Not found');
    document.title = title + ' · capstan console';
    if (!def) {
      root.append(
        h('h1', null, title),
        h('p', { class: 'empty' }, link ? 'This page is not available in this build.' : 'There is no page "' + r.id + '".'));
      return;
    }
    try {
      var out = def.render(root, r.params);
      if (out && typeof out.then === 'function') {
        out.then(function (c) { if (typeof c === 'function') { if (seq === renderSeq) cleanup = c; else c(); } })
          .catch(pageFailed(root));
      } else if (typeof out === 'function') {
        cleanup = out;
      }
    } catch (e) {
      pageFailed(root)(e);
    }
  }

  function pageFailed(root) {
    return function (e) {
      if (e && e.status === 401) return;
      console.error(e);
      root.append(h('p', { class: 'error-box', role: 'alert' }, 'This page failed: ' + (e && e.message ? e.message : e)));
    };
  }

  // navigate sets the page's query parameters (replacing the history entry
  // when replace is true), which re-renders it.
  function navigate(id, params, replace) {
    var qs = params ? new URLSearchParams(params).toString() : '';
    var hash = '#/' + id + (qs ? '?' + qs : '');
    if (replace) {
      history.replaceState(null, '', hash);
      render();
    } else {
      location.hash = hash;
    }
  }

  // ---- start -----------------------------------------------------------

  async function start() {
    if (/^#token=/.test(location.hash)) history.replaceState(null, '', location.pathname + '#/' + DEFAULT_PAGE);
    try {
      await loadSession();
    } catch (e) {
      if (e.status !== 401) document.getElementById('page').append(h('p', { class: 'error-box', role: 'alert' }, e.message));
      return;
    }
    document.getElementById('who-user').textContent = session.user;
    var role = document.getElementById('who-role');
    role.textContent = session.role;
    role.className = 'role-badge role-' + session.role;
    var out = document.getElementById('sign-out');
    out.addEventListener('click', async function () {
      out.disabled = true;
      try {
        if (session.via === 'session') await api('DELETE', '/admin/api/session');
      } catch (e) {
        if (e.status !== 401) { toast('Sign out failed: ' + e.message, 'error'); out.disabled = false; return; }
      }
      location.replace('/admin/');
    });
    window.addEventListener('hashchange', render);
    render();
    document.documentElement.dataset.ready = 'true';
  }

  window.capstan = {
    api: api,
    page: page,
    h: h,
    session: session,
    can: can,
    operatorOnly: operatorOnly,
    fmt: fmt,
    toast: toast,
    confirm: confirmDialog,
    navigate: navigate,
    render: render,
  };

  document.addEventListener('DOMContentLoaded', start);
})();
