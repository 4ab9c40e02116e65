// The anchor console's sales: the room's sales list (GET /api/v1/rooms/{room}/sales with
// the anchor token; loaded on each join, reloaded after sale broadcasts and the anchor's
// own actions, and on the page's 5 s timer while it is visible), each sale's row with its
// state, stock and Drop link / Drop again and Close sale (a second click confirms)
// buttons, the "Units sold" counter, and the "3, 2, 1" countdown on the preview that ends
// at a dropped link's server-time `reveal_at`.
//
// It owns the sales list, the link status and sales hint lines, the sold counter and the
// preview countdown. Everything else on the page reaches it through `createAnchorSales`'s
// return value.

import { describeError, el, formatCount, formatPrice, hint, httpError } from './common.js';

const SALE_STATE_LABEL = { scheduled: 'Scheduled', open: 'Open', sold_out: 'Sold out', ended: 'Ended' };

/**
 * Starts the sales side of the anchor console.
 *
 * - `room`, `token`: the room id and the anchor token (for the sales request).
 * - `st`: the page state. Read only: `joined`, `roomState`.
 * - `lockstep`: the test hooks. Written: `sales` (each sale as last rendered), `sold`
 *   (units sold per sale), `soldTotal`, `lastLink`.
 * - `ui`: `{sales, salesHint, linkStatus, sold, countdown}`.
 * - `channel`: the room WebSocket as used here: `control(cmd, fields)` (resolves with the
 *   reply, or `null` when none came), `serverNow()` (server time, ms since the epoch) and
 *   `clockOffsetMs()` (server time minus client time).
 *
 * Returns `{load, refresh, onLink, onSaleStock, onSale}`: `load()` fetches the sales now
 * (one request at a time), `refresh()` redraws every row after `st.joined` or
 * `st.roomState` changed, `onLink(card)` for a broadcast `link`, `onSaleStock(saleId,
 * remaining)` for ticks' stock, `onSale(msg)` for `sale` messages.
 */
export function createAnchorSales({ room, token, st, lockstep, ui, channel }) {
  /** The room's sales by id, as last known. */
  const sales = new Map();
  /** Each sale's row in the list: `{node, title, state, price, remaining, sold, reveal, drop, close}`. */
  const rows = new Map();
  let loadingSales = null;
  let reloadTimer = null;
  let countdownTimer = null;

  function soldOf(sale) {
    return Math.max(0, (sale.allotted || 0) - (sale.remaining || 0));
  }

  function renderCounters() {
    let sold = 0;
    for (const sale of sales.values()) {
      lockstep.sold[sale.id] = soldOf(sale);
      sold += soldOf(sale);
    }
    lockstep.soldTotal = sold;
    ui.sold.textContent = formatCount(sold);
  }

  function saleRow(sale) {
    let row = rows.get(sale.id);
    if (row) return row;
    const node = el('li', { class: 'sale', dataset: { testid: 'sale', saleId: sale.id } });
    const title = el('div', { class: 'title' });
    const state = el('span', { class: 'state', dataset: { testid: 'sale-state' } });
    const price = el('span');
    const remaining = el('strong', { dataset: { testid: 'remaining' } });
    const sold = el('strong', { dataset: { testid: 'sold' } });
    const reveal = el('span', { dataset: { testid: 'reveal' } });
    const drop = el('button', { type: 'button', class: 'primary small', dataset: { testid: 'drop-link' }, text: 'Drop link' });
    const close = el('button', { type: 'button', class: 'danger small', dataset: { testid: 'close-sale' }, text: 'Close sale' });
    node.append(
      title, state,
      el('div', { class: 'meta' }, price, el('span', {}, 'Remaining ', remaining), el('span', {}, 'Sold units ', sold), reveal),
      el('div', { class: 'actions' }, drop, close),
    );
    drop.addEventListener('click', () => dropLink(sale.id));
    let closeArmed = null;
    close.addEventListener('click', () => {
      if (!closeArmed) {
        close.textContent = 'Confirm close';
        closeArmed = setTimeout(() => { closeArmed = null; close.textContent = 'Close sale'; }, 4000);
        return;
      }
      clearTimeout(closeArmed);
      closeArmed = null;
      close.textContent = 'Close sale';
      closeSale(sale.id);
    });
    row = { node, title, state, price, remaining, sold, reveal, drop, close };
    rows.set(sale.id, row);
    ui.sales.append(node);
    return row;
  }

  function renderSale(sale) {
    const row = saleRow(sale);
    row.title.textContent = sale.title || sale.sku_id || sale.id;
    row.state.dataset.state = sale.state;
    row.state.textContent = SALE_STATE_LABEL[sale.state] || sale.state;
    row.price.textContent = sale.sale_price_cents !== undefined ? formatPrice(sale.sale_price_cents) : '';
    row.remaining.textContent = `${sale.remaining} / ${sale.allotted}`;
    row.sold.textContent = String(soldOf(sale));
    row.reveal.textContent = sale.reveal_at ? `Link at ${new Date(sale.reveal_at - channel.clockOffsetMs()).toLocaleTimeString()}` : '';
    const usable = st.joined && st.roomState !== 'ended';
    row.drop.disabled = !usable || sale.state === 'ended';
    row.drop.textContent = sale.state === 'scheduled' ? 'Drop link' : 'Drop again';
    row.close.disabled = !usable || sale.state === 'ended';
    lockstep.sales[sale.id] = { ...sale };
  }

  function refresh() {
    for (const sale of sales.values()) renderSale(sale);
  }

  function upsertSale(sale) {
    const merged = { ...(sales.get(sale.id) || {}), ...sale };
    sales.set(sale.id, merged);
    renderSale(merged);
    renderCounters();
  }

  /** Fetches the room's sales (anchor token). */
  async function load() {
    if (loadingSales) return loadingSales;
    loadingSales = (async () => {
      try {
        const resp = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/sales`, {
          headers: { Authorization: `Bearer ${token}` },
          cache: 'no-store',
        });
        if (!resp.ok) {
          hint(ui.salesHint, `Sales unavailable: ${describeError(await httpError(resp))}`, true);
          return;
        }
        const body = await resp.json();
        for (const sale of body.sales || []) upsertSale(sale);
        hint(ui.salesHint, sales.size ? '' : 'No sales in this room yet.');
      } catch (e) {
        hint(ui.salesHint, `Sales unavailable: ${e.message}`, true);
      } finally {
        loadingSales = null;
      }
    })();
    return loadingSales;
  }

  function reloadSalesSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 300);
  }

  async function dropLink(saleId) {
    hint(ui.salesHint, '');
    const reply = await channel.control('drop_link', { sale_id: saleId });
    if (reply?.type === 'error') hint(ui.salesHint, `Drop link: ${describeError(reply)}`, true);
    reloadSalesSoon();
  }

  async function closeSale(saleId) {
    hint(ui.salesHint, '');
    const reply = await channel.control('close_sale', { sale_id: saleId });
    if (reply?.type === 'error') hint(ui.salesHint, `Close sale: ${describeError(reply)}`, true);
    reloadSalesSoon();
  }

  /** The anchor sees the same "3, 2, 1" as the viewers, on the preview. */
  function onLink(card) {
    lockstep.lastLink = card;
    const sale = sales.get(card.sale_id);
    upsertSale({
      id: card.sale_id, title: sale?.title || card.title, sku_id: card.sku_id,
      state: sale && sale.state !== 'scheduled' ? sale.state : 'open',
      allotted: card.allotted, remaining: card.remaining, price_cents: card.price_cents,
      sale_price_cents: card.sale_price_cents, reveal_at: card.reveal_at,
    });
    const tick = () => {
      clearTimeout(countdownTimer);
      const wait = card.reveal_at - channel.serverNow();
      if (wait <= 0) {
        ui.countdown.hidden = true;
        hint(ui.linkStatus, `Link live: ${card.title}`);
        return;
      }
      const digit = String(Math.ceil(wait / 1000));
      if (ui.countdown.textContent !== digit) ui.countdown.replaceChildren(el('span', { text: digit }));
      ui.countdown.hidden = false;
      hint(ui.linkStatus, `Link for ${card.title} in ${digit}…`);
      countdownTimer = setTimeout(tick, Math.min(wait, wait % 1000 || 1000));
    };
    tick();
    reloadSalesSoon();
  }

  /** A tick's stock for one sale; a sale not listed yet reloads the list. */
  function onSaleStock(saleId, remaining) {
    if (sales.has(saleId)) upsertSale({ id: saleId, remaining });
    else reloadSalesSoon();
  }

  /** A `sale` message (state or stock changed); the list is reloaded either way. */
  function onSale(msg) {
    if (sales.has(msg.sale_id)) upsertSale({ id: msg.sale_id, state: msg.state, remaining: msg.remaining });
    reloadSalesSoon();
  }

  return { load, refresh, onLink, onSaleStock, onSale };
}
