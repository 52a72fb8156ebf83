// The live board: a tile per agent (colour + state label, name, a running
// time-in-state clock, the open idle alert), counts per state and per queue,
// filters (state, queue, name, alerts only), sorting, and the wallboard mode.

import { h, fill, $, timeEl } from './dom.js';
import { board } from './boardmodel.js';
import { STATES, stateInfo, QUEUE_COLUMNS } from './states.js';
import { clock, duration, localDateTime, localTime } from './fmt.js';
import { hashFor, isKiosk, replaceParams, setKiosk } from './nav.js';

const SORTS = [
    ['name', 'Name'],
    ['longest', 'Longest in state first'],
    ['shortest', 'Shortest in state first'],
    ['state', 'State'],
];
const STATE_ORDER = new Map(STATES.map(([s], i) => [s, i]));
const NO_QUEUE = '-';

let root;
let els = {};
const tiles = new Map();          // user_id → {li, btn, name, label, clock, badge, key}
let order = [];                    // user ids in the order the tiles are in the DOM
let filters = { state: '', queue: '', q: '', sort: 'name', alerts: '' };
let unsubscribe = null;
let ticker = null;
let dialogAgent = null;
let dirty = true;                 // render everything on the next poll, even a 304

export function mount(section) {
    root = section;
    const stateSel = h('select', { id: 'f-state', name: 'state' },
        h('option', { value: '' }, 'All states'),
        STATES.map(([s]) => h('option', { value: s }, stateInfo(s).label)));
    const queueSel = h('select', { id: 'f-queue', name: 'queue' }, h('option', { value: '' }, 'All queues'));
    const search = h('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'Name', autocomplete: 'off' });
    const sortSel = h('select', { id: 'f-sort', name: 'sort' },
        SORTS.map(([v, t]) => h('option', { value: v }, t)));
    const alertsOnly = h('input', { id: 'f-alerts', name: 'alerts', type: 'checkbox' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter agents',
        onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'field' }, h('label', { for: 'f-state' }, 'State'), stateSel),
    h('div', { class: 'field' }, h('label', { for: 'f-queue' }, 'Queue'), queueSel),
    h('div', { class: 'field' }, h('label', { for: 'f-q' }, 'Search by name'), search),
    h('div', { class: 'field' }, h('label', { for: 'f-sort' }, 'Sort'), sortSel),
    h('div', { class: 'field check' }, alertsOnly, h('label', { for: 'f-alerts' }, 'Only agents with an alert')),
    h('div', { class: 'field actions' },
        h('button', { type: 'button', id: 'f-clear', class: 'secondary', onclick: clearFilters }, 'Clear filters'),
        h('button', { type: 'button', id: 'kiosk-on', class: 'secondary', onclick: () => setKiosk(true) },
            'Wallboard mode')));
    for (const el of [stateSel, queueSel, sortSel, alertsOnly]) el.addEventListener('change', readFilters);
    search.addEventListener('input', readFilters);

    const dialog = buildDialog();
    els = {
        form, stateSel, queueSel, search, sortSel, alertsOnly, dialog,
        counts: h('ul', { class: 'counts', 'aria-label': 'Agents per state' }),
        queues: h('div', { class: 'queue-activity' }),
        shown: h('p', { class: 'shown', id: 'board-shown', 'aria-live': 'polite' }),
        tiles: h('ul', { class: 'tiles', id: 'tiles', 'aria-label': 'Agents', 'aria-busy': 'true' }),
        empty: h('p', { class: 'empty', id: 'board-empty', hidden: true }),
        error: h('p', { class: 'error', role: 'alert', hidden: true }),
        kioskBar: h('div', { class: 'kiosk-bar' },
            h('span', { class: 'kiosk-filter' }),
            h('span', { class: 'kiosk-clock', 'aria-hidden': 'true' }),
            h('button', { type: 'button', class: 'secondary small', id: 'kiosk-off',
                onclick: () => setKiosk(false) }, 'Exit wallboard (Esc)')),
    };
    fill(root,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-board', tabindex: '-1' }, 'Live board'), els.kioskBar),
        els.error,
        els.counts,
        h('details', { class: 'queue-box', open: true },
            h('summary', {}, 'Queue activity'), els.queues),
        form,
        els.shown,
        h('p', { class: 'loading', id: 'board-loading' }, 'Loading the board…'),
        els.tiles,
        els.empty,
        dialog);
}

export function show(params) {
    filters = {
        state: params.get('state') || '',
        queue: params.get('queue') || '',
        q: params.get('q') || '',
        sort: SORTS.some(([v]) => v === params.get('sort')) ? params.get('sort') : 'name',
        alerts: params.get('alerts') === '1' ? '1' : '',
    };
    els.stateSel.value = filters.state;
    els.search.value = filters.q;
    els.sortSel.value = filters.sort;
    els.alertsOnly.checked = filters.alerts === '1';
    if (!unsubscribe) unsubscribe = board.subscribe(render);
    board.start();
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
    dirty = true;
    render(true);
}

export function hide() {
    board.stop();
    if (unsubscribe) unsubscribe();
    unsubscribe = null;
    clearInterval(ticker);
    if (els.dialog.open) els.dialog.close();
}

export function onKiosk(on) {
    els.form.hidden = on;
    if (on && els.dialog.open) els.dialog.close();
    describeKioskFilter();
    tick();
}

function readFilters() {
    filters = {
        state: els.stateSel.value,
        queue: els.queueSel.value,
        q: els.search.value,
        sort: els.sortSel.value,
        alerts: els.alertsOnly.checked ? '1' : '',
    };
    replaceParams('board', filters);
    renderCounts();             // the pressed state button
    applyFilters();
    describeKioskFilter();
}

function clearFilters() {
    els.stateSel.value = '';
    els.queueSel.value = '';
    els.search.value = '';
    els.alertsOnly.checked = false;
    readFilters();
}

function setStateFilter(state) {
    els.stateSel.value = filters.state === state ? '' : state;
    readFilters();
}

// ------------------------------------------------------------------ render

function render(changed) {
    if (board.error) {
        els.error.hidden = false;
        els.error.textContent = `The board is not updating: ${board.error.message}`;
    } else {
        els.error.hidden = true;
    }
    if (!board.loaded) return;
    $('#board-loading', root).hidden = true;
    els.tiles.removeAttribute('aria-busy');
    // A 304 (changed === false) leaves everything as it is; the clocks tick on their own.
    if (changed === false && !dirty) return;
    dirty = false;
    syncTiles();
    renderCounts();
    renderQueues();
    applyFilters();
    describeKioskFilter();
}

function tileKey(a) {
    return [a.user_name, a.state, a.since, a.alert && a.alert.id, a.alert && a.alert.threshold_seconds].join('\u0000');
}

function syncTiles() {
    for (const [id, t] of tiles) {
        if (!board.agents.has(id)) {
            t.li.remove();
            tiles.delete(id);
        }
    }
    order = order.filter((id) => tiles.has(id));
    for (const a of board.agents.values()) {
        let t = tiles.get(a.user_id);
        if (!t) {
            t = makeTile(a);
            tiles.set(a.user_id, t);
            els.tiles.append(t.li);
            order.push(a.user_id);
        }
        const key = tileKey(a);
        if (t.key !== key) updateTile(t, a, key);
    }
}

function makeTile(a) {
    const t = {
        name: h('span', { class: 'name' }),
        label: h('span', { class: 'state' }),
        clock: h('span', { class: 'clock' }),
        badge: h('span', { class: 'badge alert-badge', hidden: true }),
    };
    t.btn = h('button', { type: 'button', class: 'tile-btn', 'aria-haspopup': 'dialog',
        onclick: () => openDialog(a.user_id) },
    t.name,
    h('span', { class: 'row' }, t.label, h('span', { class: 'in-state' }, h('span', { class: 'sr-only' }, 'time in state '), t.clock)),
    t.badge);
    t.li = h('li', { class: 'tile', dataset: { id: a.user_id } }, t.btn);
    return t;
}

function updateTile(t, a, key) {
    const info = stateInfo(a.state);
    t.key = key;
    t.agent = a;
    t.li.className = `tile ${info.cls}${a.alert ? ' has-alert' : ''}`;
    t.li.dataset.state = a.state || '';
    t.name.textContent = a.user_name || a.user_id;
    t.name.title = t.name.textContent;
    t.label.textContent = info.label;
    t.clock.title = a.since ? `In this state since ${localDateTime(a.since)} (${a.since} UTC)` : 'Since unknown';
    if (a.alert) {
        t.badge.hidden = false;
        t.badge.textContent = `Alert: over ${duration(a.alert.threshold_seconds)}`;
        t.badge.title = `Idle alert raised at ${localDateTime(a.alert.raised_at)} (${a.alert.raised_at} UTC)`;
    } else {
        t.badge.hidden = true;
        t.badge.textContent = '';
    }
    t.clock.textContent = clock(board.secondsInState(a));
}

function tick() {
    for (const t of tiles.values()) {
        if (!t.li.hidden && t.agent) t.clock.textContent = clock(board.secondsInState(t.agent));
    }
    const kc = $('.kiosk-clock', root);
    if (kc && isKiosk()) kc.textContent = localTime(new Date(board.now()).toISOString());
    if (dialogAgent && els.dialog.open) {
        const a = board.agents.get(dialogAgent);
        if (a) $('#dlg-clock', els.dialog).textContent = clock(board.secondsInState(a));
    }
}

function matches(a) {
    if (filters.state && a.state !== filters.state) return false;
    if (filters.queue) {
        const qs = a.queue_ids || [];
        if (filters.queue === NO_QUEUE ? qs.length > 0 : !qs.includes(filters.queue)) return false;
    }
    if (filters.alerts && !a.alert) return false;
    if (filters.q) {
        const name = (a.user_name || a.user_id).toLocaleLowerCase();
        if (!name.includes(filters.q.trim().toLocaleLowerCase())) return false;
    }
    return true;
}

function compare(a, b) {
    const byName = (a.user_name || a.user_id).localeCompare(b.user_name || b.user_id) ||
        a.user_id.localeCompare(b.user_id);
    const since = (x) => (x.since ? Date.parse(x.since) : Infinity);
    switch (filters.sort) {
    case 'longest': return since(a) - since(b) || byName;
    case 'shortest': return since(b) - since(a) || byName;
    case 'state': return (STATE_ORDER.get(a.state) ?? 99) - (STATE_ORDER.get(b.state) ?? 99) || byName;
    default: return byName;
    }
}

function applyFilters() {
    const agents = Array.from(board.agents.values());
    const visible = agents.filter(matches).sort(compare);
    const want = visible.map((a) => a.user_id);
    const shown = new Set(want);
    for (const [id, t] of tiles) t.li.hidden = !shown.has(id);
    // Reorder only when the visible order changed (cheap on a quiet board).
    const currentVisible = order.filter((id) => shown.has(id));
    if (currentVisible.join('\n') !== want.join('\n')) {
        for (const id of want) els.tiles.append(tiles.get(id).li);
        order = want.concat(order.filter((id) => !shown.has(id)));
    }
    for (const a of visible) {
        const t = tiles.get(a.user_id);
        t.clock.textContent = clock(board.secondsInState(a));
    }
    const total = agents.length;
    els.shown.textContent = visible.length === total
        ? `${total} agent${total === 1 ? '' : 's'}`
        : `${visible.length} of ${total} agents shown`;
    els.empty.hidden = visible.length > 0;
    els.empty.textContent = total === 0
        ? 'No agents yet: gcmon has no current state for any agent. Check Stream health.'
        : 'No agent matches these filters.';
}

function renderCounts() {
    const counts = new Map();
    for (const a of board.agents.values()) counts.set(a.state, (counts.get(a.state) || 0) + 1);
    const items = [h('li', {}, h('button', { type: 'button', class: `count c-all${filters.state ? '' : ' on'}`,
        'aria-pressed': String(!filters.state), onclick: () => setStateFilter('') },
    h('span', { class: 'n' }, String(board.agents.size)), h('span', { class: 'l' }, 'All agents')))];
    for (const [s] of STATES) {
        const n = counts.get(s) || 0;
        if (!n && filters.state !== s) continue;
        const info = stateInfo(s);
        items.push(h('li', {}, h('button', { type: 'button', class: `count ${info.cls}${filters.state === s ? ' on' : ''}`,
            'aria-pressed': String(filters.state === s), dataset: { state: s },
            title: `Show only ${info.label}`, onclick: () => setStateFilter(s) },
        h('span', { class: 'n' }, String(n)), h('span', { class: 'l' }, info.label))));
    }
    for (const [s, n] of counts) {       // states this dashboard does not know yet
        if (STATE_ORDER.has(s)) continue;
        items.push(h('li', {}, h('span', { class: 'count c-unknown' },
            h('span', { class: 'n' }, String(n)), h('span', { class: 'l' }, s || 'Unknown'))));
    }
    fill(els.counts, items);
}

function queueIds() {
    const ids = new Set();
    let none = false;
    for (const a of board.agents.values()) {
        const qs = a.queue_ids || [];
        if (!qs.length) none = true;
        for (const q of qs) ids.add(q);
    }
    return { ids: Array.from(ids).sort(), none };
}

function renderQueues() {
    const { ids, none } = queueIds();
    // The queue filter's options follow the queues on the board.
    const sel = els.queueSel;
    const want = filters.queue;
    fill(sel, h('option', { value: '' }, 'All queues'),
        ids.map((q) => h('option', { value: q }, `Queue ${q}`)),
        none ? h('option', { value: NO_QUEUE }, 'In no monitored queue') : null,
        want && !ids.includes(want) && want !== NO_QUEUE ? h('option', { value: want }, `Queue ${want}`) : null);
    sel.value = want;

    const rows = ids.map((q) => [q, `Queue ${q}`]);
    if (none) rows.push([NO_QUEUE, 'In no monitored queue']);
    if (!rows.length) {
        fill(els.queues, h('p', { class: 'empty' }, 'No queues on the board yet.'));
        return;
    }
    const body = rows.map(([q, label]) => {
        const members = Array.from(board.agents.values()).filter((a) =>
            (q === NO_QUEUE ? !(a.queue_ids || []).length : (a.queue_ids || []).includes(q)));
        return h('tr', { dataset: { queue: q } },
            h('th', { scope: 'row' }, h('a', { href: hashFor('board', { ...filters, queue: q }),
                class: 'queue-link', title: `Show only the agents of ${label}` }, label)),
            h('td', {}, String(members.length)),
            QUEUE_COLUMNS.map(([key, , pred]) => h('td', { dataset: { col: key } },
                String(members.filter(pred).length))));
    });
    fill(els.queues, h('div', { class: 'table-wrap' }, h('table', { class: 'queues' },
        h('caption', { class: 'sr-only' }, 'Agents per queue and state'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'Members'),
            QUEUE_COLUMNS.map(([key, head]) => h('th', { scope: 'col', dataset: { col: key } }, head)))),
        h('tbody', {}, body))));
}

function describeKioskFilter() {
    const el = $('.kiosk-filter', root);
    if (!el) return;
    const parts = [];
    if (filters.queue) parts.push(filters.queue === NO_QUEUE ? 'In no monitored queue' : `Queue ${filters.queue}`);
    if (filters.state) parts.push(stateInfo(filters.state).label);
    if (filters.q) parts.push(`name contains “${filters.q}”`);
    if (filters.alerts) parts.push('with an alert');
    el.textContent = parts.length ? parts.join(' · ') : 'All agents';
}

// ------------------------------------------------------------------ dialog

function buildDialog() {
    const d = h('dialog', { id: 'agent-dialog', 'aria-labelledby': 'dlg-name' });
    d.addEventListener('close', () => { dialogAgent = null; });
    // A click on the backdrop closes it too.
    d.addEventListener('click', (e) => { if (e.target === d) d.close(); });
    return d;
}

function openDialog(id) {
    const a = board.agents.get(id);
    if (!a) return;
    dialogAgent = id;
    const info = stateInfo(a.state);
    const kiosk = isKiosk();
    const queues = a.queue_ids || [];
    fill(els.dialog, h('form', { method: 'dialog', class: 'dialog-body' },
        h('h3', { id: 'dlg-name' }, a.user_name || a.user_id),
        h('p', { class: `state-pill ${info.cls}` }, info.label),
        h('dl', { class: 'facts' },
            h('dt', {}, 'Time in state'), h('dd', { id: 'dlg-clock' }, clock(board.secondsInState(a))),
            h('dt', {}, 'Since'), h('dd', {}, timeEl(a.since, localDateTime(a.since))),
            h('dt', {}, 'Presence'), h('dd', {}, a.presence_label ? `${a.presence_label} (${a.presence})` : (a.presence || '—')),
            h('dt', {}, 'Routing status'), h('dd', {}, a.routing_status || '—'),
            h('dt', {}, 'Queues'), h('dd', {}, queues.length ? queues.join(', ') : 'none'),
            Array.isArray(a.active_queue_ids)
                ? [h('dt', {}, 'Active on'), h('dd', {}, a.active_queue_ids.length ? a.active_queue_ids.join(', ') : 'none')]
                : null,
            h('dt', {}, 'Idle alert'), h('dd', {}, a.alert
                ? [`over ${duration(a.alert.threshold_seconds)}, raised `, timeEl(a.alert.raised_at, localDateTime(a.alert.raised_at))]
                : 'none'),
            h('dt', {}, 'User id'), h('dd', { class: 'mono' }, a.user_id)),
        h('div', { class: 'dialog-actions' },
            h('a', { href: hashFor('history', { user_id: id }), class: 'button secondary' }, 'History'),
            kiosk ? null : h('a', { href: hashFor('admin', { user_id: id }), class: 'button secondary' }, 'Change status…'),
            h('button', { value: 'close', class: 'primary', autofocus: true }, 'Close'))));
    els.dialog.showModal();
}
