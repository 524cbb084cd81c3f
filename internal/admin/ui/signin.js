// signin.js: the console's sign-in page. It posts the admin token, or a
// username and password, to POST /admin/api/session; on success the server
// has set the session cookie and the console loads. A token in the URL
// fragment (#token=..., as `capstan demo` prints) signs in at once: the
// fragment never reaches the server's logs, and it is removed from the
// address bar before anything else.
(function () {
  'use strict';
  var form = document.getElementById('signin');
  var err = document.getElementById('signin-error');
  var submit = document.getElementById('signin-submit');
  var field = function (id) { return document.getElementById(id); };

  // Where to go once signed in: the page asked for, else Live events.
  var route = /^#\/[a-z-]+/.test(location.hash) ? location.hash : '#/live';

  function showError(message) {
    err.textContent = message;
    err.hidden = false;
  }

  async function signIn(body) {
    err.textContent = '';
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      var res = await fetch('/admin/api/session', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.ok) {
        history.replaceState(null, '', '/admin/' + route);
        location.reload();
        return;
      }
      var msg = 'Sign-in failed (HTTP ' + res.status + ')';
      try {
        var j = await res.json();
        if (j && j.error && j.error.message) msg = j.error.message;
      } catch (e) { /* not JSON */ }
      if (res.status === 401) msg = msg.charAt(0).toUpperCase() + msg.slice(1) + '.';
      showError(msg);
    } catch (e) {
      showError('capstan did not answer: ' + e.message);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var token = field('token') ? field('token').value.trim() : '';
    var user = field('username') ? field('username').value.trim() : '';
    var pass = field('password') ? field('password').value : '';
    if (token) {
      signIn({ token: token });
    } else if (user && pass) {
      signIn({ username: user, password: pass });
    } else if (field('username') && field('token')) {
      showError('Enter a username and password, or the admin token.');
    } else if (field('token')) {
      showError('Enter the admin token.');
    } else {
      showError('Enter your username and password.');
    }
  });

  var m = /^#token=([^&]+)/.exec(location.hash);
  if (m) {
    history.replaceState(null, '', location.pathname + '#/live');
    route = '#/live';
    var t = decodeURIComponent(m[1]);
    if (field('token')) field('token').value = t;
    signIn({ token: t });
  } else {
    (field('username') || field('token')).focus();
  }
})();
