// The anchor console's comments and moderation: the comment list (the welcome's recent
// comments, then each tick's; the oldest dropped past 300), each comment's Pin, Mute 5 min
// and Ban (a second click confirms) buttons, the pinned comment with its Unpin button, and
// the removal of a user's comments when the server clears them.
//
// It owns the comment list, the pinned comment box and the moderation hint line.
// Everything else on the page reaches it through `createAnchorModeration`'s return value.

import { describeError, el, hint } from './common.js';

const MAX_COMMENTS = 300;
const MUTE_SECONDS = 300;

/**
 * Starts the comments side of the anchor console.
 *
 * - `ui`: `{comments, pinned, pinnedText, unpin, moderationHint}`.
 * - `control(cmd, fields)`: sends a control command; resolves with the reply, or `null`
 *   when none came.
 *
 * Returns `{onWelcome, addComments, setPinned, onModeration}`: `onWelcome(snap)` after
 * each (re)join (the room snapshot's recent comments and pinned comment replace what is
 * shown), `addComments(list)` for ticks' comments, `setPinned(comment)` for `pinned`
 * messages (null unpins), `onModeration(msg)` for `moderation` messages.
 */
export function createAnchorModeration({ ui, control }) {
  /** The comments shown, by id. */
  const comments = new Map();

  function setPinned(c) {
    ui.pinned.hidden = !c;
    ui.pinnedText.replaceChildren();
    if (c) ui.pinnedText.append(el('strong', { text: `${c.name}: ` }), c.text);
  }

  async function moderate(cmd, fields, done) {
    const reply = await control(cmd, fields);
    if (reply?.type === 'error') hint(ui.moderationHint, describeError(reply), true);
    else if (done) hint(ui.moderationHint, done);
  }

  function commentItem(c) {
    const actions = el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'small', dataset: { testid: 'pin' }, text: 'Pin',
        onclick: () => moderate('pin', { comment_id: c.id }) }));
    if (!c.anchor) {
      actions.append(
        el('button', { type: 'button', class: 'small', dataset: { testid: 'mute' }, text: 'Mute 5 min',
          onclick: () => moderate('mute', { user: c.user, seconds: MUTE_SECONDS }, `Muted ${c.name} for 5 minutes.`) }),
      );
      const ban = el('button', { type: 'button', class: 'small danger', dataset: { testid: 'ban' }, text: 'Ban' });
      let armed = null;
      ban.addEventListener('click', () => {
        if (!armed) {
          ban.textContent = `Ban ${c.name}?`;
          armed = setTimeout(() => { armed = null; ban.textContent = 'Ban'; }, 4000);
          return;
        }
        clearTimeout(armed);
        armed = null;
        ban.textContent = 'Ban';
        moderate('ban', { user: c.user }, `Banned ${c.name}.`);
      });
      actions.append(ban);
    }
    return el('li', { class: c.anchor ? 'anchor' : null, dataset: { user: c.user, commentId: String(c.id) } },
      el('span', { class: 'who', text: c.anchor ? `${c.name} · you` : c.name }), c.text, actions);
  }

  function addComments(list) {
    const box = ui.comments;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    for (const c of list) {
      if (comments.has(c.id)) continue;
      comments.set(c.id, c);
      box.append(commentItem(c));
    }
    while (box.children.length > MAX_COMMENTS) {
      const first = box.firstElementChild;
      comments.delete(Number(first.dataset.commentId));
      first.remove();
    }
    if (nearBottom) box.scrollTop = box.scrollHeight;
  }

  function onWelcome(snap) {
    ui.comments.replaceChildren();
    comments.clear();
    addComments(snap.recent_comments || []);
    setPinned(snap.pinned);
  }

  function onModeration(msg) {
    if (msg.action === 'comments_cleared') {
      for (const li of ui.comments.querySelectorAll('li[data-user]')) if (li.dataset.user === msg.user) li.remove();
    }
  }

  ui.unpin.addEventListener('click', () => moderate('unpin'));

  return { onWelcome, addComments, setPinned, onModeration };
}
