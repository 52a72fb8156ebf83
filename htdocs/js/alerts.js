// Alerts: the idle alerts gcmon raised (GET api/v1/alerts), open or cleared,
// with how their Slack delivery went; paged by cursor.

import { h, fill, timeEl } from './dom.js';
import { get } from './api.js';
import { STATES, stateInfo } from './states.js';
import { localDateTime, duration } from './fmt.js';
import { replaceParams } from './nav.js';
import { Pager, showError, showFieldErrors, fillAgentSelect, agentLabel, statePill } from './ui.js';

const DELIVERY = {
    pending: ['Pending', 'Waiting for its first or next attempt'],
    delivered: ['Delivered', 'The webhook answered 2xx'],
    failed: ['Failed', 'Given up after GcmonWebhookMaxAge'],
    disabled: ['Not sent', 'No GcmonSlackWebhook was configured when it was raised'],
};

let els = {};
let query = {};
let pager;

export function mount(section) {
    const user = h('select', { id: 'a-user', name: 'user_id' });
    const state = h('select', { id: 'a-state', name: 'state' }, h('option', { value: '' }, 'Any state'),
        STATES.map(([s]) => h('option', { value: s }, stateInfo(s).label)));
    const form = h('form', { class: 'filters', id: 'alerts-form', 'aria-label': 'Alert filters',
        onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('div', { class: 'field' }, h('label', { for: 'a-user' }, 'Agent'), user),
    h('div', { class: 'field' }, h('label', { for: 'a-state' }, 'State alerted on'), state),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary' }, 'Show'),
        h('button', { type: 'button', class: 'secondary', onclick: () => pager.fetch() }, 'Refresh')));
    els = {
        form, user, state,
        error: h('div', { class: 'error', role: 'alert', hidden: true }),
        summary: h('p', { class: 'summary', 'aria-live': 'polite' }),
        table: h('div', { class: 'table-wrap' }),
    };
    pager = new Pager('Alert pages', load, render);
    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-alerts', tabindex: '-1' }, 'Alerts')),
        h('p', { class: 'hint' }, 'Idle alerts, newest first: an agent stayed in a state longer than its ' +
            'GcmonIdleAlert threshold. An alert clears when the agent leaves that state.'),
        form, els.error, els.summary, els.table, pager.el);
}

export async function show(params) {
    query = { user_id: params.get('user_id') || '', state: params.get('state') || '', limit: 20 };
    els.state.value = query.state;
    await fillAgentSelect(els.user, query.user_id);
    run();
}

function submit() {
    query = { user_id: els.user.value, state: els.state.value, limit: 20 };
    replaceParams('alerts', { user_id: query.user_id, state: query.state });
    run();
}

function run() {
    showFieldErrors(els.form, null, {});
    pager.reset();
}

function load(cursor) {
    els.summary.textContent = 'Loading…';
    return get('alerts', cursor ? { ...query, cursor } : query).then((r) => r.body);
}

function render(body, first, err) {
    if (err) {
        els.summary.textContent = '';
        fill(els.table);
        showFieldErrors(els.form, err, { user_id: els.user, state: els.state });
        showError(els.error, err, 'Could not load the alerts:');
        return;
    }
    showError(els.error, null);
    if (!body.data.length) {
        els.summary.textContent = body.total ? 'No more alerts.' : 'No alerts.';
        fill(els.table, h('p', { class: 'empty' }, body.total ? '' : 'No idle alert matches these filters.'));
        return;
    }
    els.summary.textContent = `${body.total} alert${body.total === 1 ? '' : 's'}`;
    fill(els.table, h('table', { class: 'data', id: 'alerts-table' },
        h('caption', { class: 'sr-only' }, 'Idle alerts, newest first'),
        h('thead', {}, h('tr', {}, ['Raised', 'Agent', 'State', 'Threshold', 'Cleared', 'Delivery']
            .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, body.data.map((a) => {
            const [word, why] = DELIVERY[a.delivery && a.delivery.status] || [a.delivery ? a.delivery.status : '—', ''];
            const d = a.delivery || {};
            return h('tr', { dataset: { id: a.id } },
                h('td', {}, timeEl(a.raised_at, localDateTime(a.raised_at))),
                h('td', {}, agentLabel(a.user_id, a.user_name)),
                h('td', {}, statePill(a.state)),
                h('td', {}, duration(a.threshold_seconds)),
                h('td', {}, a.cleared_at ? timeEl(a.cleared_at, localDateTime(a.cleared_at))
                    : h('span', { class: 'badge open' }, 'Open')),
                h('td', { class: 'delivery' },
                    h('span', { class: `badge d-${d.status || 'unknown'}`, title: why }, word),
                    d.attempts ? ` ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}` : '',
                    d.last_error ? h('div', { class: 'muted small' }, `Last error: ${d.last_error}`) : null));
        }))));
}
