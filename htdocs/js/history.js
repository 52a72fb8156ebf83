// History: the recorded state transitions (GET api/v1/agent-status/history),
// filtered by agent, state and time range, paged by cursor, with a timeline
// bar of one agent's states over the range.

import { h, fill, timeEl } from './dom.js';
import { get } from './api.js';
import { STATES, stateInfo } from './states.js';
import { localDateTime, localTime, duration, localInputToIso, isoToLocalInput } from './fmt.js';
import { replaceParams } from './nav.js';
import { Pager, showError, showFieldErrors, fillAgentSelect, agentLabel, statePill } from './ui.js';

const TIMELINE_PAGES = 20;           // at most 20 × 100 transitions per timeline
const DEFAULT_SPAN_MS = 3600 * 1000;  // the timeline shows the last hour without a range

let els = {};
let query = {};
let pager;
let loadSeq = 0;

export function mount(section) {
    const user = h('select', { id: 'h-user', name: 'user_id' });
    const state = h('select', { id: 'h-state', name: 'state' }, h('option', { value: '' }, 'Any state'),
        STATES.map(([s]) => h('option', { value: s }, stateInfo(s).label)));
    const from = h('input', { id: 'h-from', name: 'from', type: 'datetime-local', step: '1' });
    const to = h('input', { id: 'h-to', name: 'to', type: 'datetime-local', step: '1' });
    const limit = h('select', { id: 'h-limit', name: 'limit' },
        ['10', '20', '50', '100'].map((n) => h('option', { value: n }, `${n} per page`)));
    const quick = (label, ms) => h('button', { type: 'button', class: 'secondary small', onclick: () => {
        const now = Date.now();
        from.value = isoToLocalInput(new Date(now - ms).toISOString());
        to.value = '';
        submit();
    } }, label);
    const form = h('form', { class: 'filters', id: 'history-form', 'aria-label': 'History filters',
        onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('div', { class: 'field' }, h('label', { for: 'h-user' }, 'Agent'), user),
    h('div', { class: 'field' }, h('label', { for: 'h-state' }, 'State'), state),
    h('div', { class: 'field' }, h('label', { for: 'h-from' }, 'From (your time)'), from),
    h('div', { class: 'field' }, h('label', { for: 'h-to' }, 'To (your time)'), to),
    h('div', { class: 'field' }, h('label', { for: 'h-limit' }, 'Page size'), limit),
    h('div', { class: 'field actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Show'),
        quick('Last hour', 3600e3), quick('Last 8 hours', 8 * 3600e3), quick('Last 24 hours', 24 * 3600e3)));
    els = {
        form, user, state, from, to, limit,
        error: h('div', { class: 'error', role: 'alert', hidden: true }),
        summary: h('p', { class: 'summary', 'aria-live': 'polite' }),
        table: h('div', { class: 'table-wrap' }),
        timeline: h('section', { class: 'timeline-box', 'aria-labelledby': 'tl-head', hidden: true }),
    };
    pager = new Pager('History pages', loadPage, renderPage);
    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-history', tabindex: '-1' }, 'History')),
        h('p', { class: 'hint' }, 'Every state change gcmon recorded, newest first. Times are in your ' +
            'browser’s time zone; hover one for UTC.'),
        form, els.error, els.timeline, els.summary, els.table, pager.el);
}

export async function show(params) {
    query = {
        user_id: params.get('user_id') || '',
        state: params.get('state') || '',
        from: params.get('from') || '',
        to: params.get('to') || '',
        limit: ['10', '20', '50', '100'].includes(params.get('limit')) ? params.get('limit') : '20',
    };
    els.state.value = query.state;
    els.from.value = isoToLocalInput(query.from);
    els.to.value = isoToLocalInput(query.to);
    els.limit.value = query.limit;
    await fillAgentSelect(els.user, query.user_id);
    run();
}

function submit() {
    const from = localInputToIso(els.from.value);
    const to = localInputToIso(els.to.value);
    query = { user_id: els.user.value, state: els.state.value, from, to, limit: els.limit.value };
    replaceParams('history', query);
    run();
}

function run() {
    showFieldErrors(els.form, null, {});
    showError(els.error, null);
    pager.reset();
    renderTimeline();
}

function loadPage(cursor) {
    const q = { ...query };
    if (cursor) q.cursor = cursor;
    els.summary.textContent = 'Loading…';
    els.table.setAttribute('aria-busy', 'true');
    return get('agent-status/history', q).then((r) => r.body);
}

function renderPage(body, first, err) {
    els.table.removeAttribute('aria-busy');
    if (err) {
        els.summary.textContent = '';
        fill(els.table);
        const rest = showFieldErrors(els.form, err, { user_id: els.user, state: els.state, from: els.from,
            to: els.to, limit: els.limit });
        showError(els.error, err, rest.length || !err.problem ? 'Could not load the history:' : 'Please correct the marked fields:');
        return;
    }
    showError(els.error, null);
    if (!body.data.length) {
        els.summary.textContent = body.total ? 'No more transitions.' : 'No transitions match these filters.';
        fill(els.table, h('p', { class: 'empty' }, body.total ? '' : 'Nothing recorded for this agent, state and time range.'));
        return;
    }
    els.summary.textContent = `${body.total} transition${body.total === 1 ? '' : 's'}`;
    fill(els.table, h('table', { class: 'data', id: 'history-table' },
        h('caption', { class: 'sr-only' }, 'State transitions, newest first'),
        h('thead', {}, h('tr', {}, ['Time', 'Agent', 'State', 'Previous state', 'Presence', 'Routing', 'Source']
            .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, body.data.map((r) => h('tr', { dataset: { id: r.id } },
            h('td', {}, timeEl(r.event_timestamp, localDateTime(r.event_timestamp))),
            h('td', {}, agentLabel(r.user_id, r.user_name)),
            h('td', {}, statePill(r.state)),
            h('td', {}, r.previous_state ? stateInfo(r.previous_state).label : '—'),
            h('td', {}, r.presence || '—'),
            h('td', {}, r.routing_status || '—'),
            h('td', {}, r.source || '—'))))));
}

// ------------------------------------------------------------------ timeline

async function fetchAll(q) {
    const rows = [];
    let cursor = null;
    let truncated = false;
    for (let i = 0; i < TIMELINE_PAGES; i++) {
        const r = await get('agent-status/history', { ...q, limit: 100, cursor });
        rows.push(...r.body.data);
        cursor = r.body.next_cursor;
        if (!cursor) break;
        if (i === TIMELINE_PAGES - 1) truncated = true;
    }
    return { rows, truncated };
}

async function renderTimeline() {
    const box = els.timeline;
    const seq = ++loadSeq;
    if (!query.user_id) {
        box.hidden = true;
        fill(box);
        return;
    }
    const toMs = query.to ? Date.parse(query.to) : Date.now();
    const fromMs = query.from ? Date.parse(query.from) : toMs - DEFAULT_SPAN_MS;
    const name = agentLabel(query.user_id);
    box.hidden = false;
    const head = h('h3', { id: 'tl-head' }, `Timeline of ${name}`);
    fill(box, head, h('p', { class: 'loading' }, 'Loading the timeline…'));
    if (!(toMs > fromMs)) {
        fill(box, head, h('p', { class: 'empty' }, 'The time range is empty.'));
        return;
    }
    const base = { user_id: query.user_id };
    let inRange, before;
    try {
        [inRange, before] = await Promise.all([
            fetchAll({ ...base, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() }),
            get('agent-status/history', { ...base, to: new Date(fromMs).toISOString(), limit: 1 }),
        ]);
    } catch (e) {
        if (seq !== loadSeq) return;
        const p = h('p', { class: 'error', role: 'alert' });
        showError(p, e, 'Could not load the timeline:');
        fill(box, head, p);
        return;
    }
    if (seq !== loadSeq) return;
    const rows = inRange.rows.slice().reverse();          // oldest first
    const endMs = Math.min(toMs, Date.now());
    // Start at the range's start; at the first change drawn when the timeline is
    // truncated, or when no range was chosen and nothing was recorded before it
    // (a new agent: no hour of "unknown").
    const nothingBefore = !before.body.data.length;
    const startMs = rows.length && (inRange.truncated || (nothingBefore && !query.from))
        ? Date.parse(rows[0].event_timestamp) : fromMs;
    const segs = [];
    let state = before.body.data.length ? before.body.data[0].state : (rows.length ? rows[0].previous_state : null);
    let t = startMs;
    for (const r of rows) {
        const at = Math.max(startMs, Date.parse(r.event_timestamp));
        if (at > t) segs.push({ state, from: t, to: at });
        state = r.state;
        t = at;
    }
    if (endMs > t) segs.push({ state, from: t, to: endMs });
    const span = toMs - startMs;
    const bar = h('div', { class: 'timeline', role: 'img', id: 'timeline-bar',
        'aria-label': `${name}: ${rows.length} change${rows.length === 1 ? '' : 's'} between ` +
            `${localDateTime(new Date(startMs).toISOString())} and ${localDateTime(new Date(toMs).toISOString())}` });
    const totals = new Map();
    for (const s of segs) {
        const info = s.state ? stateInfo(s.state) : { label: 'Unknown (nothing recorded)', cls: 'c-none' };
        const secs = (s.to - s.from) / 1000;
        totals.set(info.label, { cls: info.cls, secs: ((totals.get(info.label) || {}).secs || 0) + secs });
        const left = ((s.from - startMs) / span) * 100;
        const width = ((s.to - s.from) / span) * 100;
        const seg = h('div', { class: `seg ${info.cls}`, dataset: { state: s.state || '' },
            title: `${info.label}: ${localTime(new Date(s.from).toISOString())}–${localTime(new Date(s.to).toISOString())} (${duration(secs)})` },
        width > 9 ? h('span', {}, info.label) : null);
        seg.style.left = `${left}%`;        // CSSOM, allowed by the style-src 'self' policy
        seg.style.width = `${width}%`;
        bar.append(seg);
    }
    const axis = h('div', { class: 'axis' },
        h('span', {}, timeEl(new Date(startMs).toISOString(), localDateTime(new Date(startMs).toISOString()))),
        h('span', {}, toMs > Date.now() ? 'now' : timeEl(new Date(toMs).toISOString(), localDateTime(new Date(toMs).toISOString()))));
    const legend = h('ul', { class: 'legend', 'aria-label': 'Time per state' },
        Array.from(totals.entries()).sort((a, b) => b[1].secs - a[1].secs).map(([label, v]) =>
            h('li', {}, h('span', { class: `swatch ${v.cls}`, 'aria-hidden': 'true' }), `${label}: ${duration(v.secs)}`)));
    fill(box, head,
        h('p', { class: 'hint' }, query.from ? 'Over the selected range.'
            : `Over the last hour${startMs > fromMs ? ', from the first change recorded' : ''} ` +
              '(choose From and To for another range).',
            inRange.truncated ? ` Only the newest ${TIMELINE_PAGES * 100} changes are drawn.` : ''),
        bar, axis, legend);
}

export function hide() {
    loadSeq++;
}
