// Weights: distribute routing weights over a queue's members. Load the
// queue's members with their current proficiency of the weight skill
// (GET api/v1/admin/queues/{id}/weights), enter a weight (0..1) per member
// while the sum and the saturation projection are shown live, then apply
// (POST the same address, with an Idempotency-Key). Below, the stored
// distributions (GET api/v1/admin/distributions), newest first, each with
// its request and result.

import { h, fill, timeEl } from './dom.js';
import { request } from './api.js';
import { board } from './boardmodel.js';
import { localDateTime, num } from './fmt.js';
import { replaceParams } from './nav.js';
import { showError, showFieldErrors, fillQueueDatalist } from './ui.js';

const SUM_EPSILON = 1e-9;          // the server's tolerance for "sum ≤ 1.0"
const OVERFLOW_DEFAULT = '0.85';
const UTILIZATION_DEFAULT = '0.8';
const SIZES = ['10', '20', '50', '100'];

let els = {};
let preview = null;          // the last GET …/weights answer
let rows = [];               // [{member, input}] of the members table
let names = new Map();       // user id → name, from the previews seen
let loadSeq = 0;
let attempt = null;          // {key, sig, retry} of the last "Apply"
let list = { queue: '', limit: '20', rows: [], next: null, total: 0 };
let listSeq = 0;
let detailSeq = 0;

// ------------------------------------------------------------------ numbers

function pct(x) {
    return x === null || x === undefined ? '—' : `${num(x, 2)} %`;
}

/** An <input type=number>'s value: null when empty, NaN when not a number. */
function numberOf(input) {
    if (input.validity && input.validity.badInput) return NaN;
    const v = input.value.trim();
    return v === '' ? null : Number(v);
}

/** A random version-4 UUID (crypto.randomUUID only exists on https or localhost). */
function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (n) => n.toString(16).padStart(2, '0')).join('');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function memberName(uid) {
    return names.get(uid) || board.nameOf(uid) || uid;
}

const yesNo = (v) => (v === true ? 'yes' : v === false ? 'no' : '—');

// ------------------------------------------------------------------ mount / show

export function mount(section) {
    const queue = h('input', { id: 'w-queue', name: 'queue_id', required: true, autocomplete: 'off',
        maxlength: '64', list: 'w-queues', spellcheck: 'false', 'aria-describedby': 'w-queue-hint' });
    const skill = h('input', { id: 'w-skill', name: 'skill_id', autocomplete: 'off', maxlength: '64',
        spellcheck: 'false' });
    const loadForm = h('form', { class: 'filters', id: 'w-load-form', 'aria-label': 'Choose a queue', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); loadPreview(true); } },
    h('div', { class: 'field' }, h('label', { for: 'w-queue' }, 'Queue id'), queue),
    h('div', { class: 'field' }, h('label', { for: 'w-skill' }, 'Weight skill id (optional)'), skill),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary', id: 'w-load' }, 'Load members')),
    h('p', { class: 'hint small field-wide', id: 'w-queue-hint' }, 'The queue’s Genesys Cloud id (the monitored ' +
        'queues are offered as you type). Without a skill id gcmon uses the queue’s GcmonWeightSkill.'),
    h('datalist', { id: 'w-queues' }));
    for (const el of [queue, skill]) {
        el.addEventListener('change', () => {
            if (preview && (queue.value.trim() !== preview.queue_id || skill.value.trim() !== (els.loadedSkill || ''))) {
                clearEditor('The queue or skill changed: press “Load members” to see its members.');
            }
        });
    }

    const overflow = h('input', { id: 'w-overflow', name: 'overflow_threshold', type: 'number', min: '0', max: '1',
        step: '0.01', value: OVERFLOW_DEFAULT, inputmode: 'decimal' });
    const util = h('input', { id: 'w-util', name: 'utilization_target', type: 'number', min: '0', max: '1',
        step: '0.01', value: UTILIZATION_DEFAULT, inputmode: 'decimal' });
    const load = h('input', { id: 'w-projected', name: 'projected_load', type: 'number', min: '0', step: 'any',
        inputmode: 'decimal' });
    const strategy = h('input', { id: 'w-strategy', name: 'strategy_reference', maxlength: '200', autocomplete: 'off' });
    for (const el of [overflow, util, load]) el.addEventListener('input', renderSaturation);

    const sum = h('p', { class: 'weight-sum', id: 'w-sum', 'aria-live': 'polite' });
    const applyBtn = h('button', { type: 'submit', class: 'primary', id: 'w-apply' }, 'Apply weights');
    const form = h('form', { id: 'w-form', 'aria-label': 'Member weights', novalidate: true, hidden: true,
        onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('h3', { id: 'w-members-head' }, 'Members'),
    h('p', { class: 'hint', id: 'w-preview-info' }),
    h('div', { class: 'table-wrap', id: 'w-members' }),
    h('div', { class: 'sum-row' }, h('div', { class: 'sum-box' }, sum),
        h('button', { type: 'button', class: 'secondary small', id: 'w-use-current', onclick: useCurrent },
            'Use current weights'),
        h('button', { type: 'button', class: 'secondary small', id: 'w-clear', onclick: clearWeights },
            'Clear weights')),
    h('fieldset', { id: 'w-settings' },
        h('legend', {}, 'Saturation guard'),
        h('div', { class: 'field' }, h('label', { for: 'w-overflow' }, 'Overflow threshold'), overflow),
        h('div', { class: 'field' }, h('label', { for: 'w-util' }, 'Utilization target'), util),
        h('div', { class: 'field' }, h('label', { for: 'w-projected' }, 'Projected load (optional)'), load),
        h('div', { class: 'field' }, h('label', { for: 'w-strategy' }, 'Strategy reference (optional)'), strategy),
        h('p', { class: 'hint small' }, 'gcmon refuses the distribution (409) when the projected load over the ' +
            'capacity (active agents × utilization target) is above the overflow threshold. Without a projected ' +
            'load it uses the queue’s current interactions plus waiting ones.')),
    h('section', { class: 'saturation', id: 'w-sat', 'aria-labelledby': 'w-sat-head', 'aria-live': 'polite' }),
    h('div', { class: 'field actions' }, applyBtn));

    els = {
        root: section, queue, skill, loadForm, form, overflow, util, load, strategy, sum, applyBtn,
        queues: loadForm.querySelector('#w-queues'),
        info: form.querySelector('#w-preview-info'),
        members: form.querySelector('#w-members'),
        sat: form.querySelector('#w-sat'),
        empty: h('p', { class: 'empty', id: 'w-empty' }, 'Enter a queue id and press “Load members”.'),
        error: h('div', { class: 'error', role: 'alert', hidden: true, id: 'w-error' }),
        result: h('div', { id: 'w-result', hidden: true, tabindex: '-1' }),
        loadedSkill: '',
    };

    // Distributions
    const dQueue = h('input', { id: 'd-queue', name: 'queue_id', autocomplete: 'off', maxlength: '64',
        list: 'w-queues', spellcheck: 'false' });
    const dLimit = h('select', { id: 'd-limit', name: 'limit' },
        SIZES.map((n) => h('option', { value: n }, `${n} at a time`)));
    dLimit.value = list.limit;
    const dForm = h('form', { class: 'filters', id: 'd-form', 'aria-label': 'Distribution filters',
        onsubmit: (e) => {
            e.preventDefault();
            list.queue = dQueue.value.trim();
            list.limit = dLimit.value;
            loadList(false);
        } },
    h('div', { class: 'field' }, h('label', { for: 'd-queue' }, 'Queue id'), dQueue),
    h('div', { class: 'field' }, h('label', { for: 'd-limit' }, 'Page size'), dLimit),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary', id: 'd-show' }, 'Show'),
        h('button', { type: 'button', class: 'secondary', id: 'd-refresh', onclick: () => loadList(false) }, 'Refresh')));
    Object.assign(els, {
        dQueue, dLimit, dForm,
        dError: h('div', { class: 'error', role: 'alert', hidden: true, id: 'd-error' }),
        dSummary: h('p', { class: 'summary', id: 'd-summary', 'aria-live': 'polite' }),
        dTable: h('div', { class: 'table-wrap', id: 'd-list' }),
        dMore: h('button', { type: 'button', class: 'secondary', id: 'd-more', hidden: true,
            onclick: () => loadList(true) }, 'More'),
        dDetail: h('section', { class: 'current', id: 'd-detail', hidden: true, tabindex: '-1',
            'aria-labelledby': 'd-detail-head' }),
    });

    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-weights', tabindex: '-1' }, 'Weights')),
        h('p', { class: 'hint' }, 'Distributes routing weights over a queue’s members: each weight (0 to 1) becomes ' +
            'the member’s proficiency of the queue’s weight skill (5 × weight), and the queue routes to the best ' +
            'of them. The weights together may not exceed 1. If a member cannot be written, every change is undone.'),
        loadForm, els.error, els.empty, form, els.result,
        h('section', { class: 'distributions', 'aria-labelledby': 'd-head' },
            h('h3', { id: 'd-head' }, 'Distributions'),
            h('p', { class: 'hint' }, 'Every distribution gcmon ran, newest first. Choose one to see its request and result.'),
            dForm, els.dError, els.dSummary, els.dTable, h('div', { class: 'pager' }, els.dMore), els.dDetail));
}

export async function show(params) {
    const qid = params.get('queue_id') || '';
    const sid = params.get('skill_id') || '';
    fillQueueList();
    if (qid && (!preview || preview.queue_id !== qid || els.loadedSkill !== sid)) {
        els.queue.value = qid;
        els.skill.value = sid;
        loadPreview(false);
    }
    loadList(false);
}

/** The monitored queues (those on the board) as suggestions for the queue id inputs. */
function fillQueueList() {
    return fillQueueDatalist(els.queues);
}

// ------------------------------------------------------------------ the preview

function weightsPath(qid) {
    return `admin/queues/${encodeURIComponent(qid)}/weights`;
}

function loadFields() {
    return { queue_id: els.queue, skill_id: els.skill };
}

function clearEditor(message) {
    preview = null;
    rows = [];
    els.form.hidden = true;
    els.empty.hidden = false;
    els.empty.textContent = message || 'Enter a queue id and press “Load members”.';
}

async function loadPreview(focusNext) {
    const qid = els.queue.value.trim();
    const sid = els.skill.value.trim();
    showResult(null);
    showFieldErrors(els.root, null, {});
    if (!qid) {
        showFieldErrors(els.root, { problem: { errors: [{ field: 'queue_id', message: 'Enter the queue id first.' }] } },
            loadFields());
        els.queue.focus();
        return;
    }
    replaceParams('weights', { queue_id: qid, skill_id: sid });
    const my = ++loadSeq;
    clearEditor('Reading the queue’s members and their proficiency from Genesys Cloud…');
    els.empty.className = 'loading';
    try {
        const r = await request(weightsPath(qid), { query: { skill_id: sid } });
        if (my !== loadSeq) return;
        showError(els.error, null);
        els.empty.className = 'empty';
        preview = r.body;
        els.loadedSkill = sid;
        attempt = null;
        renderPreview();
        if (focusNext && rows.length) rows[0].input.focus();
    } catch (e) {
        if (my !== loadSeq) return;
        els.empty.className = 'empty';
        clearEditor('No members loaded.');
        showFieldErrors(els.root, e, loadFields());
        showError(els.error, e, 'Could not load the queue’s members:');
    }
}

function renderPreview() {
    const p = preview;
    for (const m of p.members || []) if (m.name) names.set(m.user_id, m.name);
    els.empty.hidden = true;
    els.form.hidden = false;
    const members = p.members || [];
    fill(els.info, `Queue ${p.queue_id}, weight skill ${p.skill_id || '—'}: ${members.length} member` +
        `${members.length === 1 ? '' : 's'}, ${(p.saturation && p.saturation.active_agents) ?? 0} active ` +
        `(joined and not off queue). Leave a weight empty to leave that member out.`);
    rows = members.map((m, i) => {
        const id = `w-wt-${i}`;
        const input = h('input', { id, type: 'number', min: '0', max: '1', step: '0.01', inputmode: 'decimal',
            class: 'weight', dataset: { user: m.user_id }, 'aria-label': `New weight of ${m.name || m.user_id}` });
        input.addEventListener('input', renderSum);
        return { member: m, input };
    });
    if (!rows.length) {
        fill(els.members, h('p', { class: 'empty' }, 'This queue has no members.'));
    } else {
        fill(els.members, h('table', { class: 'data members', id: 'w-members-table' },
            h('caption', { class: 'sr-only' }, `Members of queue ${p.queue_id}`),
            h('thead', {}, h('tr', {}, ['Name', 'User id', 'Routing status', 'Joined', 'Active', 'Proficiency',
                'Current weight', 'New weight (0–1)'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, rows.map(({ member: m, input }) => h('tr', { dataset: { user: m.user_id } },
                h('th', { scope: 'row', class: 'name' }, m.name || m.user_id),
                h('td', { class: 'mono' }, m.user_id),
                h('td', {}, m.routing_status || '—'),
                h('td', {}, yesNo(m.joined)),
                h('td', {}, yesNo(m.active)),
                h('td', { class: 'num prof' }, m.proficiency === null || m.proficiency === undefined
                    ? h('span', { class: 'muted' }, 'no skill')
                    : `${num(m.proficiency, 2)}${m.state && m.state !== 'active' ? ` (${m.state})` : ''}`),
                h('td', { class: 'num cur' }, num(m.weight ?? (m.proficiency === null || m.proficiency === undefined
                    ? null : m.proficiency / 5), 3)),
                h('td', { class: 'input-cell' }, input))))));
    }
    renderSum();
    renderSaturation();
}

function useCurrent() {
    for (const { member: m, input } of rows) {
        const w = m.weight ?? (m.proficiency === null || m.proficiency === undefined ? null : m.proficiency / 5);
        input.value = w === null ? '' : num(w, 3);
    }
    renderSum();
}

function clearWeights() {
    for (const { input } of rows) input.value = '';
    renderSum();
}

/** {weights: {uid: w}, sum, count, bad: [{field, message}]} from the inputs. */
function readWeights() {
    const weights = {};
    const bad = [];
    let sum = 0, count = 0;
    for (const { member: m, input } of rows) {
        const w = numberOf(input);
        if (w === null) continue;
        if (Number.isNaN(w)) {
            bad.push({ field: `member_weights.${m.user_id}`, message: 'Enter a number from 0 to 1 (or leave it empty).' });
            continue;
        }
        weights[m.user_id] = w;
        sum += w;
        count++;
    }
    return { weights, sum, count, bad };
}

function renderSum() {
    const { sum, count } = readWeights();
    const over = sum > 1 + SUM_EPSILON;
    els.sum.classList.toggle('over', over);
    fill(els.sum, h('span', {}, 'Sum of the weights: '), h('strong', { id: 'w-sum-value' }, num(sum, 4)),
        ` of 1 (${count} member${count === 1 ? '' : 's'})`,
        over ? h('span', { class: 'over-note' }, ' — over 1: the server will refuse this (422).') : null);
}

// ------------------------------------------------------------------ saturation, live

/** The projection the server will make, from the preview and the inputs. */
function projection() {
    if (!preview) return null;
    const s = preview.saturation || {};
    const active = Number(s.active_agents) || 0;
    const util = numberOf(els.util);
    const overflow = numberOf(els.overflow);
    const entered = numberOf(els.load);
    const load = entered === null ? (Number(s.projected_load) || 0) : entered;
    const capacity = util === null || Number.isNaN(util) ? NaN : active * util;
    const ratio = capacity > 0 ? load / capacity : null;
    const blocked = !(capacity > 0) || (overflow !== null && !Number.isNaN(overflow) && ratio > overflow);
    return { active, util, overflow, load, entered: entered !== null, capacity, ratio, blocked,
        interacting: s.interacting, waiting: s.waiting };
}

function renderSaturation() {
    const p = projection();
    if (!p) {
        fill(els.sat);
        return;
    }
    const loadNote = p.entered ? 'as entered'
        : `now: ${p.interacting ?? 0} interacting + ${p.waiting ?? 0} waiting`;
    let verdict;
    if (Number.isNaN(p.capacity) || Number.isNaN(p.load) || p.overflow === null || Number.isNaN(p.overflow)) {
        verdict = h('p', { class: 'sat-note', id: 'w-sat-verdict' }, 'Enter the utilization target, the overflow ' +
            'threshold and (if you want) the projected load as numbers to see the projection.');
    } else if (!(p.capacity > 0)) {
        verdict = h('p', { class: 'sat-warn', id: 'w-sat-verdict', role: 'alert' }, h('strong', {}, 'Blocked: '),
            `the queue has no capacity (${p.active} active agents × utilization ${num(p.util, 3)}). ` +
            'The server will refuse this (409).');
    } else if (p.blocked) {
        verdict = h('p', { class: 'sat-warn', id: 'w-sat-verdict', role: 'alert' }, h('strong', {}, 'Too much load: '),
            `the ratio ${num(p.ratio)} is above the overflow threshold ${num(p.overflow, 3)}. ` +
            'The server will refuse this (409).');
    } else {
        verdict = h('p', { class: 'sat-ok', id: 'w-sat-verdict' },
            `Within the overflow threshold ${num(p.overflow, 3)}: the server will accept this projection.`);
    }
    fill(els.sat, h('h4', { id: 'w-sat-head' }, 'Saturation before applying'),
        h('dl', { class: 'facts' },
            h('dt', {}, 'Active agents'), h('dd', { id: 'w-sat-active' }, String(p.active)),
            h('dt', {}, 'Capacity'), h('dd', { id: 'w-sat-capacity' },
                Number.isNaN(p.capacity) ? '—' : `${num(p.capacity)} (${p.active} × ${num(p.util, 3)})`),
            h('dt', {}, 'Projected load'), h('dd', { id: 'w-sat-load' },
                Number.isNaN(p.load) ? '—' : `${num(p.load)} (${loadNote})`),
            h('dt', {}, 'Ratio'), h('dd', { id: 'w-sat-ratio' },
                Number.isNaN(p.capacity) || Number.isNaN(p.load) ? '—' : (p.capacity > 0 ? num(p.ratio) : 'blocked (no capacity)'))),
        verdict);
}

// ------------------------------------------------------------------ apply

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

function applyFields() {
    const f = { member_weights: els.sum, overflow_threshold: els.overflow, utilization_target: els.util,
        projected_load: els.load, strategy_reference: els.strategy, skill_id: els.skill, queue_id: els.queue };
    for (const { member: m, input } of rows) f[`member_weights.${m.user_id}`] = input;
    return f;
}

/** A numeric setting: the number, or the text as typed (the server names what is wrong). */
function setting(input) {
    const v = numberOf(input);
    return Number.isNaN(v) ? input.value : v;
}

function buildBody() {
    const { weights } = readWeights();
    const body = { member_weights: weights };
    const overflow = setting(els.overflow);
    const util = setting(els.util);
    const load = setting(els.load);
    if (overflow !== null) body.overflow_threshold = overflow;
    if (util !== null) body.utilization_target = util;
    if (load !== null) body.projected_load = load;
    if (els.strategy.value.trim()) body.strategy_reference = els.strategy.value.trim();
    if (els.loadedSkill) body.skill_id = els.loadedSkill;
    return body;
}

async function apply() {
    if (!preview) return;
    const fields = applyFields();
    showFieldErrors(els.root, null, fields);
    showResult(null);
    const { bad } = readWeights();
    if (bad.length) {
        showFieldErrors(els.root, { problem: { errors: bad } }, fields);
        els.root.querySelector('[aria-invalid]').focus();
        return;
    }
    const qid = preview.queue_id;
    const body = buildBody();
    const sig = `${qid} ${JSON.stringify(body)}`;
    // One key per attempt; the same key again only to retry the same request
    // whose answer never came (or was not final), so it cannot run twice.
    if (!attempt || !attempt.retry || attempt.sig !== sig) attempt = { key: uuid(), sig, retry: false };
    const mine = attempt;
    els.applyBtn.disabled = true;
    els.applyBtn.textContent = 'Applying…';
    try {
        const r = await request(weightsPath(qid), { method: 'POST', body,
            headers: { 'Idempotency-Key': mine.key } });
        mine.retry = false;
        showResult('ok', successContent(r.body));
        els.result.focus();
        loadList(false);
    } catch (e) {
        const type = problemType(e);
        mine.retry = e.status === 0 || e.status === 500 || e.status === 503 || e.status === 504 ||
            type === 'idempotency_in_progress';
        showFailure(e, fields);
        if (e.status && e.status !== 422) loadList(false);
    } finally {
        els.applyBtn.disabled = false;
        els.applyBtn.textContent = 'Apply weights';
    }
}

function problemType(e) {
    return typeName(e && e.problem && e.problem.type);
}

/** "urn:gcmon:problem:saturation_blocked" (or a URL ending in it) → "saturation_blocked". */
function typeName(t) {
    return typeof t === 'string' ? t.slice(Math.max(t.lastIndexOf('/'), t.lastIndexOf(':')) + 1) : '';
}

function saturationWords(s) {
    if (!s) return null;
    return h('dl', { class: 'facts' },
        h('dt', {}, 'Active agents'), h('dd', {}, String(s.active_agents ?? '—')),
        h('dt', {}, 'Capacity'), h('dd', {}, num(s.capacity)),
        h('dt', {}, 'Projected load'), h('dd', {}, num(s.projected_load)),
        h('dt', {}, 'Ratio'), h('dd', {}, s.ratio === null || s.ratio === undefined ? 'blocked (no capacity)' : num(s.ratio)));
}

function userList(label, ids, id) {
    if (!Array.isArray(ids)) return null;
    return h('p', { id }, h('strong', {}, `${label}: `),
        ids.length ? ids.map((u) => `${memberName(u)} (${u})`).join(', ') : 'none');
}

/** The words for a failed distribution (a problem document p, HTTP status). */
function problemContent(status, p, message, rest = [], ids = 'w') {
    const type = (p && (typeName(p.type) || p.error)) || '';
    const out = [];
    const headline = {
        validation_failed: 'The request was refused; nothing was changed.',
        saturation_blocked: 'Refused: the queue would be saturated. Nothing was changed.',
        idempotency_in_progress: 'This request is still running from an earlier attempt. Wait a moment, then ' +
            'press “Apply weights” again to see its result (it will not run twice).',
        idempotency_key_reused: 'The server refused the request key. Press “Apply weights” again.',
        queue_update_failed: 'The queue could not be set to route by best skill. No member was changed.',
        member_update_failed: 'A member could not be written. gcmon undid the distribution.',
        queue_not_found: 'The queue does not exist (any more). Nothing was changed.',
        upstream_budget_exceeded: 'Refused before anything was sent: Genesys Cloud’s rate budget cannot ' +
            'fit this many members in time.',
    }[type];
    out.push(h('p', {}, h('strong', {}, headline || (status === 401 || status === 403
        ? 'Not allowed.' : 'The weights were not applied.')), ' ', message));
    if (p && p.saturation) out.push(saturationWords(p.saturation));
    if (p && (type === 'member_update_failed' || Array.isArray(p.rolled_back))) {
        const complete = Array.isArray(p.rollback_failed) && !p.rollback_failed.length && p.queue_restored === true;
        out.push(h('div', { class: 'rollback', id: `${ids}-rollback` },
            h('p', {}, h('strong', {}, complete ? 'Rollback complete: ' : 'Rollback incomplete: '),
                complete ? 'every member and the queue are as they were before.'
                    : 'some changes could not be undone; check these members in Genesys Cloud.'),
            userList('Written before the failure', p.applied, `${ids}-rb-applied`),
            userList('Failed', p.failed, `${ids}-rb-failed`),
            userList('Restored', p.rolled_back, `${ids}-rb-restored`),
            userList('Could not be restored', p.rollback_failed, `${ids}-rb-not-restored`),
            p.queue_restored === undefined ? null : h('p', { id: `${ids}-rb-queue` }, h('strong', {}, 'Queue: '),
                p.queue_restored ? 'its skill evaluation method was restored.'
                    : 'its skill evaluation method could not be restored.')));
    }
    if (rest.length) out.push(h('ul', { class: 'problem-list' }, rest.map((x) => h('li', {}, `${x.field}: ${x.message}`))));
    return out;
}

function showFailure(e, fields) {
    const type = problemType(e);
    const rest = showFieldErrors(els.root, e, fields);
    let message = e.message;
    if (e.status === 503 || e.status === 429) {
        if (e.retryAfter && /^\d+$/.test(e.retryAfter)) message += ` Try again in ${e.retryAfter} s.`;
    }
    const kind = e.status === 409 ? 'conflict' : 'bad';
    showResult(kind, problemContent(e.status, e.problem, message, rest));
    if ((e.status === 422 || e.status === 400) && type === 'validation_failed') {
        // The first field named (the sum is no control: then the first weight).
        const firstBad = els.root.querySelector('#w-load-form [aria-invalid], #w-form [aria-invalid]');
        if (firstBad === els.sum && rows.length) rows[0].input.focus();
        else if (firstBad) firstBad.focus();
    }
}

/** The result of a completed distribution (the 200 document). */
function successContent(d) {
    const req = d.requested_weights || {};
    const got = d.applied_weights || {};
    const ids = Array.from(new Set([...Object.keys(req), ...Object.keys(got)]));
    return [
        h('p', {}, h('strong', {}, `Distribution ${d.status || '—'}`),
            ` on queue ${d.queue_id}: ${ids.length} member${ids.length === 1 ? '' : 's'} written.`),
        h('dl', { class: 'facts' },
            h('dt', {}, 'Status'), h('dd', { class: 'r-status' }, d.status || '—'),
            h('dt', {}, 'Balance accuracy'), h('dd', { class: 'r-accuracy' }, pct(d.balance_accuracy)),
            h('dt', {}, 'Took'), h('dd', {}, d.latency_ms === undefined ? '—' : `${d.latency_ms} ms`),
            h('dt', {}, 'Genesys requests'), h('dd', {}, String(d.upstream_requests ?? '—')),
            h('dt', {}, 'Thresholds'), h('dd', {}, `overflow ${num(d.overflow_threshold, 3)}, utilization ${num(d.utilization_target, 3)}`),
            h('dt', {}, 'Saturation'), h('dd', {}, d.saturation
                ? `${d.saturation.active_agents} active, capacity ${num(d.saturation.capacity)}, load ` +
                  `${num(d.saturation.projected_load)}, ratio ${d.saturation.ratio === null ? '—' : num(d.saturation.ratio)}`
                : '—'),
            h('dt', {}, 'Id'), h('dd', { class: 'mono' }, d.id || '—')),
        ids.length ? h('table', { class: 'data applied' },
            h('caption', {}, 'Requested and applied weight per member'),
            h('thead', {}, h('tr', {}, ['Member', 'Requested', 'Applied', 'Proficiency'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, ids.map((u) => h('tr', { dataset: { user: u } },
                h('th', { scope: 'row' }, memberName(u)),
                h('td', { class: 'num' }, num(req[u], 4)),
                h('td', { class: 'num' }, num(got[u], 4)),
                h('td', { class: 'num' }, got[u] === undefined ? '—' : num(got[u] * 5, 2)))))) : null,
    ];
}

// ------------------------------------------------------------------ distributions

async function loadList(more) {
    const my = ++listSeq;
    const query = { queue_id: list.queue, limit: list.limit };
    if (more) {
        if (!list.next) return;
        query.cursor = list.next;
    }
    els.dQueue.value = list.queue;
    els.dMore.disabled = true;
    if (!more) els.dSummary.textContent = 'Loading…';
    try {
        const r = await request('admin/distributions', { query });
        if (my !== listSeq) return;
        showFieldErrors(els.dForm, null, {});
        showError(els.dError, null);
        const b = r.body;
        list.rows = more ? list.rows.concat(b.data || []) : (b.data || []);
        list.next = b.next_cursor || null;
        list.total = b.total ?? list.rows.length;
        renderList(more ? list.rows.length - (b.data || []).length : -1);
    } catch (e) {
        if (my !== listSeq) return;
        els.dSummary.textContent = '';
        showFieldErrors(els.dForm, e, { queue_id: els.dQueue, limit: els.dLimit });
        showError(els.dError, e, 'Could not load the distributions:');
    } finally {
        els.dMore.disabled = false;
    }
}

function membersCount(m) {
    if (Array.isArray(m)) return m.length;
    if (m && typeof m === 'object') return Object.keys(m).length;
    return m ?? '—';
}

function renderList(firstNew) {
    els.dMore.hidden = !list.next;
    if (!list.rows.length) {
        els.dSummary.textContent = 'No distributions.';
        fill(els.dTable, h('p', { class: 'empty' }, list.queue ? `No distribution for queue ${list.queue}.`
            : 'No distribution has been run yet.'));
        return;
    }
    els.dSummary.textContent = `${list.rows.length} of ${list.total} distribution${list.total === 1 ? '' : 's'}`;
    const buttons = [];
    fill(els.dTable, h('table', { class: 'data', id: 'dist-table' },
        h('caption', { class: 'sr-only' }, 'Distributions, newest first; choose one to see its detail'),
        h('thead', {}, h('tr', {}, ['Time', 'Queue', 'Status', 'HTTP', 'Actor', 'Members', 'Balance accuracy',
            'Genesys requests', 'Took'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, list.rows.map((row) => {
            const btn = h('button', { type: 'button', class: 'link', 'aria-label':
                `Show distribution ${row.id} of ${localDateTime(row.created_at)}`, onclick: () => openDetail(row.id, btn) },
            timeEl(row.created_at, localDateTime(row.created_at)));
            buttons.push(btn);
            const tr = h('tr', { class: 'clickable', dataset: { id: row.id } },
                h('td', {}, btn),
                h('td', { class: 'mono' }, row.queue_id),
                h('td', {}, row.status || '—'),
                h('td', {}, h('span', { class: `badge ${row.http_status < 300 ? 'good' : 'bad'}` }, String(row.http_status ?? '—'))),
                h('td', {}, row.actor === '-' ? h('span', { class: 'muted', title: 'No authenticated user' }, '- (anonymous)') : (row.actor || '—')),
                h('td', { class: 'num' }, String(membersCount(row.members))),
                h('td', { class: 'num' }, pct(row.balance_accuracy)),
                h('td', { class: 'num' }, String(row.upstream_requests ?? '—')),
                h('td', { class: 'num' }, row.latency_ms === undefined ? '—' : `${row.latency_ms} ms`));
            // A click anywhere on the row does what its button does (the button is the keyboard's way).
            tr.addEventListener('click', (e) => { if (!e.target.closest('button')) btn.click(); });
            return tr;
        }))));
    if (firstNew >= 0 && buttons[firstNew]) buttons[firstNew].focus();
}

async function openDetail(id, from) {
    const my = ++detailSeq;
    for (const tr of els.dTable.querySelectorAll('tr[aria-current]')) tr.removeAttribute('aria-current');
    const tr = from && from.closest('tr');
    if (tr) tr.setAttribute('aria-current', 'true');
    els.dDetail.hidden = false;
    fill(els.dDetail, h('h4', { id: 'd-detail-head' }, `Distribution ${id}`), h('p', { class: 'loading' }, 'Loading…'));
    try {
        const r = await request(`admin/distributions/${encodeURIComponent(id)}`);
        if (my !== detailSeq) return;
        renderDetail(r.body, from);
    } catch (e) {
        if (my !== detailSeq) return;
        const err = h('div', { class: 'error', role: 'alert' });
        showError(err, e, 'Could not load this distribution:');
        fill(els.dDetail, h('h4', { id: 'd-detail-head' }, `Distribution ${id}`), err);
    }
    els.dDetail.focus();
}

function requestContent(req) {
    if (!req || typeof req !== 'object') return h('p', { class: 'muted' }, 'Not recorded.');
    const mw = req.member_weights && typeof req.member_weights === 'object' ? req.member_weights : {};
    const ids = Object.keys(mw);
    return [
        h('dl', { class: 'facts' },
            h('dt', {}, 'Overflow threshold'), h('dd', {}, num(req.overflow_threshold, 3)),
            h('dt', {}, 'Utilization target'), h('dd', {}, num(req.utilization_target, 3)),
            h('dt', {}, 'Projected load'), h('dd', {}, req.projected_load === undefined || req.projected_load === null
                ? 'from the queue’s observations' : num(req.projected_load)),
            h('dt', {}, 'Skill'), h('dd', { class: 'mono' }, req.skill_id || 'the queue’s GcmonWeightSkill'),
            h('dt', {}, 'Strategy reference'), h('dd', {}, req.strategy_reference || '—')),
        ids.length ? h('table', { class: 'data' },
            h('caption', { class: 'sr-only' }, 'Requested weights'),
            h('thead', {}, h('tr', {}, ['Member', 'User id', 'Weight'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, ids.map((u) => h('tr', {},
                h('th', { scope: 'row' }, memberName(u)), h('td', { class: 'mono' }, u),
                h('td', { class: 'num' }, typeof mw[u] === 'number' ? num(mw[u], 4) : String(mw[u]))))))
            : h('p', { class: 'muted' }, 'No member weights.'),
    ];
}

function renderDetail(d, from) {
    const ok = d.http_status >= 200 && d.http_status < 300;
    const res = d.result || {};
    const problemMsg = res.detail || res.title || '';
    const back = h('button', { type: 'button', class: 'secondary small', id: 'd-close', onclick: () => {
        els.dDetail.hidden = true;
        if (from && from.isConnected) from.focus();
    } }, 'Close');
    fill(els.dDetail,
        h('div', { class: 'view-head' }, h('h4', { id: 'd-detail-head' }, `Distribution ${d.id}`), back),
        h('dl', { class: 'facts' },
            h('dt', {}, 'Queue'), h('dd', { class: 'mono' }, d.queue_id),
            h('dt', {}, 'When'), h('dd', {}, timeEl(d.created_at, localDateTime(d.created_at))),
            h('dt', {}, 'Who'), h('dd', {}, d.actor === '-' ? '- (anonymous)' : (d.actor || '—')),
            h('dt', {}, 'Status'), h('dd', { id: 'd-status' }, `${d.status || '—'} (HTTP ${d.http_status ?? '—'})`)),
        h('h5', {}, 'Request'), requestContent(d.request),
        h('h5', {}, 'Result'),
        h('div', { class: `result ${ok ? 'ok' : 'bad'}`, id: 'd-result' },
            ok ? successContent(res) : problemContent(d.http_status, res, problemMsg, [], 'd')));
}
