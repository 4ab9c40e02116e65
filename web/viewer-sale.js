// The viewer page's product link and buying: the product card, the "3, 2, 1" countdown
// that ends at the link's server-time `reveal_at` (when the card appears), the sale's
// stock and state, the Buy button and its orders (one idempotency key per purchase
// intent, resent unchanged after a reconnect), and the order outcome line.
//
// It owns the countdown, the product card and the order outcome elements. Everything
// else on the page reaches it through `createViewerSale`'s return value.

import { describeError, el, formatPrice, newKey, perfNow } from './common.js';

/**
 * Starts the sale side of the viewer page.
 *
 * - `st`: the page state. Read only: `you`, `final`.
 * - `lockstep`: the test hooks. Written: `link`, `linkShownAt`, `linkShownPerf`,
 *   `linkShownWall`, `countdownDigits`, `lastOrder`.
 * - `ui`: `{countdown, card, image, placeholder, productTitle, productDesc, attrs, price,
 *   listPrice, stock, remaining, stockLabel, buy, outcome}`.
 * - `channel`: the room WebSocket as used here: `send(msg)` (fire and forget; the
 *   card's funnel steps `shown` and `clicked` are reported with it), `request(msg)` (a promise of the reply
 *   carrying the same id; rejects when not connected), `serverNow()` (server time, ms
 *   since the epoch), `clockOffsetMs()` (server time minus `perfNow()`) and
 *   `resyncBefore(serverMs)` (a few more clock-sync exchanges before that moment).
 *
 * Returns `{onLink, onSaleStock, onWelcome, hideCountdown, refresh}`: `onLink(card)` for
 * the welcome's and broadcast `link`, `onSaleStock(saleId, remaining, state?)` for `sale`
 * messages and ticks' stock, `onWelcome()` after each (re)join to resend a pending order,
 * `hideCountdown()` to stop the countdown, `refresh()` to redraw the card after `st.you`
 * or `st.final` changed.
 */
export function createViewerSale({ st, lockstep, ui, channel }) {
  /** The current product link card, as last received. */
  let link = null;
  /** The current sale: `{state, remaining}`. */
  let sale = null;
  /** The order being sent or waiting for a reconnect: `{sale_id, key}`. */
  let orderPending = null;
  let revealTimer = null;

  function hideCountdown() {
    clearTimeout(revealTimer);
    ui.countdown.hidden = true;
    ui.countdown.replaceChildren();
  }

  function onLink(card) {
    const sameSale = link && link.sale_id === card.sale_id;
    link = card;
    lockstep.link = card;
    if (!sameSale) {
      // Exchanges made while the room was busy (say, during a join storm) may all have
      // been delayed; a few more in the quiet countdown pin the reveal to the clock.
      if (card.reveal_at > channel.serverNow()) channel.resyncBefore(card.reveal_at);
      sale = { state: 'open', remaining: card.remaining };
      lockstep.linkShownAt = null;
      lockstep.linkShownPerf = null;
      lockstep.linkShownWall = null;
      lockstep.countdownDigits = [];
      ui.outcome.hidden = true;
      ui.card.hidden = true;
    }
    fillCard(card);
    refresh();
    if (ui.card.hidden) revealTick();
  }

  /** Shows the countdown digit until `reveal_at`, then the card. Timers are re-armed at
   * each whole second before the reveal, so clock-offset updates are taken into account. */
  function revealTick() {
    clearTimeout(revealTimer);
    const card = link;
    if (!card || st.final) return;
    const wait = card.reveal_at - channel.serverNow();
    if (wait <= 0) {
      reveal();
      return;
    }
    const digit = String(Math.ceil(wait / 1000));
    if (ui.countdown.textContent !== digit) {
      ui.countdown.replaceChildren(el('span', { text: digit }));
      ui.countdown.setAttribute('aria-label', `Link in ${digit}`);
      lockstep.countdownDigits.push(digit);
    }
    ui.countdown.hidden = false;
    const toNextDigit = wait % 1000 || 1000;
    revealTimer = setTimeout(revealTick, Math.min(wait, toNextDigit));
  }

  function reveal() {
    hideCountdown();
    if (!ui.card.hidden) return;
    ui.card.hidden = false;
    if (link) channel.send({ type: 'funnel', sale_id: link.sale_id, step: 'shown' });
    const perf = perfNow();
    if (lockstep.linkShownAt === null) {
      lockstep.linkShownPerf = perf;
      lockstep.linkShownAt = perf + channel.clockOffsetMs();
      lockstep.linkShownWall = Date.now();
    }
    refresh();
  }

  function fillCard(card) {
    ui.productTitle.textContent = card.title;
    ui.productDesc.textContent = card.description || '';
    ui.productDesc.hidden = !card.description;
    ui.attrs.replaceChildren(...Object.entries(card.attributes || {}).map(([k, v]) => el('span', { text: `${k}: ${v}` })));
    ui.price.textContent = formatPrice(card.sale_price_cents);
    ui.listPrice.textContent = card.price_cents > card.sale_price_cents ? formatPrice(card.price_cents) : '';
    const src = typeof card.image_url === 'string' && /^(https?:)?\//.test(card.image_url) ? card.image_url : '';
    if (src && ui.image.getAttribute('src') !== src) {
      ui.image.hidden = true;
      ui.placeholder.hidden = false;
      ui.image.onload = () => { ui.image.hidden = false; ui.placeholder.hidden = true; };
      ui.image.onerror = () => { ui.image.hidden = true; ui.placeholder.hidden = false; };
      ui.image.src = src;
    } else if (!src) {
      ui.image.removeAttribute('src');
      ui.image.hidden = true;
      ui.placeholder.hidden = false;
    }
  }

  /** Redraws the stock line and the Buy button from the sale, the session and the
   * pending order. */
  function refresh() {
    const card = link;
    if (!card || !sale) return;
    const { state, remaining } = sale;
    ui.remaining.textContent = String(remaining);
    ui.stock.dataset.low = String(remaining > 0 && remaining <= Math.max(3, card.allotted / 10));
    ui.stockLabel.textContent = `left of ${card.allotted}` + (card.per_buyer_limit ? ` · max ${card.per_buyer_limit} per buyer` : '');
    const signedIn = !!(st.you && st.you.user);
    let label = 'Buy now';
    let enabled = true;
    if (st.final || state === 'ended') { label = 'Sale ended'; enabled = false; }
    else if (state === 'sold_out' || remaining === 0) { label = 'Sold out'; enabled = false; }
    else if (!signedIn) { label = 'Sign in to buy'; enabled = false; }
    else if (orderPending) { label = 'Reserving…'; enabled = false; }
    ui.buy.textContent = label;
    ui.buy.disabled = !enabled;
    ui.card.dataset.saleState = state;
  }

  function onSaleStock(saleId, remaining, state) {
    if (!link || link.sale_id !== saleId || !sale) return;
    if (typeof remaining === 'number') sale.remaining = remaining;
    if (state) sale.state = state;
    else if (sale.state === 'open' && sale.remaining === 0) sale.state = 'sold_out';
    refresh();
  }

  const OUTCOME_TEXT = {
    sold_out: () => 'Sold out: every unit is taken.',
    limit_exceeded: () => `You already hold the most units one buyer may (${link?.per_buyer_limit ?? 1}).`,
    not_open: () => 'Not open yet: wait for the countdown.',
    closed: () => 'This sale has ended.',
    invalid: (r) => r.message || 'The order was refused.',
  };

  function showOutcome(kind, text) {
    ui.outcome.hidden = false;
    ui.outcome.dataset.outcome = kind;
    ui.outcome.textContent = text;
  }

  function onOrderResult(r) {
    lockstep.lastOrder = r;
    if (r.type === 'error') {
      showOutcome('error', describeError(r));
    } else if (r.outcome === 'accepted') {
      let text = `Reserved! Order ${r.order_id}.`;
      if (r.expires_at) {
        const mins = Math.max(1, Math.round((r.expires_at - channel.serverNow()) / 60000));
        text += ` Pay within ${mins} min to keep it.`;
      }
      showOutcome('accepted', text);
    } else {
      showOutcome(r.outcome, (OUTCOME_TEXT[r.outcome] || ((x) => x.message || r.outcome))(r));
    }
    if (r.sale_id && typeof r.remaining === 'number') onSaleStock(r.sale_id, r.remaining);
  }

  /** Sends (or resends, after a reconnect) the pending order. Its key stays the same, so
   * a retry never reserves twice. */
  async function sendOrder() {
    const order = orderPending;
    if (!order) return;
    refresh();
    let reply;
    try {
      reply = await channel.request({ type: 'order', sale_id: order.sale_id, qty: 1, key: order.key });
    } catch {
      // Not connected or no answer: the next welcome resends with the same key.
      showOutcome('pending', 'Connection lost; your order will be retried…');
      return;
    }
    if (orderPending !== order) return;
    orderPending = null;
    onOrderResult(reply);
    refresh();
  }

  ui.buy.addEventListener('click', () => {
    if (!link || orderPending) return;
    channel.send({ type: 'funnel', sale_id: link.sale_id, step: 'clicked' });
    // One purchase intent, one key.
    orderPending = { sale_id: link.sale_id, key: newKey() };
    ui.outcome.hidden = true;
    sendOrder();
  });

  function onWelcome() {
    if (orderPending) sendOrder();
  }

  return { onLink, onSaleStock, onWelcome, hideCountdown, refresh };
}
