/*
 * login.js - signs in without leaving the page when it can. The form also works without
 * JavaScript (a plain POST /login, after which the server answers as docs/dashboard.md
 * says). Here the POST goes through fetch; the server's answer sets the HttpOnly session
 * cookie, and one API call then tells whether the token was accepted, whatever status
 * or redirect the login answer itself used: 200 means in (back to the dashboard), 401
 * means a wrong token.
 */

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');
const submit = document.getElementById('login-submit');

function fail(text) {
  error.textContent = text;
  error.hidden = false;
  submit.disabled = false;
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  error.hidden = true;
  submit.disabled = true;
  try {
    await fetch('login', {
      method: 'POST',
      credentials: 'same-origin',
      body: new URLSearchParams(new FormData(form)),
      redirect: 'manual',
    });
    const check = await fetch('api/agents', { credentials: 'same-origin', cache: 'no-store' });
    if (check.ok) {
      location.replace('./');
    } else if (check.status === 401) {
      fail('this token was not accepted');
    } else {
      fail(`the server answered ${check.status}; try again in a moment`);
    }
  } catch (err) {
    fail(`cannot reach the server: ${err.message}`);
  }
});
