// The example app's script: served by tapwork from examples/app/public
// (handler: static, precompressed variants beside it), not by Node.
'use strict';
async function loadNotes() {
  const r = await fetch('/api/notes');
  const notes = await r.json();
  const ul = document.querySelector('ul.notes');
  if (!ul) return;
  ul.replaceChildren(...notes.map((n) => {
    const li = document.createElement('li');
    li.textContent = n.body;
    return li;
  }));
}
document.addEventListener('DOMContentLoaded', () => {
  const form = document.querySelector('form.new-note');
  if (form) {
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = form.querySelector('input').value;
      await fetch('/api/notes', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ body }) });
      form.reset();
      loadNotes();
    });
  }
  loadNotes();
});
