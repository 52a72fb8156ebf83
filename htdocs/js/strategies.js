// Strategies: routing strategies (issue 16). Create one (POST
// api/v1/admin/strategies: name, skills, targets, fallback; a 422's structural
// errors next to their fields, a live failure next to its target with the
// figures Genesys Cloud gave), list them (GET api/v1/admin/strategies, by
// status, paged by cursor), open one: its targets with their weights, tiers
// and capacity, the fallback, the validation report and the status; activate
// it (POST …/activate → 202, then GET the strategy about once a second while
// it is activating, with the activation's progress per queue), rebalance it
// (old → new weights), sync it to WFM, delete it (draft or failed only), read
// its latency and audit, and run a route test: call the read API's route
// endpoint (GET api/v1/strategies/{id}/route) N times and show where the
// answers went per queue against each target's weight share in its tier,
// with the fallback and stale answers counted.

import { h, s, fill, timeEl } from './dom.js';
import { request } from './api.js';
import { localDateTime, localInputToIso, isoToLocalInput, num } from './fmt.js';
import { replaceParams } from './nav.js';
import { Pager, showError, showFieldErrors, fillQueueDatalist, dataTable } from './ui.js';

const POLL_MS = 1000;              // while activating
const POLL_ERROR_MS = 3000;        // after a failed GET (network, 5xx): keep trying, slower
const SIZES = ['10', '20', '50', '100'];
const STATUSES = ['draft', 'activating', 'active', 'failed'];
const ROUTE_N_DEFAULT = 1000;
const ROUTE_N_MAX = 10000;
const ROUTE_PARALLEL = 4;          // route calls in flight at once
const FALLBACK_PRIORITY = '99';

let els = {};
let list = { status: '', limit: '20' };
let pager;
let current = null;          // the strategy shown: the last GET (or POST) answer
let detailSeq = 0;
let pollTimer = null;
let visible = false;
let routeRun = null;         // {ac: AbortController} while a route test runs
let skillRows = [];          // the create form's rows: {el, skill_id, required}
let targetRows = [];         //   {el, queue_id, priority, weight, capacity, live}

// ------------------------------------------------------------------ words

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const path = (id) => `admin/strategies/${encodeURIComponent(id)}`;

function pct(x, d = 1) {
    return x === null || x === undefined || !Number.isFinite(Number(x)) ? '—' : `${num(Number(x) * 100, d)} %`;
}

function statusWords(st) {
    const a = st.activation || null;
    switch (st.status) {
    case 'draft':
        return 'Draft — validated and stored, not applied to Genesys Cloud yet. Activate it to apply its ' +
            'selection criteria to the target queues.';
    case 'activating':
        return `Activating — gcmon re-validates the strategy and applies its selection criteria to each ` +
            `target queue${a && a.phase ? ` (${phaseWords(a.phase)})` : ''}…`;
    case 'active':
        return 'Active — applied to the target queues; the route endpoint picks a queue for it.';
    case 'failed':
        return `Failed: ${st.error_message || (a && errorText(a.error)) || 'no reason was given'}. ` +
            'gcmon restored the queues it had changed; fix the cause and activate it again.';
    default: return st.status ? `Status “${st.status}”.` : 'Status unknown.';
    }
}

function phaseWords(p) {
    return String(p).replace(/_/g, ' ');
}

/** An error field (a string, or an object with a message) in words. */
function errorText(e) {
    if (e === null || e === undefined || e === '') return '';
    if (typeof e === 'string') return e;
    if (typeof e === 'object') return String(e.message || e.detail || e.title || e.reason || JSON.stringify(e));
    return String(e);
}

const REASONS = {
    observations_unavailable: 'no observations for this queue',
    no_spare_capacity: 'no spare capacity',
    members_unavailable: 'its members could not be read',
    no_skilled_member: 'no member has every required skill',
};

const reasonWords = (r) => REASONS[r] || String(r).replace(/_/g, ' ');

function yesNo(v) {
    if (v === true) return 'yes';
    if (v === false) return 'no';
    if (v === null || v === undefined) return 'unknown';
    return String(v);
}

/** "urn:gcmon:problem:validation_failed" (or a URL ending in it) → "validation_failed". */
function typeName(t) {
    return typeof t === 'string' ? t.slice(Math.max(t.lastIndexOf('/'), t.lastIndexOf(':')) + 1) : '';
}

function retryWords(e) {
    return (e.status === 503 || e.status === 429) && e.retryAfter && /^\d+$/.test(e.retryAfter)
        ? ` Try again in ${e.retryAfter} s.` : '';
}

const targetsOf = (st) => (Array.isArray(st && st.targets) ? st.targets : []);

/** {priority → Σ weights} of a strategy's targets. */
function tierSums(targets) {
    const sums = new Map();
    for (const t of targets) sums.set(t.priority, (sums.get(t.priority) || 0) + (Number(t.weight) || 0));
    return sums;
}

// ------------------------------------------------------------------ mount / show / hide

export function mount(section) {
    const newBtn = h('button', { type: 'button', class: 'primary', id: 'sg-new', 'aria-expanded': 'false',
        'aria-controls': 'sg-form', onclick: () => openForm(true) }, 'New strategy');
    els = { root: section, newBtn };
    const form = buildForm();

    // The list
    const lStatus = h('select', { id: 'sgl-status', name: 'status' },
        h('option', { value: '' }, 'Any status'), STATUSES.map((x) => h('option', { value: x }, x)));
    const lLimit = h('select', { id: 'sgl-limit', name: 'limit' },
        SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
    lLimit.value = list.limit;
    const lForm = h('form', { class: 'filters', id: 'sgl-form', 'aria-label': 'Strategy filters',
        onsubmit: (e) => {
            e.preventDefault();
            list.status = lStatus.value;
            list.limit = lLimit.value;
            recordParams();
            pager.reset();
        } },
    h('div', { class: 'field' }, h('label', { for: 'sgl-status' }, 'Status'), lStatus),
    h('div', { class: 'field' }, h('label', { for: 'sgl-limit' }, 'Page size'), lLimit),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary', id: 'sgl-show' }, 'Show'),
        h('button', { type: 'button', class: 'secondary', id: 'sgl-refresh', onclick: () => pager.fetch() }, 'Refresh')));
    pager = new Pager('Strategy pages', loadList, renderList);

    Object.assign(els, {
        form, lStatus, lLimit, lForm,
        notice: h('p', { class: 'notice', id: 'sg-notice', role: 'status', hidden: true }),
        detail: h('section', { class: 'current strategy', id: 'sg-detail', hidden: true, tabindex: '-1',
            'aria-labelledby': 'sg-detail-head' }),
        lHead: h('h3', { id: 'sgl-head', tabindex: '-1' }, 'Strategies'),
        lError: h('div', { class: 'error', role: 'alert', hidden: true, id: 'sgl-error' }),
        lSummary: h('p', { class: 'summary', id: 'sgl-summary', 'aria-live': 'polite' }),
        lTable: h('div', { class: 'table-wrap', id: 'sgl-list' }),
    });

    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-strategies', tabindex: '-1' }, 'Strategies'), newBtn),
        h('p', { class: 'hint' }, 'A routing strategy sends new interactions to a set of target queues: the ' +
            'preferred tier (lowest priority number) that has spare capacity, a weighted pick inside it, and the ' +
            'fallback queue when every target is saturated. gcmon checks the targets in Genesys Cloud when you ' +
            'create it, applies its skills to the queues when you activate it, and rebalances the weights from ' +
            'the queues’ occupancy.'),
        form, els.notice, els.detail,
        h('section', { class: 'strategy-list', 'aria-labelledby': 'sgl-head' },
            els.lHead,
            h('p', { class: 'hint' }, 'Every strategy, newest first. Choose one to see it.'),
            lForm, els.lError, els.lSummary, els.lTable, pager.el));
}

export function show(params) {
    visible = true;
    fillQueueDatalist(els.queues);
    const status = params.get('status') || '';
    if (STATUSES.includes(status) || status === '') {
        list.status = status;
        els.lStatus.value = status;
    }
    const id = params.get('id') || '';
    if (id && (!current || current.id !== id)) {
        openStrategy(id, false);
    } else if (current && current.status === 'activating' && !pollTimer) {
        poll(detailSeq);                   // back to a strategy that was still activating
    }
    pager.reset();
}

export function hide() {
    visible = false;
    stopPolling();
    stopRoute();
}

function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
}

function recordParams() {
    replaceParams('strategies', { id: current ? current.id : '', status: list.status });
}

// ------------------------------------------------------------------ the create form

function buildForm() {
    const name = h('input', { id: 'sg-name', name: 'name', maxlength: '100', autocomplete: 'off', required: true });
    const description = h('textarea', { id: 'sg-description', name: 'description', rows: '2', maxlength: '1000' });
    const skillsBox = h('div', { class: 'sg-rows', id: 'sg-skills' });
    const targetsBox = h('div', { class: 'sg-rows', id: 'sg-targets' });
    const fbQueue = h('input', { id: 'sg-fallback-queue_id', name: 'fallback.queue_id', autocomplete: 'off',
        maxlength: '64', spellcheck: 'false', list: 'sg-queues', class: 'queue' });
    const fbPriority = h('input', { id: 'sg-fallback-priority', name: 'fallback.priority', type: 'number', min: '1',
        max: '99', step: '1', value: FALLBACK_PRIORITY, inputmode: 'numeric', class: 'short' });
    const fbWeight = h('input', { id: 'sg-fallback-weight', name: 'fallback.weight', type: 'number', min: '0',
        step: 'any', value: '1', inputmode: 'decimal', class: 'short' });
    const submitBtn = h('button', { type: 'submit', class: 'primary', id: 'sg-create' }, 'Create strategy');
    const addSkill = h('button', { type: 'button', class: 'secondary small', id: 'sg-add-skill',
        onclick: () => addRow('skill') }, 'Add skill');
    const addTarget = h('button', { type: 'button', class: 'secondary small', id: 'sg-add-target',
        onclick: () => addRow('target') }, 'Add target');
    const form = h('form', { id: 'sg-form', class: 'sg-form', 'aria-labelledby': 'sg-form-head', novalidate: true,
        hidden: true, onsubmit: (e) => { e.preventDefault(); create(); } },
    h('h3', { id: 'sg-form-head' }, 'New strategy'),
    h('div', { class: 'filters' },
        h('div', { class: 'field' }, h('label', { for: 'sg-name' }, 'Name'), name),
        h('div', { class: 'field grow' }, h('label', { for: 'sg-description' }, 'Description (optional)'), description)),
    h('fieldset', { id: 'sg-skills-set', class: 'sg-set' },
        h('legend', {}, 'Selection criteria: skills'),
        h('p', { class: 'hint small' }, 'A required skill must be held by some member of every target queue; ' +
            'activating the strategy makes those queues route by all required skills. A skill that is not ' +
            'required is a preference. No skill: any member counts.'),
        skillsBox, h('div', { class: 'sg-add' }, addSkill)),
    h('fieldset', { id: 'sg-targets-set', class: 'sg-set' },
        h('legend', {}, 'Targets'),
        h('p', { class: 'hint small' }, 'The queues to route to. Priority 1 is the preferred tier; inside a tier ' +
            'each queue gets interactions in proportion to its weight while it has spare capacity ' +
            '(capacity − interactions in progress > 0).'),
        targetsBox, h('div', { class: 'sg-add' }, addTarget)),
    h('fieldset', { id: 'sg-fallback-set', class: 'sg-set' },
        h('legend', {}, 'Fallback'),
        h('div', { class: 'field' }, h('label', { for: 'sg-fallback-queue_id' }, 'Queue id'), fbQueue),
        h('div', { class: 'field' }, h('label', { for: 'sg-fallback-priority' }, 'Priority'), fbPriority),
        h('div', { class: 'field' }, h('label', { for: 'sg-fallback-weight' }, 'Weight'), fbWeight),
        h('p', { class: 'hint small' }, 'Used when every target is saturated; it may not be one of the targets.')),
    h('div', { class: 'field actions' }, submitBtn,
        h('button', { type: 'button', class: 'secondary', id: 'sg-cancel', onclick: () => closeForm(true) }, 'Cancel')),
    h('datalist', { id: 'sg-queues' }));
    Object.assign(els, {
        name, description, skillsBox, targetsBox, fbQueue, fbPriority, fbWeight, submitBtn, addSkill, addTarget,
        queues: form.querySelector('#sg-queues'),
        formError: h('div', { class: 'error', role: 'alert', hidden: true, id: 'sg-form-error' }),
    });
    form.insertBefore(els.formError, form.querySelector('.field.actions'));
    resetForm();
    return form;
}

function openForm(focus) {
    els.form.hidden = false;
    els.newBtn.setAttribute('aria-expanded', 'true');
    if (focus) els.name.focus();
}

function closeForm(focus) {
    els.form.hidden = true;
    els.newBtn.setAttribute('aria-expanded', 'false');
    if (focus) els.newBtn.focus();
}

function resetForm() {
    els.name.value = '';
    els.description.value = '';
    els.fbQueue.value = '';
    els.fbPriority.value = FALLBACK_PRIORITY;
    els.fbWeight.value = '1';
    renderRows('skill', []);
    renderRows('target', [{ queue_id: '', priority: '1', weight: '1', capacity: '' }]);
    clearFormErrors();
}

function readRows(kind) {
    if (kind === 'skill') return skillRows.map((r) => ({ skill_id: r.skill_id.value, required: r.required.checked }));
    return targetRows.map((r) => ({ queue_id: r.queue_id.value, priority: r.priority.value, weight: r.weight.value,
        capacity: r.capacity.value }));
}

function addRow(kind) {
    const rows = readRows(kind);
    if (kind === 'skill') rows.push({ skill_id: '', required: true });
    else {
        const last = rows[rows.length - 1];
        rows.push({ queue_id: '', priority: last ? last.priority : '1', weight: '1', capacity: '' });
    }
    renderRows(kind, rows);
    const added = kind === 'skill' ? skillRows[skillRows.length - 1].skill_id : targetRows[targetRows.length - 1].queue_id;
    added.focus();
}

function removeRow(kind, i) {
    const rows = readRows(kind);
    rows.splice(i, 1);
    renderRows(kind, rows);
    const left = kind === 'skill' ? skillRows : targetRows;
    // The keyboard goes to the row that took its place, else the one before, else "Add".
    const to = left[i] || left[i - 1];
    if (to) to.remove.focus();
    else (kind === 'skill' ? els.addSkill : els.addTarget).focus();
}

function field(id, label, input) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function renderRows(kind, rows) {
    clearFormErrors();
    if (kind === 'skill') {
        skillRows = rows.map((v, i) => {
            const base = `sg-skill-${i}`;
            const r = {
                skill_id: h('input', { id: `${base}-skill_id`, autocomplete: 'off', maxlength: '64', spellcheck: 'false',
                    value: v.skill_id, class: 'queue' }),
                required: h('input', { type: 'checkbox', id: `${base}-required`, checked: v.required }),
                remove: h('button', { type: 'button', class: 'secondary small', id: `${base}-remove`,
                    'aria-label': `Remove skill ${i + 1}`, onclick: () => removeRow('skill', i) }, 'Remove'),
            };
            r.el = h('div', { class: 'sg-row', role: 'group', 'aria-label': `Skill ${i + 1}`, id: base },
                field(`${base}-skill_id`, `Skill ${i + 1} id`, r.skill_id),
                h('div', { class: 'field check' }, r.required, h('label', { for: `${base}-required` }, 'Required')),
                h('div', { class: 'field actions' }, r.remove));
            return r;
        });
        fill(els.skillsBox, skillRows.length ? skillRows.map((r) => r.el)
            : h('p', { class: 'muted small', id: 'sg-no-skills' }, 'No skills.'));
        return;
    }
    targetRows = rows.map((v, i) => {
        const base = `sg-target-${i}`;
        const r = {
            queue_id: h('input', { id: `${base}-queue_id`, autocomplete: 'off', maxlength: '64', spellcheck: 'false',
                list: 'sg-queues', value: v.queue_id, class: 'queue' }),
            priority: h('input', { id: `${base}-priority`, type: 'number', min: '1', max: '99', step: '1',
                inputmode: 'numeric', value: v.priority, class: 'short' }),
            weight: h('input', { id: `${base}-weight`, type: 'number', min: '0', step: 'any', inputmode: 'decimal',
                value: v.weight, class: 'short' }),
            capacity: h('input', { id: `${base}-capacity`, type: 'number', min: '1', step: '1', inputmode: 'numeric',
                value: v.capacity, class: 'short' }),
            live: h('div', { class: 'sg-live', id: `${base}-live`, hidden: true }),
            remove: h('button', { type: 'button', class: 'secondary small', id: `${base}-remove`,
                'aria-label': `Remove target ${i + 1}`, onclick: () => removeRow('target', i) }, 'Remove'),
        };
        r.el = h('div', { class: 'sg-row', role: 'group', 'aria-label': `Target ${i + 1}`, id: base },
            h('span', { class: 'sg-row-n', 'aria-hidden': 'true' }, `${i + 1}.`),
            field(`${base}-queue_id`, 'Queue id', r.queue_id),
            field(`${base}-priority`, 'Priority', r.priority),
            field(`${base}-weight`, 'Weight', r.weight),
            field(`${base}-capacity`, 'Capacity', r.capacity),
            h('div', { class: 'field actions' }, r.remove),
            r.live);
        return r;
    });
    fill(els.targetsBox, targetRows.length ? targetRows.map((r) => r.el)
        : h('p', { class: 'muted small', id: 'sg-no-targets' }, 'No targets: add at least one.'));
}

/** A number input as sent: a number, nothing when empty, or the words the server will refuse. */
function numberValue(input) {
    if (input.validity && input.validity.badInput) return 'not a number';
    const v = input.value.trim();
    if (v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
}

function buildBody() {
    const body = { name: els.name.value.trim() };
    const d = els.description.value.trim();
    if (d) body.description = d;
    body.selection_criteria = {
        skills: skillRows.map((r) => ({ skill_id: r.skill_id.value.trim(), required: r.required.checked })),
    };
    body.targets = targetRows.map((r) => {
        const t = { queue_id: r.queue_id.value.trim() };
        for (const k of ['priority', 'weight', 'capacity']) {
            const v = numberValue(r[k]);
            if (v !== undefined) t[k] = v;
        }
        return t;
    });
    const fb = { queue_id: els.fbQueue.value.trim() };
    const fp = numberValue(els.fbPriority), fw = numberValue(els.fbWeight);
    if (fp !== undefined) fb.priority = fp;
    if (fw !== undefined) fb.weight = fw;
    body.fallback = fb;
    return body;
}

/** API field name → the control its message goes next to. */
function formFields() {
    const m = {
        name: els.name, description: els.description,
        selection_criteria: els.skillsBox, 'selection_criteria.skills': els.skillsBox,
        targets: els.targetsBox, fallback: els.fbQueue, 'fallback.queue_id': els.fbQueue,
        'fallback.priority': els.fbPriority, 'fallback.weight': els.fbWeight,
    };
    skillRows.forEach((r, i) => {
        const k = `selection_criteria.skills[${i}]`;
        m[k] = r.skill_id;
        m[`${k}.skill_id`] = r.skill_id;
        m[`${k}.required`] = r.required;
    });
    targetRows.forEach((r, i) => {
        for (const f of ['queue_id', 'priority', 'weight', 'capacity']) m[`targets[${i}].${f}`] = r[f];
    });
    return m;
}

function clearFormErrors() {
    if (!els.form) return;
    showFieldErrors(els.form, null, {});
    showError(els.formError, null);
    for (const r of targetRows) {
        r.live.hidden = true;
        r.live.className = 'sg-live';
        r.live.replaceChildren();
    }
}

/**
 * A 422: structural errors next to their fields (showFieldErrors), a live
 * failure ("targets[i]") in its target's row with the figures of the
 * validation report. Returns the messages that found no place.
 */
function showCreateErrors(e) {
    const p = e.problem || {};
    const errors = Array.isArray(p.errors) ? p.errors : [];
    const perTarget = new Map();
    const others = [];
    for (const x of errors) {
        const m = /^targets\[(\d+)\]$/.exec(x && x.field ? x.field : '');
        if (m && targetRows[Number(m[1])]) {
            const i = Number(m[1]);
            if (!perTarget.has(i)) perTarget.set(i, []);
            perTarget.get(i).push(x.message);
        } else {
            others.push(x);
        }
    }
    const rest = showFieldErrors(els.form, { problem: { errors: others } }, formFields());
    const report = p.validation && Array.isArray(p.validation.targets) ? p.validation.targets : [];
    targetRows.forEach((r, i) => {
        const rep = report[i] && (!report[i].queue_id || report[i].queue_id === r.queue_id.value.trim())
            ? report[i] : report.find((x) => x && x.queue_id === r.queue_id.value.trim());
        const msgs = perTarget.get(i) || [];
        if (!rep && !msgs.length) return;
        const bad = msgs.length > 0 || (rep && rep.ok === false);
        r.live.hidden = false;
        r.live.className = `sg-live ${bad ? 'bad' : 'ok'}`;
        const why = msgs.length ? msgs.join('; ')
            : rep && Array.isArray(rep.reasons) && rep.reasons.length ? rep.reasons.map(reasonWords).join('; ') : '';
        fill(r.live,
            h('strong', {}, bad ? 'Live check failed' : 'Live check passed'), why ? `: ${why}` : '',
            rep ? h('span', { class: 'sg-live-figures' }, ` (spare capacity ${rep.spare_capacity ?? 'unknown'}, ` +
                `skilled members ${yesNo(rep.skilled_members)})`) : null, '.');
        if (bad) {
            r.queue_id.setAttribute('aria-invalid', 'true');
            r.queue_id.setAttribute('aria-describedby', r.live.id);
        }
    });
    return rest;
}

function focusFirstInvalid() {
    const bad = els.form.querySelector('[aria-invalid="true"]');
    if (!bad) return;
    if (bad === els.skillsBox) (skillRows[0] ? skillRows[0].skill_id : els.addSkill).focus();
    else if (bad === els.targetsBox) (targetRows[0] ? targetRows[0].queue_id : els.addTarget).focus();
    else bad.focus();
}

async function create() {
    clearFormErrors();
    notice(null);
    els.submitBtn.disabled = true;
    els.submitBtn.textContent = 'Creating…';
    try {
        const r = await request('admin/strategies', { method: 'POST', body: buildBody() });
        const st = r.body || {};
        resetForm();
        closeForm(false);
        notice(`Strategy “${st.name || st.id}” created as ${st.status || 'draft'}.`);
        showStrategy(st);
        pager.reset();
        els.detail.focus();
    } catch (e) {
        const live = e.status === 422 && e.problem && e.problem.validation;
        const rest = e.status === 422 || e.status === 400 ? showCreateErrors(e) : [];
        const words = live
            ? 'The strategy was not created: a target failed the live check in Genesys Cloud. Nothing was stored.'
            : e.status === 422 || e.status === 400
                ? 'The strategy was not created; nothing was stored. Correct the fields marked below:'
                : 'Could not create the strategy:';
        showError(els.formError, e.status === 422 || e.status === 400 ? { message: e.message } : e, words);
        if (retryWords(e)) els.formError.append(retryWords(e));
        if (rest.length) {
            els.formError.append(h('ul', { class: 'problem-list' },
                rest.map((x) => h('li', {}, `${x.field ? `${x.field}: ` : ''}${x.message}`))));
        }
        if (els.form.querySelector('[aria-invalid="true"]')) {
            focusFirstInvalid();
        } else {
            els.formError.setAttribute('tabindex', '-1');
            els.formError.focus();
        }
    } finally {
        els.submitBtn.disabled = false;
        els.submitBtn.textContent = 'Create strategy';
    }
}

function notice(text) {
    els.notice.hidden = !text;
    els.notice.textContent = text || '';
}

// ------------------------------------------------------------------ one strategy

function openStrategy(id, focus) {
    stopRoute();
    notice(null);
    const my = ++detailSeq;
    stopPolling();
    current = { id, status: null, loading: true };
    els.detail.hidden = false;
    fill(els.detail, h('h3', { id: 'sg-detail-head' }, `Strategy ${id}`), h('p', { class: 'loading' }, 'Loading…'));
    markListRow();
    recordParams();
    if (focus) els.detail.focus();
    load(my);
}

async function load(my) {
    try {
        const r = await request(path(current.id));
        if (my !== detailSeq) return;
        setCurrent(r.body);
        if (current.status === 'activating') pollTimer = setTimeout(() => poll(my), POLL_MS);
    } catch (e) {
        if (my !== detailSeq) return;
        const err = h('div', { class: 'error', role: 'alert', id: 'sg-load-error' });
        showError(err, e, 'Could not load this strategy:');
        fill(els.detail, h('h3', { id: 'sg-detail-head' }, `Strategy ${current.id}`), err);
    }
}

/** Show a strategy document we already have (the POST's answer). */
function showStrategy(st) {
    stopRoute();
    stopPolling();
    const my = ++detailSeq;
    current = null;
    els.detail.hidden = false;
    setCurrent(st);
    recordParams();
    if (st.status === 'activating') pollTimer = setTimeout(() => poll(my), POLL_MS);
}

/** Take a new document of the strategy shown: render all of it, or only what changed. */
function setCurrent(st) {
    const same = current && current.id === st.id && !current.loading && els.main;
    const prev = current;
    current = st;
    if (same && prev.status === st.status && prev.revision === st.revision) {
        renderProgress();                  // still activating as before: the words and the queues
        return;
    }
    renderDetail(!same);
    markListRow();
}

async function poll(my) {
    pollTimer = null;
    if (my !== detailSeq || !visible || !current) return;
    let next = POLL_MS;
    try {
        const r = await request(path(current.id));
        if (my !== detailSeq) return;
        const was = current.status;
        setCurrent(r.body);
        showError(els.pollError, null);
        if (current.status !== 'activating') {
            if (was === 'activating') pager.fetch();     // its row changes too
            return;
        }
    } catch (e) {
        if (my !== detailSeq) return;
        if (e.status === 404 || e.status === 400 || e.status === 401 || e.status === 403) {
            showError(els.pollError, e, 'Could not read this strategy:');
            return;                                      // asking again would not help
        }
        showError(els.pollError, e, 'Could not read the strategy’s status; trying again:');
        next = POLL_ERROR_MS;
    }
    if (my === detailSeq && visible) pollTimer = setTimeout(() => poll(my), next);
}

function startPolling() {
    stopPolling();
    const my = detailSeq;
    poll(my);
}

/** The whole detail; fresh: a strategy newly opened (its tools are built anew). */
function renderDetail(fresh) {
    const st = current;
    const focusedId = document.activeElement && els.detail.contains(document.activeElement)
        ? document.activeElement.id : null;
    if (fresh || !els.main) {
        els.main = h('div', { id: 'sg-main' });
        els.result = h('div', { id: 'sg-result', class: 'result', hidden: true, tabindex: '-1' });
        els.tools = buildTools();
        fill(els.detail,
            h('div', { class: 'view-head' }, h('h3', { id: 'sg-detail-head' }, `Strategy ${st.name || st.id}`),
                h('button', { type: 'button', class: 'secondary small', id: 'sg-refresh',
                    onclick: () => refresh() }, 'Refresh'),
                h('button', { type: 'button', class: 'secondary small', id: 'sg-close', onclick: closeDetail }, 'Close')),
            els.main, els.result, els.tools);
    } else {
        els.detail.querySelector('#sg-detail-head').textContent = `Strategy ${st.name || st.id}`;
    }
    els.pollError = h('div', { class: 'error', role: 'alert', hidden: true, id: 'sg-poll-error' });
    const statusLine = h('p', { class: 'sg-status', id: 'sg-status', role: 'status', tabindex: '-1' },
        h('span', { class: `badge sg-${st.status || 'unknown'}`, id: 'sg-status-badge' }, st.status || 'unknown'), ' ',
        h('span', { id: 'sg-status-text' }, statusWords(st)));
    els.progress = h('div', { id: 'sg-activation', class: 'sg-activation' });
    const targets = targetsOf(st);
    const sums = tierSums(targets);
    const sorted = targets.map((t, i) => ({ ...t, i })).sort((a, b) => (a.priority - b.priority) || (a.i - b.i));
    const fb = st.fallback || {};
    const skills = st.selection_criteria && Array.isArray(st.selection_criteria.skills) ? st.selection_criteria.skills : [];
    const deletable = st.status === 'draft' || st.status === 'failed';
    const activatable = st.status === 'draft' || st.status === 'failed';
    fill(els.main,
        statusLine, els.progress, els.pollError,
        h('dl', { class: 'facts', id: 'sg-facts' },
            h('dt', {}, 'Id'), h('dd', { class: 'mono', id: 'sg-id' }, st.id),
            st.description ? [h('dt', {}, 'Description'), h('dd', { id: 'sg-description-text' }, st.description)] : null,
            h('dt', {}, 'Created'), h('dd', {}, timeEl(st.created_at, localDateTime(st.created_at)),
                st.created_by ? ` by ${st.created_by === '-' ? '- (anonymous)' : st.created_by}` : ''),
            h('dt', {}, 'Updated'), h('dd', {}, timeEl(st.updated_at, localDateTime(st.updated_at)),
                st.revision !== undefined ? h('span', { class: 'muted' }, ` (revision ${st.revision})`) : null),
            h('dt', {}, 'Activated'), h('dd', { id: 'sg-activated' }, timeEl(st.activated_at, localDateTime(st.activated_at))),
            h('dt', {}, 'Rebalanced'), h('dd', { id: 'sg-rebalanced' }, timeEl(st.rebalanced_at, localDateTime(st.rebalanced_at))),
            h('dt', {}, 'Observed'), h('dd', { id: 'sg-observed' }, timeEl(st.observed_at, localDateTime(st.observed_at))),
            st.job_id ? [h('dt', {}, 'Activation job'), h('dd', { class: 'mono' }, st.job_id)] : null),
        h('h4', { id: 'sg-targets-head' }, 'Targets'),
        h('div', { class: 'table-wrap' }, dataTable({
            id: 'sg-targets-table', caption: 'Targets by tier (priority), with their weights and capacity',
            rows: sorted,
            rowAttrs: (t) => ({ dataset: { queue: t.queue_id } }),
            columns: [
                { label: 'Queue', head: true, cls: 'mono', cell: (t) => t.queue_id },
                { label: 'Priority (tier)', cls: 'num', cell: (t) => String(t.priority ?? '—') },
                { label: 'Weight', cls: 'num weight', cell: (t) => num(t.weight, 4) },
                { label: 'Share in tier', cls: 'num', cell: (t) => pct(sums.get(t.priority) ? t.weight / sums.get(t.priority) : null) },
                { label: 'Capacity', cls: 'num', cell: (t) => String(t.capacity ?? '—') },
            ],
        })),
        h('p', { id: 'sg-fallback' }, h('strong', {}, 'Fallback: '), h('span', { class: 'mono' }, fb.queue_id || '—'),
            ` (priority ${fb.priority ?? '—'}, weight ${num(fb.weight, 4)}) — when every target is saturated.`),
        h('h4', {}, 'Selection criteria'),
        skills.length ? h('ul', { id: 'sg-skills-list', class: 'sg-skills' }, skills.map((k) => h('li', {},
            h('span', { class: 'mono' }, k.skill_id), k.required ? ' — required' : ' — preferred (not required)')))
            : h('p', { id: 'sg-skills-list', class: 'muted' }, 'No skills: any member of a target queue counts.'),
        h('h4', { id: 'sg-validation-head' }, 'Validation'),
        validationContent(st.validation),
        h('div', { class: 'field actions sg-actions', id: 'sg-actions', role: 'group', 'aria-label': 'Actions' },
            activatable ? h('button', { type: 'button', class: 'primary', id: 'sg-activate', onclick: activate },
                st.status === 'failed' ? 'Activate again' : 'Activate') : null,
            h('button', { type: 'button', class: 'secondary', id: 'sg-rebalance', onclick: rebalance,
                disabled: st.status === 'activating' }, 'Rebalance'),
            h('button', { type: 'button', class: 'secondary', id: 'sg-sync', onclick: sync }, 'Sync to WFM'),
            deletable ? h('button', { type: 'button', class: 'secondary danger', id: 'sg-delete', onclick: askDelete },
                'Delete') : null),
        h('div', { id: 'sg-confirm', class: 'sg-confirm', hidden: true }));
    renderProgress();
    if (focusedId) {
        const el = document.getElementById(focusedId);
        if (el && el !== document.activeElement) el.focus();
        else if (!el) statusLine.focus();
    }
}

function validationContent(v) {
    const rep = v && typeof v === 'object' ? v : null;
    if (!rep) return h('p', { class: 'muted', id: 'sg-validation' }, 'No validation report.');
    const rows = Array.isArray(rep.targets) ? rep.targets : [];
    return h('div', { id: 'sg-validation' },
        h('p', { class: rep.ok ? 'sat-ok' : 'sat-warn', id: 'sg-validation-summary' }, rep.ok
            ? 'Every target passed the live check (spare capacity and a skilled member).'
            : 'Some targets failed the live check.'),
        rows.length ? h('div', { class: 'table-wrap' }, dataTable({
            id: 'sg-validation-table', caption: 'The live check of each target',
            rows, rowAttrs: (t) => ({ dataset: { queue: t.queue_id } }),
            columns: [
                { label: 'Queue', head: true, cls: 'mono', cell: (t) => t.queue_id },
                { label: 'Spare capacity', cls: 'num', cell: (t) => t.spare_capacity === null || t.spare_capacity === undefined
                    ? 'unknown' : num(t.spare_capacity, 2) },
                { label: 'Skilled members', cell: (t) => yesNo(t.skilled_members) },
                { label: 'Result', cell: (t) => h('span', { class: `badge ${t.ok ? 'good' : 'bad'}` }, t.ok ? '✔ ok' : '✖ failed') },
                { label: 'Reasons', cell: (t) => (Array.isArray(t.reasons) && t.reasons.length
                    ? t.reasons.map(reasonWords).join('; ') : '') },
            ],
        })) : null);
}

/** The activation's progress: the status words and, while it runs or after it ended, its queues. */
function renderProgress() {
    const st = current;
    const text = els.main && els.main.querySelector('#sg-status-text');
    if (text) {
        const words = statusWords(st);
        if (text.textContent !== words) text.textContent = words;
    }
    if (!els.progress) return;
    const a = st.activation;
    if (!a || typeof a !== 'object') {
        fill(els.progress, st.status === 'activating'
            ? h('p', { class: 'loading', id: 'sg-activation-state' }, st.job_id
                ? `The activation job ${st.job_id} is running…` : 'The activation job is queued…') : null);
        return;
    }
    const queues = Array.isArray(a.queues) ? a.queues : [];
    fill(els.progress,
        h('p', { id: 'sg-activation-state' }, h('strong', {}, 'Activation: '),
            `${a.state || '—'}${a.phase ? `, ${phaseWords(a.phase)}` : ''}`,
            a.job_id ? h('span', { class: 'muted mono' }, ` (job ${a.job_id})`) : null,
            a.error ? h('span', { class: 'sg-activation-error' }, ` — ${errorText(a.error)}`) : null),
        queues.length ? h('ul', { class: 'sg-queues', id: 'sg-activation-queues' }, queues.map((q) =>
            h('li', { dataset: { queue: q.queue_id, state: q.state || '' } }, h('span', { class: 'mono' }, q.queue_id),
                ': ', h('span', { class: `badge q-${String(q.state || 'unknown').replace(/[^a-z_]/gi, '')}` },
                    phaseWords(q.state || 'unknown'))))) : null);
}

function closeDetail() {
    stopPolling();
    stopRoute();
    ++detailSeq;
    current = null;
    els.main = null;
    els.detail.hidden = true;
    fill(els.detail);
    recordParams();
    markListRow();
    els.lHead.focus();
}

function refresh() {
    if (!current) return;
    stopPolling();
    const my = detailSeq;
    request(path(current.id)).then((r) => {
        if (my !== detailSeq) return;
        setCurrent(r.body);
        showError(els.pollError, null);
        if (current.status === 'activating') startPolling();
    }, (e) => {
        if (my !== detailSeq) return;
        showError(els.pollError, e, 'Could not read this strategy:');
    });
}

function showResult(kind, content) {
    if (!kind) {
        els.result.hidden = true;
        fill(els.result);
        return;
    }
    els.result.hidden = false;
    els.result.className = `result ${kind}`;
    fill(els.result, content);
}

function failureContent(what, e) {
    const type = typeName(e.problem && e.problem.type);
    const out = [h('p', {}, h('strong', {}, `${what} `), e.message, retryWords(e))];
    if (e.problem && e.problem.validation) out.push(validationContent(e.problem.validation));
    const errs = e.problem && Array.isArray(e.problem.errors) ? e.problem.errors : [];
    if (errs.length && !e.problem.validation) {
        out.push(h('ul', { class: 'problem-list' }, errs.map((x) => h('li', {}, `${x.field ? `${x.field}: ` : ''}${x.message}`))));
    }
    if (type) out[0].append(h('span', { class: 'muted small' }, ` (${type})`));
    return out;
}

/** Run one action button: disabled with busy words while it runs. */
async function withButton(id, busy, fn) {
    notice(null);
    const btn = document.getElementById(id);
    const text = btn ? btn.textContent : '';
    if (btn) {
        btn.disabled = true;
        btn.textContent = busy;
    }
    try {
        await fn();
    } finally {
        const again = document.getElementById(id);
        if (again && again === btn) {
            btn.disabled = current && current.status === 'activating' && id === 'sg-rebalance';
            btn.textContent = text;
        }
    }
}

function activate() {
    const st = current;
    const my = detailSeq;
    return withButton('sg-activate', 'Activating…', async () => {
        try {
            const r = await request(`${path(st.id)}/activate`, { method: 'POST', body: {} });
            if (my !== detailSeq) return;
            const b = r.body || {};
            showResult(null);
            setCurrent({ ...current, status: b.status || 'activating', job_id: b.job_id || current.job_id,
                activation: null, error_message: null });
            els.main.querySelector('#sg-status').focus();
            startPolling();
            pager.fetch();
        } catch (e) {
            if (my !== detailSeq) return;
            showResult(e.status === 409 ? 'conflict' : 'bad', failureContent('The strategy was not activated.', e));
            els.result.focus();
            if (e.status === 409) refresh();
        }
    });
}

function rebalance() {
    const st = current;
    const my = detailSeq;
    return withButton('sg-rebalance', 'Rebalancing…', async () => {
        try {
            const r = await request(`${path(st.id)}/rebalance`, { method: 'POST', body: {} });
            if (my !== detailSeq) return;
            showResult('ok', rebalanceContent(r.body || {}));
            els.result.focus();
            refresh();
            pager.fetch();
        } catch (e) {
            if (my !== detailSeq) return;
            showResult(e.status === 409 ? 'conflict' : 'bad', failureContent('The weights were not rebalanced.', e));
            els.result.focus();
        }
    });
}

function rebalanceContent(b) {
    const rows = Array.isArray(b.targets) ? b.targets : [];
    return [
        h('p', { id: 'sg-rebalance-summary' }, h('strong', {}, 'Rebalanced: '),
            `${plural(b.rebalanced ?? rows.filter((t) => !t.reason).length, 'target')} got a new weight, ` +
            `${b.kept ?? 0} kept ${b.kept === 1 ? 'its' : 'their'} weight` +
            `${b.revision !== undefined ? ` (revision ${b.revision})` : ''}. Each new weight is 1 / (1 + occupancy), ` +
            'occupancy being the interactions in progress over the capacity.'),
        h('div', { class: 'table-wrap' }, dataTable({
            id: 'sg-rebalance-table', caption: 'Old and new weight of each target',
            rows, rowAttrs: (t) => ({ dataset: { queue: t.queue_id } }),
            columns: [
                { label: 'Queue', head: true, cls: 'mono', cell: (t) => t.queue_id },
                { label: 'Old weight', cls: 'num old-weight', cell: (t) => num(t.previous_weight, 4) },
                { label: 'New weight', cls: 'num new-weight', cell: (t) => [h('span', { 'aria-hidden': 'true' }, '→ '),
                    num(t.weight, 4)] },
                { label: 'Occupancy', cls: 'num', cell: (t) => num(t.occupancy, 4) },
                { label: 'Interacting', cls: 'num', cell: (t) => num(t.interacting, 2) },
                { label: 'Capacity', cls: 'num', cell: (t) => String(t.capacity ?? '—') },
                { label: 'Note', cell: (t) => (t.reason ? `kept: ${reasonWords(t.reason)}` : '') },
            ],
        })),
    ];
}

function sync() {
    const st = current;
    const my = detailSeq;
    return withButton('sg-sync', 'Syncing…', async () => {
        try {
            const r = await request(`${path(st.id)}/sync`, { method: 'POST', body: {} });
            if (my !== detailSeq) return;
            showResult('ok', h('p', { id: 'sg-sync-result' }, h('strong', {}, 'Sync queued: '),
                'gcmon posts the strategy (its name, status and targets) to the WFM webhook in the background' +
                `${r.body && r.body.delivery_id ? ` (delivery ${r.body.delivery_id})` : ''}.`));
        } catch (e) {
            if (my !== detailSeq) return;
            showResult('bad', failureContent('The strategy was not synced.', e));
        }
        els.result.focus();
    });
}

function askDelete() {
    const box = els.main.querySelector('#sg-confirm');
    const no = h('button', { type: 'button', class: 'secondary', id: 'sg-delete-no', onclick: () => {
        box.hidden = true;
        fill(box);
        const d = document.getElementById('sg-delete');
        if (d) d.focus();
    } }, 'Keep it');
    fill(box, h('p', {}, `Delete the strategy “${current.name || current.id}”? This cannot be undone.`),
        h('div', { class: 'field actions' },
            h('button', { type: 'button', class: 'primary danger', id: 'sg-delete-yes', onclick: doDelete }, 'Delete strategy'),
            no));
    box.hidden = false;
    no.focus();
}

function doDelete() {
    const st = current;
    const my = detailSeq;
    return withButton('sg-delete-yes', 'Deleting…', async () => {
        try {
            await request(path(st.id), { method: 'DELETE' });
        } catch (e) {
            if (my !== detailSeq) return;
            showResult(e.status === 409 ? 'conflict' : 'bad', failureContent(e.status === 409
                ? 'Not deleted: only a draft or a failed strategy can be deleted.' : 'The strategy was not deleted.', e));
            els.result.focus();
            refresh();
            return;
        }
        if (my !== detailSeq) return;
        closeDetail();
        notice(`Strategy “${st.name || st.id}” deleted.`);
        pager.reset();
        els.lHead.focus();
    });
}

// ------------------------------------------------------------------ tools: route test, latency, audit

function buildTools() {
    const n = h('input', { id: 'sg-route-n', name: 'n', type: 'number', min: '1', max: String(ROUTE_N_MAX), step: '1',
        value: String(ROUTE_N_DEFAULT), inputmode: 'numeric', class: 'short', 'aria-describedby': 'sg-route-hint' });
    const run = h('button', { type: 'submit', class: 'primary', id: 'sg-route-run' }, 'Run route test');
    const stop = h('button', { type: 'button', class: 'secondary', id: 'sg-route-stop', hidden: true,
        onclick: () => stopRoute() }, 'Stop');
    const routeForm = h('form', { class: 'filters', id: 'sg-route-form', 'aria-label': 'Route test', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); runRoute(); } },
    h('div', { class: 'field' }, h('label', { for: 'sg-route-n' }, 'Calls'), n),
    h('div', { class: 'field actions' }, run, stop),
    h('p', { class: 'hint small field-wide', id: 'sg-route-hint' }, `Calls the route endpoint (GET api/v1/strategies/` +
        `{id}/route, what an Architect data action calls) 1 to ${ROUTE_N_MAX} times, ${ROUTE_PARALLEL} at a time, and ` +
        'counts where the answers went. Only an active strategy has a route.'));

    const now = new Date();
    const from = h('input', { id: 'sg-lat-from', type: 'datetime-local', name: 'from',
        value: isoToLocalInput(new Date(now.getTime() - 24 * 3600 * 1000).toISOString()) });
    const to = h('input', { id: 'sg-lat-to', type: 'datetime-local', name: 'to', value: isoToLocalInput(now.toISOString()) });
    const latForm = h('form', { class: 'filters', id: 'sg-lat-form', 'aria-label': 'Latency', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); showLatency(); } },
    h('div', { class: 'field' }, h('label', { for: 'sg-lat-from' }, 'From'), from),
    h('div', { class: 'field' }, h('label', { for: 'sg-lat-to' }, 'To'), to),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'secondary', id: 'sg-lat-show' }, 'Show latency')));

    const upstream = h('input', { type: 'checkbox', id: 'sg-audit-upstream', name: 'upstream' });
    const auditForm = h('form', { class: 'filters', id: 'sg-audit-form', 'aria-label': 'Audit', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); showAudit(); } },
    h('div', { class: 'field check' }, upstream,
        h('label', { for: 'sg-audit-upstream' }, 'Include Genesys Cloud’s audit of the target queues')),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'secondary', id: 'sg-audit-show' }, 'Show audit')));

    Object.assign(els, {
        routeN: n, routeRunBtn: run, routeStop: stop, routeForm, latFrom: from, latTo: to, latForm, auditUpstream: upstream,
        auditForm,
        routeProgress: h('p', { id: 'sg-route-progress', class: 'muted', 'aria-live': 'polite' }),
        routeResult: h('div', { id: 'sg-route-result', tabindex: '-1' }),
        latResult: h('div', { id: 'sg-lat-result', tabindex: '-1' }),
        auditResult: h('div', { id: 'sg-audit-result', tabindex: '-1' }),
    });
    return h('div', { class: 'sg-tools' },
        h('section', { 'aria-labelledby': 'sg-route-head' }, h('h4', { id: 'sg-route-head' }, 'Route test'),
            routeForm, els.routeProgress, els.routeResult),
        h('section', { 'aria-labelledby': 'sg-lat-head' }, h('h4', { id: 'sg-lat-head' }, 'Latency per target'),
            h('p', { class: 'hint small' }, 'Waiting and answer times of the target queues’ conversations in Genesys ' +
                'Cloud over an interval (your time zone).'),
            latForm, els.latResult),
        h('section', { 'aria-labelledby': 'sg-audit-head' }, h('h4', { id: 'sg-audit-head' }, 'Audit'),
            auditForm, els.auditResult));
}

function stopRoute() {
    if (!routeRun) return;
    routeRun.ac.abort();
    routeRun = null;
}

async function runRoute() {
    if (routeRun) return;
    const st = current;
    const input = els.routeN;
    const raw = input.value.trim();
    const n = Number(raw);
    showFieldErrors(els.routeForm, null, {});
    if (!raw || (input.validity && input.validity.badInput) || !Number.isInteger(n) || n < 1 || n > ROUTE_N_MAX) {
        showFieldErrors(els.routeForm, { problem: { errors: [{ field: 'n',
            message: `Enter a whole number from 1 to ${ROUTE_N_MAX}.` }] } }, { n: input });
        input.focus();
        return;
    }
    const my = detailSeq;
    const run = { ac: new AbortController() };
    routeRun = run;
    const { routeRunBtn, routeStop, routeProgress, routeResult } = els;
    const tally = { n, done: 0, byQueue: new Map(), fallback: 0, stale: 0, maxAge: null, generations: new Set(),
        error: null, started: performance.now() };
    routeRunBtn.disabled = true;
    routeStop.hidden = false;
    fill(routeResult);
    routeProgress.textContent = `0 of ${n} calls…`;
    let next = 0;
    const url = `strategies/${encodeURIComponent(st.id)}/route`;
    const worker = async () => {
        while (next < n && !run.ac.signal.aborted) {
            next++;
            try {
                const r = await request(url, { signal: run.ac.signal });
                count(tally, r.body || {});
            } catch (e) {
                if (e && e.name === 'AbortError') return;
                if (!tally.error) tally.error = e;
                run.ac.abort();             // one failure ends the test: the rest would fail alike
                return;
            }
            tally.done++;
            if (tally.done % 25 === 0) routeProgress.textContent = `${tally.done} of ${n} calls…`;
        }
    };
    await Promise.all(Array.from({ length: Math.min(ROUTE_PARALLEL, n) }, worker));
    if (routeRun === run) routeRun = null;
    // The same tools still shown (the strategy was not closed or changed): the result,
    // partial when stopped (by the Stop button, or by leaving the view).
    routeRunBtn.disabled = false;
    routeStop.hidden = true;
    if (my !== detailSeq || routeResult !== els.routeResult) return;
    tally.ms = performance.now() - tally.started;
    routeProgress.textContent = `${tally.done} of ${n} calls${run.ac.signal.aborted && !tally.error ? ' (stopped)' : ''}.`;
    fill(routeResult, routeContent(st, tally));
    if (visible) routeResult.focus();
}

function count(tally, r) {
    const q = r.queue_id || '(none)';
    if (!tally.byQueue.has(q)) tally.byQueue.set(q, { count: 0, fallback: 0, priorities: new Set() });
    const c = tally.byQueue.get(q);
    c.count++;
    if (r.priority !== undefined && r.priority !== null) c.priorities.add(r.priority);
    if (r.reason === 'fallback') {
        c.fallback++;
        tally.fallback++;
    }
    if (r.stale) tally.stale++;
    if (Number.isFinite(r.age_ms)) tally.maxAge = Math.max(tally.maxAge ?? 0, r.age_ms);
    if (r.generation !== undefined && r.generation !== null) tally.generations.add(r.generation);
}

/** Where the route answers went, against the weights: see the hint below the table. */
function routeContent(st, tally) {
    const out = [];
    if (tally.error) {
        const e = tally.error;
        const err = h('div', { class: 'error', role: 'alert', id: 'sg-route-error' });
        showError(err, e, e.status === 404 ? 'The route endpoint has no route for this strategy (is it active?):'
            : 'A route call failed; the test stopped:');
        out.push(err);
    }
    if (!tally.done) return out;
    const targets = targetsOf(st);
    const fb = st.fallback || {};
    const weighted = tally.done - tally.fallback;
    // Per tier: the answers it got, and the weights of its targets that were picked at all
    // (a target without spare capacity is never picked: its share goes to the others).
    const tierCount = new Map(), tierWeight = new Map();
    for (const t of targets) {
        const c = tally.byQueue.get(t.queue_id);
        const picked = c ? c.count - c.fallback : 0;
        if (picked <= 0) continue;
        tierCount.set(t.priority, (tierCount.get(t.priority) || 0) + picked);
        tierWeight.set(t.priority, (tierWeight.get(t.priority) || 0) + (Number(t.weight) || 0));
    }
    const rows = targets.map((t, i) => {
        const c = tally.byQueue.get(t.queue_id);
        const picked = c ? c.count - c.fallback : 0;
        const inTier = tierCount.get(t.priority) || 0;
        const expected = picked > 0 && tierWeight.get(t.priority) ? (Number(t.weight) || 0) / tierWeight.get(t.priority) : null;
        const observed = inTier ? picked / inTier : null;
        return { kind: 'target', i, queue_id: t.queue_id, priority: t.priority, weight: t.weight, count: picked,
            observed, expected, inTier };
    }).sort((a, b) => (a.priority - b.priority) || (a.i - b.i));
    const known = new Set([...targets.map((t) => t.queue_id), fb.queue_id]);
    rows.push({ kind: 'fallback', queue_id: fb.queue_id || '—', priority: fb.priority, weight: fb.weight,
        count: tally.fallback, observed: null, expected: null });
    for (const [q, c] of tally.byQueue) {
        if (!known.has(q)) rows.push({ kind: 'unknown', queue_id: q, count: c.count, observed: null, expected: null });
    }
    const rate = tally.ms > 0 ? Math.round((tally.done / tally.ms) * 1000) : null;
    out.push(h('dl', { class: 'facts', id: 'sg-route-summary' },
        h('dt', {}, 'Answers'), h('dd', { id: 'sg-route-answers' }, `${tally.done} of ${tally.n}` +
            ` in ${num(tally.ms / 1000, 2)} s${rate ? ` (${rate} per second)` : ''}`),
        h('dt', {}, 'Weighted'), h('dd', { id: 'sg-route-weighted' }, String(weighted)),
        h('dt', {}, 'Fallback'), h('dd', { id: 'sg-route-fallback', class: tally.fallback ? 'sg-warn' : null },
            tally.fallback ? `${tally.fallback} (${pct(tally.fallback / tally.done)}) — every target was saturated`
                : '0'),
        h('dt', {}, 'Stale'), h('dd', { id: 'sg-route-stale', class: tally.stale ? 'sg-warn' : null },
            tally.stale ? `${tally.stale} answers came from observations older than 30 s` : 'no (the observations were fresh)',
            tally.maxAge !== null ? h('span', { class: 'muted' }, ` — oldest ${num(tally.maxAge / 1000, 1)} s`) : null),
        h('dt', {}, 'Route table'), h('dd', { id: 'sg-route-generations' }, tally.generations.size
            ? `generation ${Array.from(tally.generations).sort((a, b) => a - b).join(', ')}` : '—')));
    out.push(h('div', { class: 'table-wrap' }, dataTable({
        id: 'sg-route-table', caption: 'Route answers per queue, against each target’s weight share in its tier',
        rows, rowAttrs: (r) => ({ dataset: { queue: r.queue_id, kind: r.kind }, class: r.kind === 'unknown' ? 'bad' : null }),
        columns: [
            { label: 'Queue', head: true, cls: 'mono', cell: (r) => r.queue_id },
            { label: 'Role', cell: (r) => (r.kind === 'target' ? `target, tier ${r.priority}`
                : r.kind === 'fallback' ? 'fallback' : '✖ not in the strategy') },
            { label: 'Weight', cls: 'num', cell: (r) => num(r.weight, 4) },
            { label: 'Answers', cls: 'num answers', cell: (r) => String(r.count) },
            { label: 'Of all', cls: 'num all', cell: (r) => pct(r.count / tally.done) },
            { label: 'Share in tier', cls: 'num observed', cell: (r) => pct(r.observed) },
            { label: 'Expected share', cls: 'num expected', cell: (r) => pct(r.expected) },
            { label: 'Distribution', cell: (r) => shareBar(r) },
            { label: 'Check', cell: (r) => verdict(r) },
        ],
    })));
    out.push(h('p', { class: 'hint small' }, 'Share in tier: the answers that went to the queue over those its tier ' +
        'got. Expected: its weight over the weights of the targets of its tier that were picked (a target without ' +
        'spare capacity is never picked). The bar shows the observed share, the mark the expected one. “Off” means ' +
        'further from the expected share than chance explains (3 standard deviations).'));
    return out;
}

function shareBar(r) {
    if (r.kind !== 'target' || r.observed === null) return '';
    const W = 120, H = 14;
    return s('svg', { width: W, height: H, class: 'share-bar', 'aria-hidden': 'true' },
        s('rect', { x: 0, y: 2, width: W, height: H - 4, class: 'track' }),
        s('rect', { x: 0, y: 2, width: Math.max(0, Math.min(1, r.observed)) * W, height: H - 4, class: 'fill' }),
        r.expected === null ? null
            : s('line', { x1: r.expected * W, x2: r.expected * W, y1: 0, y2: H, class: 'mark' }));
}

function verdict(r) {
    if (r.kind === 'unknown') return h('span', { class: 'badge bad' }, '✖ unexpected queue');
    if (r.kind !== 'target') return '';
    if (!r.count) return h('span', { class: 'muted' }, 'not picked');
    if (r.expected === null || r.observed === null) return '';
    const sd = Math.sqrt((r.expected * (1 - r.expected)) / r.inTier);
    const ok = Math.abs(r.observed - r.expected) <= 3 * sd + 1e-9;
    return h('span', { class: `badge ${ok ? 'good' : 'bad'}` }, ok ? '✔ as expected' : '▲ off');
}

async function showLatency() {
    const st = current;
    const my = detailSeq;
    showFieldErrors(els.latForm, null, {});
    const from = localInputToIso(els.latFrom.value), to = localInputToIso(els.latTo.value);
    const errors = [];
    if (!from) errors.push({ field: 'from', message: 'Enter the start of the interval.' });
    if (!to) errors.push({ field: 'to', message: 'Enter the end of the interval.' });
    if (from && to && Date.parse(to) <= Date.parse(from)) errors.push({ field: 'to', message: 'The end must be after the start.' });
    if (errors.length) {
        showFieldErrors(els.latForm, { problem: { errors } }, { from: els.latFrom, to: els.latTo });
        els.latForm.querySelector('[aria-invalid="true"]').focus();
        return;
    }
    fill(els.latResult, h('p', { class: 'loading' }, 'Asking Genesys Cloud…'));
    await withButton('sg-lat-show', 'Loading…', async () => {
        try {
            const r = await request(`${path(st.id)}/latency`, { query: { interval: `${from}/${to}` } });
            if (my !== detailSeq) return;
            fill(els.latResult, latencyContent(r.body || {}));
        } catch (e) {
            if (my !== detailSeq) return;
            const err = h('div', { class: 'error', role: 'alert', id: 'sg-lat-error' });
            showError(err, e, 'Could not read the latency:');
            if (retryWords(e)) err.append(retryWords(e));
            showFieldErrors(els.latForm, e, { interval: els.latFrom });
            fill(els.latResult, err);
        }
        els.latResult.focus();
    });
}

/** The rows of a per-target answer: its first array of objects. */
function rowsOf(body, names) {
    for (const k of names) if (Array.isArray(body[k])) return body[k];
    for (const v of Object.values(body)) if (Array.isArray(v) && v.every((x) => x && typeof x === 'object')) return v;
    return [];
}

function cellText(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'number') return num(v, 2);
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

/** {"wait_ms": {"avg": 1, "max": 2}} → {"wait_ms avg": 1, "wait_ms max": 2} (one level). */
function flatten(row) {
    const out = {};
    for (const [k, v] of Object.entries(row)) {
        if (v && typeof v === 'object' && !Array.isArray(v)) {
            for (const [k2, v2] of Object.entries(v)) out[`${k} ${k2}`] = v2;
        } else {
            out[k] = v;
        }
    }
    return out;
}

const LABELS = { queue_id: 'Queue', offered: 'Offered', answered: 'Answered', wait_ms: 'Wait', answer_ms: 'Answer',
    avg: 'average (ms)', max: 'longest (ms)', count: 'count' };

function columnLabel(k) {
    return k.split(' ').map((p) => LABELS[p] || p.replace(/_/g, ' ')).join(', ');
}

function latencyContent(b) {
    const rows = rowsOf(b, ['targets', 'queues', 'data']).map(flatten);
    const keys = [];
    for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
    const cols = ['queue_id', ...keys.filter((k) => k !== 'queue_id')].filter((k) => keys.includes(k));
    const facts = Object.entries(b).filter(([, v]) => v === null || typeof v !== 'object');
    return [
        facts.length ? h('dl', { class: 'facts', id: 'sg-lat-facts' }, facts.map(([k, v]) =>
            [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, cellText(v))])) : null,
        rows.length ? h('div', { class: 'table-wrap' }, dataTable({
            id: 'sg-lat-table', caption: 'Latency per target queue', rows,
            rowAttrs: (r) => ({ dataset: { queue: r.queue_id || '' } }),
            columns: cols.map((k, i) => ({ label: columnLabel(k), head: i === 0, cls: k === 'queue_id' ? 'mono' : 'num',
                cell: (r) => cellText(r[k]) })),
        })) : h('p', { class: 'empty' }, 'No conversations in that interval.'),
    ];
}

async function showAudit() {
    const st = current;
    const my = detailSeq;
    fill(els.auditResult, h('p', { class: 'loading' }, els.auditUpstream.checked
        ? 'Reading gcmon’s audit and asking Genesys Cloud’s audit query (this can take a few seconds)…' : 'Loading…'));
    await withButton('sg-audit-show', 'Loading…', async () => {
        try {
            const r = await request(`${path(st.id)}/audit`, { query: { upstream: els.auditUpstream.checked ? 'true' : '' } });
            if (my !== detailSeq) return;
            fill(els.auditResult, auditContent(r.body || {}));
        } catch (e) {
            if (my !== detailSeq) return;
            const err = h('div', { class: 'error', role: 'alert', id: 'sg-audit-error' });
            showError(err, e, 'Could not read the audit:');
            if (retryWords(e)) err.append(retryWords(e));
            fill(els.auditResult, err);
        }
        els.auditResult.focus();
    });
}

function auditWho(e) {
    if (e.actor) return e.actor === '-' ? '- (anonymous)' : e.actor;
    if (e.user && typeof e.user === 'object') return e.user.name || e.user.id || '—';
    if (e.client && typeof e.client === 'object') return `OAuth client ${e.client.id}`;
    return '—';
}

function auditDetail(e) {
    const changes = Array.isArray(e.changes) ? e.changes : Array.isArray(e.propertyChanges) ? e.propertyChanges : [];
    const values = (v) => (Array.isArray(v) ? v.join(', ') : (v ?? '')) || '—';
    if (changes.length) {
        const on = e.entity && typeof e.entity === 'object' ? `${e.entity.name || e.entity.id}: ` : '';
        return on + changes.map((c) => `${c.property}: ${values(c.old ?? c.oldValues)} → ` +
            `${values(c.new ?? c.newValues)}`).join('; ');
    }
    const parts = [];
    const target = e.target || (e.entity && (e.entity.name ? `${e.entity.name} (${e.entity.id})` : e.entity.id));
    if (target) parts.push(String(target));
    if (e.result && typeof e.result === 'object') {
        const t = e.result.detail || e.result.error_message || (typeof e.result.status === 'string' ? e.result.status : '');
        if (t) parts.push(String(t));
    }
    return parts.join(' — ');
}

function auditContent(b) {
    const rows = rowsOf(b, ['entries', 'data']);
    if (!rows.length) return h('p', { class: 'empty', id: 'sg-audit-empty' }, 'No audit entries.');
    return [b.truncated ? h('p', { class: 'hint', id: 'sg-audit-truncated' }, 'Only the newest entries are shown ' +
        '(gcmon keeps at most 100 per strategy here; Genesys Cloud’s part stops after 10 pages).') : null,
    h('div', { class: 'table-wrap' }, dataTable({
        id: 'sg-audit-table', caption: 'Audit entries of this strategy, newest first', rows,
        rowAttrs: (e) => ({ dataset: { source: e.source || (e.eventDate ? 'genesys' : 'gcmon') } }),
        columns: [
            { label: 'When', cell: (e) => { const t = e.at || e.eventDate || e.timestamp || e.created_at; return timeEl(t, localDateTime(t)); } },
            { label: 'Source', cell: (e) => e.source || (e.eventDate ? 'genesys' : 'gcmon') },
            { label: 'Who', cell: auditWho },
            { label: 'Action', cell: (e) => e.action || '—' },
            { label: 'Status', cell: (e) => String(e.status ?? '—') },
            { label: 'Detail', cell: auditDetail },
        ],
    }))];
}

// ------------------------------------------------------------------ the list

function loadList(cursor) {
    els.lSummary.textContent = 'Loading…';
    const query = { status: list.status, limit: list.limit };
    if (cursor) query.cursor = cursor;
    return request('admin/strategies', { query }).then((r) => r.body);
}

function markListRow() {
    if (!els.lTable) return;
    for (const tr of els.lTable.querySelectorAll('tbody tr')) {
        if (current && tr.dataset.id === current.id) tr.setAttribute('aria-current', 'true');
        else tr.removeAttribute('aria-current');
    }
}

function renderList(body, first, err) {
    if (err) {
        els.lSummary.textContent = '';
        fill(els.lTable);
        showFieldErrors(els.lForm, err, { status: els.lStatus, limit: els.lLimit });
        showError(els.lError, err, 'Could not load the strategies:');
        return;
    }
    showFieldErrors(els.lForm, null, {});
    showError(els.lError, null);
    const rows = Array.isArray(body.data) ? body.data : [];
    if (!rows.length) {
        els.lSummary.textContent = body.total ? 'No more strategies.' : 'No strategies.';
        fill(els.lTable, h('p', { class: 'empty' }, list.status ? `No ${list.status} strategy.`
            : 'No strategy has been created yet: press “New strategy”.'));
        return;
    }
    els.lSummary.textContent = plural(body.total ?? rows.length, 'strategy', 'strategies');
    fill(els.lTable, dataTable({
        id: 'sgl-table', caption: 'Strategies, newest first; choose one to see it', rows,
        rowAttrs: (row) => ({ class: 'clickable', dataset: { id: row.id, status: row.status || '' } }),
        columns: [
            { label: 'Name', cell: (row) => h('button', { type: 'button', class: 'link', 'aria-label':
                `Show strategy ${row.name || row.id}`, onclick: () => openStrategy(row.id, true) }, row.name || row.id) },
            { label: 'Status', cell: (row) => [h('span', { class: `badge sg-${row.status || 'unknown'}` }, row.status || '—'),
                row.status === 'failed' && row.error_message ? h('span', { class: 'small' }, ` ${row.error_message}`) : null] },
            { label: 'Targets', cls: 'num', cell: (row) => String(targetsOf(row).length) },
            { label: 'Tiers', cls: 'num', cell: (row) => String(tierSums(targetsOf(row)).size) },
            { label: 'Created by', cell: (row) => (row.created_by === '-' ? '- (anonymous)' : (row.created_by || '—')) },
            { label: 'Created', cell: (row) => timeEl(row.created_at, localDateTime(row.created_at)) },
            { label: 'Updated', cell: (row) => timeEl(row.updated_at, localDateTime(row.updated_at)) },
        ],
    }));
    for (const tr of els.lTable.querySelectorAll('tbody tr')) {
        // A click anywhere on the row does what its button does (the button is the keyboard's way).
        tr.addEventListener('click', (e) => { if (!e.target.closest('button')) tr.querySelector('button.link').click(); });
    }
    markListRow();
}
