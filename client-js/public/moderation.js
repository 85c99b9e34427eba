// moderation.js — an instructor's buttons on the lecture-room page: remove a
// message, mute its sender for ten minutes, mute or kick someone present.
// Each is a SEND to /control/<room> (room.redact, room.mute, room.kick of
// client-js), answered by a RECEIPT once it took effect on every server.
// Only instructors and admins see the buttons; the server refuses anyone
// else whatever they send (docs/protocol.md, "Moderation").

const MUTE_S = 600;

/** Does this role get the buttons? */
export const canModerate = (role) => role === 'instructor' || role === 'admin';

function button(label, cls, act) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `mod ${cls}`;
  b.textContent = label;
  b.addEventListener('click', async (e) => {
    e.stopPropagation();
    b.disabled = true;
    try {
      const done = await act();
      b.textContent = done || label;
      b.classList.add('done');
    } catch (err) {
      b.textContent = `${label} failed`;
      b.title = err.message;
      b.disabled = false;
    }
  });
  return b;
}

/** The buttons of chat line `li` for message m: not for our own lines, nor for
 * a line already removed. ctx: {room, self}, read when a button is clicked. */
export function messageButtons(li, m, ctx) {
  if (!m.id || m.redacted || !m.sender || m.sender === ctx.self) return;
  const box = document.createElement('span');
  box.className = 'mods';
  box.append(button('Remove', 'remove', async () => { await ctx.room.redact(m.id); return 'Removed'; }),
    button('Mute', 'mute', async () => {
      await ctx.room.mute(m.sender, { durationS: MUTE_S });
      return 'Muted';
    }));
  li.append(box);
}

/** The buttons of a line of the people list, for member {id, name}. */
export function personButtons(li, member, ctx) {
  if (member.id === ctx.self) return;
  const box = document.createElement('span');
  box.className = 'mods';
  box.append(button('Mute', 'mute', async () => {
    await ctx.room.mute(member.id, { durationS: MUTE_S });
    return 'Muted';
  }), button('Kick', 'kick', async () => {
    await ctx.room.kick(member.id, { reason: 'removed by the instructor' });
    return 'Kicked';
  }));
  li.append(box);
}
