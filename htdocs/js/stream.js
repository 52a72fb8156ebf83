// Stream health: who holds the Genesys Cloud notification stream, its
// channels (by their opaque labels), whether it is connected, the last event
// and the reconnects (GET api/v1/stream), refreshed every 5 s.

import { h, fill, timeEl } from './dom.js';
import { get } from './api.js';
import { localDateTime, ago } from './fmt.js';
import { showError } from './ui.js';

const REFRESH_MS = 5000;
let els = {};
let timer = null;
let active = false;

export function mount(section) {
    els = {
        error: h('div', { class: 'error', role: 'alert', hidden: true }),
        body: h('div', { id: 'stream-body', 'aria-live': 'off' }, h('p', { class: 'loading' }, 'Loading…')),
        updated: h('p', { class: 'muted small' }),
    };
    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-stream', tabindex: '-1' }, 'Stream health'),
            h('button', { type: 'button', class: 'secondary', id: 'stream-refresh', onclick: refresh }, 'Refresh')),
        h('p', { class: 'hint' }, 'One Apache child holds the notification stream from Genesys Cloud for the ' +
            'whole server. This page refreshes every 5 seconds.'),
        els.error, els.body, els.updated);
}

export function show() {
    active = true;
    refresh();
}

export function hide() {
    active = false;
    clearTimeout(timer);
}

async function refresh() {
    clearTimeout(timer);
    try {
        const r = await get('stream');
        showError(els.error, null);
        render(r.body);
        els.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
        showError(els.error, e, 'Could not read the stream status:');
    }
    if (active) timer = setTimeout(refresh, REFRESH_MS);
}

function yesNo(ok, yes, no) {
    return h('span', { class: `badge ${ok ? 'good' : 'bad'}` }, ok ? yes : no);
}

function render(s) {
    const now = Date.now();
    const holder = s.holder;
    const facts = [
        ['Stream', s.enabled ? 'On (GcmonStream On)' : 'Off (GcmonStream Off)'],
        ['Connected', yesNo(s.connected, 'Connected', 'Not connected')],
        ['Holder', holder ? `${holder.host}, process ${holder.pid}` : 'none'],
        ['Holder since', holder ? [timeEl(holder.since, localDateTime(holder.since)), ` (${ago(holder.since, now)})`] : '—'],
        ['Agents monitored', String(s.agents_monitored ?? '—')],
        ['Last event', s.last_event_at ? [timeEl(s.last_event_at, localDateTime(s.last_event_at)),
            ` (${ago(s.last_event_at, now)})`] : 'none yet'],
        ['Events received', String(s.events_total ?? '—')],
        ['Reconnects', String(s.reconnects_total ?? '—')],
        ['Last error', s.last_error ? [s.last_error, s.last_error_at ? [' — ', timeEl(s.last_error_at, localDateTime(s.last_error_at))] : '']
            : 'none'],
    ];
    const channels = s.channels || [];
    fill(els.body,
        h('dl', { class: 'facts wide', id: 'stream-facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { fact: k } }, v)])),
        h('h3', {}, 'Channels'),
        channels.length
            ? h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'channels-table' },
                h('caption', { class: 'sr-only' }, 'Notification channels'),
                h('thead', {}, h('tr', {}, ['Channel', 'Topics', 'Expires', 'Connected'].map((t) => h('th', { scope: 'col' }, t)))),
                h('tbody', {}, channels.map((c) => h('tr', {},
                    h('td', { class: 'mono' }, c.id),
                    h('td', {}, String(c.topics)),
                    h('td', {}, timeEl(c.expires, localDateTime(c.expires))),
                    h('td', {}, yesNo(c.connected, 'Connected', 'Not connected')))))))
            : h('p', { class: 'empty' }, 'No channel.'));
}
