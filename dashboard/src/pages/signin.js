// Sign-in with an email one-time code (Supabase Auth): the code is sent only to an existing user
// (shouldCreateUser: false; sign-ups are off on the project anyway), then verified for a session.
import { errorBox, h, replace } from '../dom.js';

export function renderSignIn(supabase, main, onSignedIn) {
  const message = h('div', { class: 'message' });
  const emailInput = h('input', { type: 'email', id: 'email', name: 'email', required: true, autocomplete: 'email' });
  const codeInput = h('input', {
    type: 'text', id: 'code', name: 'code', inputmode: 'numeric', pattern: '[0-9]{6}', maxlength: '6',
    autocomplete: 'one-time-code', required: true,
  });
  const codeForm = h('form', { id: 'code-form', hidden: true },
    h('label', { for: 'code' }, 'The 6-digit code from the email'), codeInput,
    h('button', { type: 'submit' }, 'Sign in'));
  const emailForm = h('form', { id: 'email-form' },
    h('label', { for: 'email' }, 'Email'), emailInput, h('button', { type: 'submit' }, 'Send me a code'));

  emailForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    const { error } = await supabase.auth.signInWithOtp({
      email: emailInput.value.trim(),
      options: { shouldCreateUser: false },
    });
    if (error) {
      replace(message, errorBox(error));
      return;
    }
    replace(message, h('p', { class: 'muted' }, 'If this address may sign in, a code is on its way.'));
    codeForm.hidden = false;
    codeInput.focus();
  });

  codeForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    const { data, error } = await supabase.auth.verifyOtp({
      email: emailInput.value.trim(),
      token: codeInput.value.trim(),
      type: 'email',
    });
    if (error || !data.session) {
      replace(message, errorBox(error ?? new Error('No session')));
      return;
    }
    onSignedIn(data.session);
  });

  replace(main, h('section', { class: 'signin' }, h('h1', {}, 'Sign in'), emailForm, codeForm, message));
}
