// Status change: read an agent's current Genesys Cloud presence with its ETag
// (GET api/v1/admin/agents/{id}/status), then change it with PUT and
// If-Match, so a change made by someone else in between is refused (412)
// instead of overwritten.

import { h, fill, timeEl } from './dom.js';
import { request } from './api.js';
import { PRESENCES } from './states.js';
import { localDateTime } from './fmt.js';
import { replaceParams } from './nav.js';
import { showError, showFieldErrors, fillAgentSelect, agentLabel } from './ui.js';

let els = {};
let current = null;        // the last GET/PUT answer: {user_id, status, etag, …}
let seq = 0;

export function mount(section) {
    const user = h('select', { id: 's-user', name: 'user_id', required: true });
    const loadForm = h('form', { class: 'filters', id: 'load-form', 'aria-label': 'Choose an agent',
        onsubmit: (e) => { e.preventDefault(); loadCurrent(true); } },
    h('div', { class: 'field' }, h('label', { for: 's-user' }, 'Agent'), user),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary', id: 's-load' }, 'Show current status')));
    user.addEventListener('change', () => {
        current = null;
        renderCurrent();
        showResult(null);
        replaceParams('admin', { user_id: user.value });
    });

    const status = h('input', { id: 's-status', name: 'status', list: 's-presences', required: true,
        autocomplete: 'off', maxlength: '100', 'aria-describedby': 's-status-hint' });
    const reason = h('input', { id: 's-reason', name: 'reason', maxlength: '500', autocomplete: 'off' });
    const wrapup = h('input', { id: 's-wrapup', name: 'wrapup_code', maxlength: '100', autocomplete: 'off' });
    const submitBtn = h('button', { type: 'submit', class: 'primary', id: 's-submit' }, 'Change status');
    const fieldset = h('fieldset', { id: 's-fieldset', disabled: true },
        h('legend', {}, 'New status'),
        h('div', { class: 'field' }, h('label', { for: 's-status' }, 'Status'), status),
        h('div', { class: 'field' }, h('label', { for: 's-reason' }, 'Reason (optional)'), reason),
        h('div', { class: 'field' }, h('label', { for: 's-wrapup' }, 'Wrap-up code (optional)'), wrapup),
        h('div', { class: 'field actions' }, submitBtn),
        h('p', { class: 'hint small', id: 's-status-hint' }, 'Status: a system presence (Available, Break, Meal, …) ' +
            'or the name of one of your organisation’s presences. Enter sends the change.'));
    const statusForm = h('form', { id: 'status-form', 'aria-label': 'Change the status',
        onsubmit: (e) => { e.preventDefault(); change(); } },
    fieldset, h('datalist', { id: 's-presences' }, PRESENCES.map((p) => h('option', { value: p }))));

    els = {
        user, loadForm, statusForm, fieldset, status, reason, wrapup, submitBtn,
        error: h('div', { class: 'error', role: 'alert', hidden: true, id: 's-error' }),
        current: h('section', { class: 'current', id: 's-current', 'aria-labelledby': 's-current-head', 'aria-live': 'polite' }),
        result: h('div', { id: 's-result', hidden: true }),
    };
    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-admin', tabindex: '-1' }, 'Status change')),
        h('p', { class: 'hint' }, 'Sets an agent’s presence in Genesys Cloud. gcmon only changes it if nobody ' +
            'else changed it since you looked (the status’s ETag goes with the change as If-Match).'),
        loadForm, els.error, els.current, statusForm, els.result);
    renderCurrent();
}

export async function show(params) {
    await fillAgentSelect(els.user, params.get('user_id') || '', 'Choose an agent…');
    if (params.get('user_id')) loadCurrent(false);
    else {
        current = null;
        renderCurrent();
    }
}

function userPath(id) {
    return `admin/agents/${encodeURIComponent(id)}/status`;
}

async function loadCurrent(focusNext) {
    const id = els.user.value;
    showResult(null);
    showFieldErrors(els.loadForm, null, {});
    if (!id) {
        showFieldErrors(els.loadForm, { problem: { errors: [{ field: 'user_id', message: 'Choose an agent first.' }] } },
            { user_id: els.user });
        els.user.focus();
        return;
    }
    replaceParams('admin', { user_id: id });
    const my = ++seq;
    current = null;
    fill(els.current, h('p', { class: 'loading' }, 'Reading the current status from Genesys Cloud…'));
    els.fieldset.disabled = true;
    try {
        const r = await request(userPath(id));
        if (my !== seq) return;
        showError(els.error, null);
        current = r.body;
        renderCurrent();
        els.fieldset.disabled = false;
        if (focusNext) els.status.focus();
    } catch (e) {
        if (my !== seq) return;
        current = null;
        renderCurrent();
        showFieldErrors(els.loadForm, e, { user_id: els.user });
        showError(els.error, e, 'Could not read the status:');
    }
}

function renderCurrent() {
    if (!current) {
        fill(els.current, h('h3', { id: 's-current-head' }, 'Current status'),
            h('p', { class: 'empty' }, 'Choose an agent and press “Show current status”.'));
        els.fieldset.disabled = true;
        return;
    }
    const c = current;
    fill(els.current, h('h3', { id: 's-current-head' }, `Current status of ${agentLabel(c.user_id)}`),
        h('dl', { class: 'facts' },
            h('dt', {}, 'Status'), h('dd', { id: 's-cur-status' }, c.presence_label ? `${c.presence_label} (${c.status})` : c.status),
            h('dt', {}, 'Message'), h('dd', {}, c.message || '—'),
            h('dt', {}, 'Changed'), h('dd', {}, timeEl(c.modified_date, localDateTime(c.modified_date))),
            h('dt', {}, 'ETag'), h('dd', { class: 'mono', id: 's-cur-etag' }, c.etag)));
}

function showResult(kind, ...content) {
    const el = els.result;
    if (!kind) {
        el.hidden = true;
        el.replaceChildren();
        el.removeAttribute('role');
        return;
    }
    el.hidden = false;
    el.className = `result ${kind}`;
    el.setAttribute('role', kind === 'ok' ? 'status' : 'alert');
    fill(el, content);
}

async function change() {
    if (!current) return;
    const id = current.user_id;
    const body = { status: els.status.value.trim() };
    if (els.reason.value.trim()) body.reason = els.reason.value.trim();
    if (els.wrapup.value.trim()) body.wrapup_code = els.wrapup.value.trim();
    const fields = { status: els.status, reason: els.reason, wrapup_code: els.wrapup, user_id: els.user };
    showFieldErrors(els.statusForm, null, fields);
    showResult(null);
    if (!body.status) {
        showFieldErrors(els.statusForm, { problem: { errors: [{ field: 'status', message: 'Enter the new status.' }] } }, fields);
        els.status.focus();
        return;
    }
    const loaded = current;
    els.submitBtn.disabled = true;
    els.submitBtn.textContent = 'Changing…';
    try {
        const r = await request(userPath(id), { method: 'PUT', body, headers: { 'If-Match': loaded.etag } });
        const b = r.body;
        current = { user_id: b.user_id, status: b.status, presence_label: b.presence_label,
            message: b.reason, modified_date: b.updated_at, etag: b.etag };
        renderCurrent();
        els.fieldset.disabled = false;
        showResult('ok', `Done: ${agentLabel(id)} is now ${b.presence_label || b.status}` +
            (b.previous_status ? ` (was ${b.previous_status}).` : '.'));
        els.status.value = '';
        els.reason.value = '';
        els.wrapup.value = '';
    } catch (e) {
        if (e.status === 412) {
            const now = e.problem && e.problem.current_status;
            const btn = h('button', { type: 'button', class: 'primary', id: 's-refresh', onclick: () => loadCurrent(true) },
                'Refresh current status');
            showResult('conflict',
                h('p', {}, h('strong', {}, 'Someone else changed this agent’s status'),
                    ` after you loaded it (it was ${loaded.status}${now ? `, it is now ${now}` : ''}). ` +
                    'Nothing was changed. Refresh to see the current status, then decide again.'),
                btn);
            btn.focus();
        } else {
            const rest = showFieldErrors(els.statusForm, e, fields);
            showResult('bad', e.status === 401 || e.status === 403 ? 'Not allowed: ' : 'The status was not changed: ',
                e.message, rest.length ? h('ul', {}, rest.map((x) => h('li', {}, `${x.field}: ${x.message}`))) : null);
            const firstBad = els.statusForm.querySelector('[aria-invalid]');
            if (firstBad) firstBad.focus();
        }
    } finally {
        els.submitBtn.disabled = false;
        els.submitBtn.textContent = 'Change status';
    }
}
