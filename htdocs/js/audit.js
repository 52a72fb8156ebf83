// Audit trail: every admin action (GET api/v1/admin/audit), newest first,
// paged by cursor, filtered by actor, action and target.

import { h, fill, timeEl } from './dom.js';
import { request } from './api.js';
import { localDateTime } from './fmt.js';
import { replaceParams } from './nav.js';
import { Pager, showError, showFieldErrors, fillAgentSelect, agentLabel } from './ui.js';

const SIZES = ['10', '20', '50', '100'];
const ACTIONS = [['', 'Any action'], ['agent_status_change', 'Agent status change'],
    ['upstream_check', 'Connection check']];

let els = {};
let query = {};
let pager;

export function mount(section) {
    const actor = h('input', { id: 'u-actor', name: 'actor', autocomplete: 'off', placeholder: 'user name or -' });
    const action = h('select', { id: 'u-action', name: 'action' }, ACTIONS.map(([v, t]) => h('option', { value: v }, t)));
    const target = h('select', { id: 'u-target', name: 'target' });
    const limit = h('select', { id: 'u-limit', name: 'limit' },
        SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
    const form = h('form', { class: 'filters', id: 'audit-form', 'aria-label': 'Audit filters',
        onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('div', { class: 'field' }, h('label', { for: 'u-actor' }, 'Actor'), actor),
    h('div', { class: 'field' }, h('label', { for: 'u-action' }, 'Action'), action),
    h('div', { class: 'field' }, h('label', { for: 'u-target' }, 'Agent'), target),
    h('div', { class: 'field' }, h('label', { for: 'u-limit' }, 'Page size'), limit),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary' }, 'Show')));
    els = {
        form, actor, action, target, limit,
        error: h('div', { class: 'error', role: 'alert', hidden: true }),
        summary: h('p', { class: 'summary', 'aria-live': 'polite' }),
        table: h('div', { class: 'table-wrap' }),
    };
    pager = new Pager('Audit pages', load, render);
    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-audit', tabindex: '-1' }, 'Audit trail')),
        h('p', { class: 'hint' }, 'Every admin action, who made it and how it ended, newest first.'),
        form, els.error, els.summary, els.table, pager.el);
}

export async function show(params) {
    query = { actor: params.get('actor') || '', action: params.get('action') || '', target: params.get('target') || '',
        limit: SIZES.includes(params.get('limit')) ? params.get('limit') : '20' };
    els.actor.value = query.actor;
    els.limit.value = query.limit;
    els.action.value = query.action;
    await fillAgentSelect(els.target, query.target, 'Any agent');
    run();
}

function submit() {
    query = { actor: els.actor.value.trim(), action: els.action.value, target: els.target.value, limit: els.limit.value };
    replaceParams('audit', query);
    run();
}

function run() {
    showFieldErrors(els.form, null, {});
    pager.reset();
}

function load(cursor) {
    els.summary.textContent = 'Loading…';
    return request('admin/audit', { query: cursor ? { ...query, cursor } : query }).then((r) => r.body);
}

function describeRequest(req) {
    if (!req || typeof req !== 'object') return '—';
    const parts = [];
    if (req.status) parts.push(`to ${req.status}`);
    if (req.reason) parts.push(`reason “${req.reason}”`);
    if (req.wrapup_code) parts.push(`wrap-up ${req.wrapup_code}`);
    if (req.if_match) parts.push('with If-Match');
    if (req.renew_token) parts.push('renew token');
    return parts.length ? parts.join(', ') : '—';
}

function describeResult(row) {
    const r = row.result || {};
    if (row.status >= 200 && row.status < 300) {
        if (r.status) return `${r.previous_status || '?'} → ${r.presence_label || r.status}`;
        if (r.organization) return `OK: ${r.organization.name || r.organization.id}`;
        return 'OK';
    }
    return r.detail ? `${r.error ? `${r.error}: ` : ''}${r.detail}` : (r.error || 'failed');
}

function render(body, first, err) {
    if (err) {
        els.summary.textContent = '';
        fill(els.table);
        showFieldErrors(els.form, err, { actor: els.actor, action: els.action, target: els.target, limit: els.limit });
        showError(els.error, err, 'Could not load the audit trail:');
        return;
    }
    showError(els.error, null);
    if (!body.data.length) {
        els.summary.textContent = body.total ? 'No more entries.' : 'No entries.';
        fill(els.table, h('p', { class: 'empty' }, body.total ? '' : 'No admin action matches these filters.'));
        return;
    }
    els.summary.textContent = `${body.total} entr${body.total === 1 ? 'y' : 'ies'}`;
    fill(els.table, h('table', { class: 'data', id: 'audit-table' },
        h('caption', { class: 'sr-only' }, 'Admin actions, newest first'),
        h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Agent', 'Request', 'Result', 'HTTP', 'Took']
            .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, body.data.map((row) => h('tr', { dataset: { id: row.id } },
            h('td', {}, timeEl(row.at, localDateTime(row.at))),
            h('td', {}, row.actor === '-' ? h('span', { class: 'muted', title: 'No authenticated user' }, '- (anonymous)') : row.actor),
            h('td', {}, (ACTIONS.find(([v]) => v === row.action) || [0, row.action])[1]),
            h('td', {}, row.target ? agentLabel(row.target) : '—'),
            h('td', {}, describeRequest(row.request)),
            h('td', {}, describeResult(row)),
            h('td', {}, h('span', { class: `badge ${row.status < 300 ? 'good' : 'bad'}` }, String(row.status))),
            h('td', {}, `${row.latency_ms} ms`))))));
}
