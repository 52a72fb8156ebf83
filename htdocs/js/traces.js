// Traces: trace a flow's executions (issue 15). Start a trace (POST
// api/v1/admin/flows/{flowId}/traces → 202 and a Location), follow it (GET
// that Location about once a second while it is queued or running, with its
// last error in words), and when it has completed draw its execution graph as
// an inline SVG: one column per traced instance, the items in execution order
// with nested items indented under their caller, the call/sequence/return
// edges, the bottleneck, the critical path and the failed nodes marked in
// colour AND in words; each node is focusable and shows its details on focus
// or hover. Below, every trace (GET api/v1/admin/traces), newest first.

import { h, s, fill, timeEl } from './dom.js';
import { request } from './api.js';
import { localDateTime, localTime } from './fmt.js';
import { replaceParams } from './nav.js';
import { Pager, showError, showFieldErrors } from './ui.js';

const POLL_MS = 1000;              // while queued or running
const POLL_ERROR_MS = 3000;        // after a failed GET (network, 5xx): keep trying, slower
const DEPTH_DEFAULT = '5';
const SIZES = ['10', '20', '50', '100'];
const MAX_DRAWN = 2000;            // nodes drawn; the summary still covers all of them

// Graph geometry (SVG user units = CSS px)
const NODE_W = 260;
const NODE_H = 50;
const ROW_GAP = 18;
const INDENT = 34;
const SPINE = 14;                  // x of a node's vertical "spine" (sequence/call edges) from its left
const COL_GAP = 70;
const HEAD_H = 42;                 // the column heads (instance ids)
const PAD = 14;

let els = {};
let trace = null;           // the trace shown: the last GET answer (or the POST's {id, status})
let tracePath = null;       // the address it is polled at ("admin/traces/{id}")
let pollTimer = null;
let traceSeq = 0;
let visible = false;
let list = { flow: '', limit: '20' };
let pager;
let graph = null;           // {items, byId, …} of the drawing, for details and keys
let shownIdx = -1;          // the node whose details are shown

// ------------------------------------------------------------------ words

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function ms(x) {
    if (x === null || x === undefined || !Number.isFinite(Number(x))) return '—';
    return `${Math.round(Number(x))} ms`;
}

function pct(rate) {
    if (rate === null || rate === undefined || !Number.isFinite(Number(rate))) return '—';
    return `${Math.round(Number(rate) * 1000) / 10} %`;
}

/** An error field (a string, or an object with a message) in words. */
function errorText(e) {
    if (e === null || e === undefined || e === '') return '';
    if (typeof e === 'string') return e;
    if (typeof e === 'object') {
        const msg = e.message || e.detail || e.reason || e.title || e.error || '';
        const code = e.code || e.errorCode || '';
        if (msg && code && !String(msg).includes(code)) return `${msg} (${code})`;
        if (msg || code) return String(msg || code);
        return JSON.stringify(e);
    }
    return String(e);
}

/** "12:00:01.250" (the browser's zone, with milliseconds). */
function timeMs(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${localTime(iso)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function statusWords(t) {
    const err = errorText(t.error);
    const tries = t.attempts > 1 ? ` (attempt ${t.attempts})` : '';
    switch (t.status) {
    case 'queued':
        return `Queued — waiting for gcmon’s background job to start it${tries}` +
            (err ? `: ${err}` : '.');
    case 'running':
        return err ? `Running — ${err}${tries}. gcmon keeps trying until the trace times out.`
            : `Running — retrieving the execution data from Genesys Cloud${tries}…`;
    case 'completed': return 'Completed.';
    case 'failed': return `Failed: ${err || 'no reason was given'}.`;
    default: return t.status ? `Status “${t.status}”.` : 'Status unknown.';
    }
}

const isActive = (t) => t && (t.status === 'queued' || t.status === 'running');

// ------------------------------------------------------------------ mount / show / hide

export function mount(section) {
    const flow = h('input', { id: 't-flow', name: 'flow_id', required: true, autocomplete: 'off', maxlength: '64',
        spellcheck: 'false', 'aria-describedby': 't-flow-hint' });
    const radio = (value, label, checked) => h('div', { class: 'field check' },
        h('input', { type: 'radio', name: 't-by', id: `t-by-${value}`, value, checked }),
        h('label', { for: `t-by-${value}` }, label));
    const instance = h('input', { id: 't-instance', name: 'instance_id', autocomplete: 'off', maxlength: '64',
        spellcheck: 'false', disabled: true });
    const conversation = h('input', { id: 't-conversation', name: 'conversation_id', autocomplete: 'off',
        maxlength: '64', spellcheck: 'false', disabled: true });
    const by = h('fieldset', { id: 't-by', class: 'choice' },
        h('legend', {}, 'Which executions'),
        radio('latest', 'The newest executions of the flow', true),
        h('div', { class: 'choice-row' }, radio('instance', 'One flow instance'),
            h('div', { class: 'field' }, h('label', { for: 't-instance' }, 'Instance id'), instance)),
        h('div', { class: 'choice-row' }, radio('conversation', 'The executions of one conversation'),
            h('div', { class: 'field' }, h('label', { for: 't-conversation' }, 'Conversation id'), conversation)));
    by.addEventListener('change', syncBy);
    const action = h('input', { id: 't-action', name: 'action_invocation_id', autocomplete: 'off', maxlength: '64',
        spellcheck: 'false' });
    const depth = h('input', { id: 't-depth', name: 'trace_depth', type: 'number', min: '1', max: '50', step: '1',
        value: DEPTH_DEFAULT, inputmode: 'numeric', 'aria-describedby': 't-depth-hint' });
    const captureContext = h('input', { type: 'checkbox', id: 't-capture-context', name: 'capture_context',
        checked: true });
    const captureData = h('input', { type: 'checkbox', id: 't-capture-data', name: 'capture_data', checked: true });
    const capture = h('div', { id: 't-capture', class: 'check-group', role: 'group', 'aria-labelledby': 't-capture-head' },
        h('div', { class: 'field check' }, captureContext,
            h('label', { for: 't-capture-context' }, 'Capture context (conversation and division)')),
        h('div', { class: 'field check' }, captureData,
            h('label', { for: 't-capture-data' }, 'Capture data (the items’ variables)')));
    const submitBtn = h('button', { type: 'submit', class: 'primary', id: 't-submit' }, 'Start trace');
    const form = h('form', { class: 'filters', id: 't-form', 'aria-label': 'Start a trace', novalidate: true,
        onsubmit: (e) => { e.preventDefault(); submit(); } },
    h('div', { class: 'field' }, h('label', { for: 't-flow' }, 'Flow id'), flow),
    h('p', { class: 'hint small field-wide', id: 't-flow-hint' }, 'The Genesys Cloud id of the flow (an ' +
        'Architect flow) whose executions to trace.'),
    by,
    h('div', { class: 'field' }, h('label', { for: 't-action' }, 'Action invocation id (optional)'), action),
    h('div', { class: 'field' }, h('label', { for: 't-depth' }, 'Trace depth'), depth,
        h('p', { class: 'hint small', id: 't-depth-hint' }, '1 to 50 instances at most.')),
    h('fieldset', { id: 't-capture-set' }, h('legend', { id: 't-capture-head' }, 'Capture (at least one)'), capture),
    h('div', { class: 'field actions' }, submitBtn));

    els = {
        root: section, form, flow, by, instance, conversation, action, depth, captureContext, captureData, capture,
        submitBtn,
        formError: h('div', { class: 'error', role: 'alert', hidden: true, id: 't-form-error' }),
        current: h('section', { class: 'current trace', id: 't-current', hidden: true, tabindex: '-1',
            'aria-labelledby': 't-current-head' }),
    };

    // The list
    const lFlow = h('input', { id: 'tl-flow', name: 'flow_id', autocomplete: 'off', maxlength: '64',
        spellcheck: 'false' });
    const lLimit = h('select', { id: 'tl-limit', name: 'limit' },
        SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
    lLimit.value = list.limit;
    const lForm = h('form', { class: 'filters', id: 'tl-form', 'aria-label': 'Trace filters',
        onsubmit: (e) => {
            e.preventDefault();
            list.flow = lFlow.value.trim();
            list.limit = lLimit.value;
            pager.reset();
        } },
    h('div', { class: 'field' }, h('label', { for: 'tl-flow' }, 'Flow id'), lFlow),
    h('div', { class: 'field' }, h('label', { for: 'tl-limit' }, 'Page size'), lLimit),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary', id: 'tl-show' }, 'Show'),
        h('button', { type: 'button', class: 'secondary', id: 'tl-refresh', onclick: () => pager.fetch() }, 'Refresh')));
    pager = new Pager('Trace pages', loadList, renderList);
    Object.assign(els, {
        lFlow, lLimit, lForm,
        lError: h('div', { class: 'error', role: 'alert', hidden: true, id: 'tl-error' }),
        lSummary: h('p', { class: 'summary', id: 'tl-summary', 'aria-live': 'polite' }),
        lTable: h('div', { class: 'table-wrap', id: 'tl-list' }),
    });

    fill(section,
        h('div', { class: 'view-head' }, h('h2', { id: 'h-traces', tabindex: '-1' }, 'Traces')),
        h('p', { class: 'hint' }, 'Traces a flow’s executions from Genesys Cloud’s historical flow execution data: ' +
            'gcmon finds the instances, has Genesys prepare their execution data, downloads it and draws the ' +
            'executed items as a graph with the slowest item (the bottleneck), the critical path and the failed ' +
            'items. A trace runs in the background; it can take a minute.'),
        form, els.formError, els.current,
        h('section', { class: 'trace-list', 'aria-labelledby': 'tl-head' },
            h('h3', { id: 'tl-head' }, 'Traces'),
            h('p', { class: 'hint' }, 'Every trace gcmon ran, newest first. Choose one to see it.'),
            lForm, els.lError, els.lSummary, els.lTable, pager.el));
}

export function show(params) {
    visible = true;
    const id = params.get('id') || '';
    if (id && (!trace || trace.id !== id)) {
        openTrace(id, null, false);
    } else if (trace && isActive(trace) && !pollTimer) {
        poll(traceSeq);                     // back to a trace that was still running
    }
    pager.reset();
}

export function hide() {
    visible = false;
    stopPolling();
}

function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
}

// ------------------------------------------------------------------ the form

function syncBy() {
    const by = chosenBy();
    els.instance.disabled = by !== 'instance';
    els.conversation.disabled = by !== 'conversation';
}

function chosenBy() {
    const r = els.by.querySelector('input[name="t-by"]:checked');
    return r ? r.value : 'latest';
}

function formFields() {
    return {
        flow_id: els.flow, instance_id: els.instance, conversation_id: els.conversation,
        action_invocation_id: els.action, trace_depth: els.depth,
        context_directives: els.capture,
        'context_directives.capture_context': els.capture,
        'context_directives.capture_data': els.capture,
    };
}

/** The trace depth as sent: a number, or the text as typed (the server says what is wrong with it). */
function depthValue() {
    const input = els.depth;
    if (input.validity && input.validity.badInput) return 'not a number';
    const v = input.value.trim();
    if (v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
}

function buildBody() {
    const body = {};
    const by = chosenBy();
    if (by === 'instance') body.instance_id = els.instance.value.trim();
    if (by === 'conversation') body.conversation_id = els.conversation.value.trim();
    const action = els.action.value.trim();
    if (action) body.action_invocation_id = action;
    const depth = depthValue();
    if (depth !== undefined) body.trace_depth = depth;
    body.context_directives = { capture_context: els.captureContext.checked, capture_data: els.captureData.checked };
    return body;
}

/** Messages the browser can give without asking: a missing flow id or chosen id. */
function localErrors() {
    const errors = [];
    if (!els.flow.value.trim()) errors.push({ field: 'flow_id', message: 'Enter the flow id.' });
    const by = chosenBy();
    if (by === 'instance' && !els.instance.value.trim()) {
        errors.push({ field: 'instance_id', message: 'Enter the instance id, or choose another option.' });
    }
    if (by === 'conversation' && !els.conversation.value.trim()) {
        errors.push({ field: 'conversation_id', message: 'Enter the conversation id, or choose another option.' });
    }
    return errors;
}

function focusFirstInvalid() {
    const bad = els.form.querySelector('[aria-invalid="true"]');
    if (!bad) return;
    if (bad === els.capture) els.captureContext.focus();
    else bad.focus();
}

async function submit() {
    showError(els.formError, null);
    showFieldErrors(els.form, null, {});
    const local = localErrors();
    if (local.length) {
        showFieldErrors(els.form, { problem: { errors: local } }, formFields());
        focusFirstInvalid();
        return;
    }
    const flowId = els.flow.value.trim();
    els.submitBtn.disabled = true;
    els.submitBtn.textContent = 'Starting…';
    try {
        const r = await request(`admin/flows/${encodeURIComponent(flowId)}/traces`, { method: 'POST',
            body: buildBody() });
        const t = r.body || {};
        const path = pathOf(r.headers.get('Location'), t.id);
        startFollowing({ id: t.id, flow_id: flowId, status: t.status || 'queued', error: null }, path);
        pager.reset();
        els.current.focus();
    } catch (e) {
        let shown = e;
        if (e.status === 400 && !Object.keys(e.fieldErrors).length) {
            // A bad flow id in the address: the message belongs next to it.
            shown = { problem: { errors: [{ field: 'flow_id', message: e.message }] } };
        }
        const rest = showFieldErrors(els.form, shown, formFields());
        const words = e.status === 422 ? 'The trace was not started; nothing was sent to Genesys Cloud.'
            : 'Could not start the trace:';
        showError(els.formError, e, words);
        if (rest.length) {
            els.formError.append(h('ul', { class: 'problem-list' },
                rest.map((x) => h('li', {}, `${x.field ? `${x.field}: ` : ''}${x.message}`))));
        }
        focusFirstInvalid();
    } finally {
        els.submitBtn.disabled = false;
        els.submitBtn.textContent = 'Start trace';
    }
}

/** The API path ("admin/traces/{id}") of a Location header (".../v1/admin/traces/{id}"), else by id. */
function pathOf(location, id) {
    if (location) {
        const m = /\/v1\/(admin\/traces\/[^/?#]+)$/.exec(location.trim());
        if (m) return m[1];
    }
    return `admin/traces/${encodeURIComponent(id)}`;
}

// ------------------------------------------------------------------ following a trace

function openTrace(id, from, focus) {
    startFollowing({ id, status: null }, `admin/traces/${encodeURIComponent(id)}`, true);
    if (focus) els.current.focus();
    markListRow();
    return from;
}

function startFollowing(t, path, loading = false) {
    stopPolling();
    const my = ++traceSeq;
    trace = t;
    tracePath = path;
    graph = null;
    replaceParams('traces', { id: t.id });
    renderCurrent(loading ? 'Loading…' : null);
    markListRow();
    if (loading || isActive(t)) {
        if (loading) poll(my);
        else pollTimer = setTimeout(() => poll(my), POLL_MS);
    }
}

async function poll(my) {
    pollTimer = null;
    if (my !== traceSeq || !visible) return;
    let next = POLL_MS;
    try {
        const r = await request(tracePath);
        if (my !== traceSeq) return;
        const wasActive = isActive(trace);
        trace = r.body;
        renderCurrent();
        if (!isActive(trace)) {
            if (wasActive) pager.fetch();       // its row changes too
            return;
        }
    } catch (e) {
        if (my !== traceSeq) return;
        if (e.status === 404 || e.status === 400 || e.status === 401 || e.status === 403) {
            trace = { ...trace, status: trace.status || 'unknown' };
            renderCurrent();
            showError(els.pollError, e, 'Could not read this trace:');
            return;                             // asking again would not help
        }
        if (!els.pollError) renderCurrent();
        showError(els.pollError, e, 'Could not read the trace’s status; trying again:');
        next = POLL_ERROR_MS;
    }
    if (my === traceSeq && visible) pollTimer = setTimeout(() => poll(my), next);
}

function renderCurrent(loadingText) {
    const t = trace;
    els.current.hidden = false;
    // Still queued or running as before: change the words only (no new live region every second).
    const text = els.current.querySelector('#t-status-text');
    if (!loadingText && text && isActive(t) && els.shown && els.shown.id === t.id && els.shown.status === t.status) {
        const words = statusWords(t);
        if (text.textContent !== words) text.textContent = words;
        const upd = els.current.querySelector('#t-updated');
        if (upd) fill(upd, timeEl(t.updated_at, localDateTime(t.updated_at)));
        showError(els.pollError, null);
        return;
    }
    els.shown = loadingText ? null : { id: t.id, status: t.status };
    const head = h('h3', { id: 't-current-head' }, `Trace ${t.id}`);
    els.pollError = h('div', { class: 'error', role: 'alert', hidden: true, id: 't-poll-error' });
    if (loadingText) {
        fill(els.current, head, h('p', { class: 'loading', id: 't-status' }, loadingText), els.pollError);
        return;
    }
    const statusCls = t.status === 'failed' ? 'bad' : t.status === 'completed' ? 'good' : 'pending';
    const statusLine = h('p', { class: `trace-status ${statusCls}`, id: 't-status', role: 'status' },
        h('span', { class: `badge t-${t.status || 'unknown'}`, id: 't-status-badge' }, t.status || 'unknown'), ' ',
        h('span', { id: 't-status-text' }, statusWords(t)));
    const facts = h('dl', { class: 'facts', id: 't-facts' },
        h('dt', {}, 'Flow'), h('dd', { class: 'mono' }, t.flow_id || '—'),
        h('dt', {}, 'Started'), h('dd', {}, timeEl(t.created_at, localDateTime(t.created_at))),
        t.completed_at ? [h('dt', {}, 'Finished'), h('dd', {}, timeEl(t.completed_at, localDateTime(t.completed_at)))]
            : [h('dt', {}, 'Last update'), h('dd', { id: 't-updated' }, timeEl(t.updated_at, localDateTime(t.updated_at)))],
        t.attempts ? [h('dt', {}, 'Attempts'), h('dd', {}, String(t.attempts))] : null);
    const parts = [h('div', { class: 'view-head' }, head), statusLine, els.pollError, facts];
    if (t.status === 'failed') {
        parts.push(h('div', { class: 'error', id: 't-failure' },
            h('strong', {}, 'The trace failed. '), errorText(t.error) || 'No reason was given.',
            ' Check the flow id and the instance or conversation id, then start a new trace.'));
    }
    if (t.status === 'completed') parts.push(...completedContent(t));
    fill(els.current, parts);
}

// ------------------------------------------------------------------ the completed trace

function completedContent(t) {
    const g = t.graph || { nodes: [], edges: [] };
    const nodes = Array.isArray(g.nodes) ? g.nodes : [];
    const bn = t.bottleneck && t.bottleneck.node_id ? t.bottleneck : null;
    const bnNode = bn ? nodes.find((n) => n.id === bn.node_id) : null;
    const cp = Array.isArray(t.critical_path) ? t.critical_path : [];
    const failed = Array.isArray(t.failed_nodes) ? t.failed_nodes : nodes.filter((n) => n.status === 'failed').map((n) => n.id);
    const warnings = Array.isArray(t.warnings) ? t.warnings : [];
    const instances = Array.isArray(t.instances) ? t.instances : [];
    const summary = h('dl', { class: 'facts trace-summary', id: 't-summary' },
        h('dt', {}, 'Status'), h('dd', { id: 't-sum-status' }, t.status),
        h('dt', {}, 'Bottleneck'), h('dd', { id: 't-sum-bottleneck' }, bn
            ? [h('span', { class: 'mono' }, bn.node_id), ` — ${ms(bn.latency_ms)}`,
                bnNode ? ` (${bnNode.type || 'item'}${bnNode.action_id ? `, action ${bnNode.action_id}` : ''})` : '']
            : 'none (no item has a known duration)'),
        h('dt', {}, 'Critical path'), h('dd', { id: 't-sum-critical' },
            cp.length ? `${plural(cp.length, 'node')}, ${ms(t.critical_path_ms)}` : 'none'),
        h('dt', {}, 'Failed nodes'), h('dd', { id: 't-sum-failed' }, failed.length
            ? [String(failed.length), ': ', h('span', { class: 'mono' }, failed.join(', '))] : '0'),
        h('dt', {}, 'Accuracy rate'), h('dd', { id: 't-sum-accuracy' }, pct(t.accuracy_rate),
            t.items_reported !== undefined && t.items_parsed !== undefined
                ? h('span', { class: 'muted' }, ` (${t.items_parsed} of ${t.items_reported} items)`) : null),
        h('dt', {}, 'Retrieval latency'), h('dd', { id: 't-sum-retrieval' }, ms(t.retrieval_latency_ms)),
        h('dt', {}, 'Instances'), h('dd', { id: 't-sum-instances' }, String(instances.length),
            instances.some((i) => i.truncated) ? ' (some execution lists were truncated by Genesys Cloud)' : ''),
        h('dt', {}, 'Nodes'), h('dd', { id: 't-sum-nodes' }, String(nodes.length)));
    const out = [h('h4', {}, 'Summary'), summary];
    out.push(h('h4', { id: 't-warnings-head' }, 'Warnings'), warnings.length
        ? h('ul', { class: 'warnings', id: 't-warnings', 'aria-labelledby': 't-warnings-head' },
            warnings.map((w) => h('li', {}, typeof w === 'string' ? w : errorText(w))))
        : h('p', { class: 'muted', id: 't-warnings' }, 'None.'));
    out.push(h('h4', { id: 't-graph-head' }, 'Execution graph'));
    if (!nodes.length) {
        out.push(h('p', { class: 'empty' }, 'The trace has no executed items to draw.'));
        return out;
    }
    out.push(h('p', { class: 'hint' }, 'One column per traced instance, its items top to bottom in execution order; ' +
        'items an action called are indented under it. Tab to an item (or move with the arrow keys, Home and End) ' +
        'or point at it to see its details.'));
    out.push(legend());
    const details = h('section', { class: 'node-details', id: 't-node-details', 'aria-live': 'polite',
        'aria-labelledby': 't-node-details-head' },
    h('h5', { id: 't-node-details-head' }, 'Node details'),
    h('p', { class: 'muted' }, 'Focus or point at a node to see its details.'));
    els.details = details;
    out.push(h('div', { class: 'graph-area' },
        h('div', { class: 'graph-wrap', id: 't-graph-wrap' }, drawGraph(t, nodes, g.edges || [], bn, cp, failed)),
        details));
    if (nodes.length > MAX_DRAWN) {
        out.push(h('p', { class: 'hint' }, `Only the first ${MAX_DRAWN} of ${nodes.length} nodes are drawn.`));
    }
    return out;
}

function legend() {
    const line = (cls) => s('svg', { width: 36, height: 12, 'aria-hidden': 'true', class: 'legend-line' },
        s('line', { x1: 2, y1: 6, x2: 34, y2: 6, class: `tedge ${cls}` }));
    const box = (cls) => s('svg', { width: 22, height: 16, 'aria-hidden': 'true', class: 'legend-box' },
        s('rect', { x: 2, y: 2, width: 18, height: 12, rx: 3, class: `box ${cls}` }));
    return h('ul', { class: 'legend trace-legend', id: 't-legend', 'aria-label': 'Legend' },
        h('li', {}, box('lg-bottleneck'), '◆ Bottleneck: the slowest item (thick orange border)'),
        h('li', {}, box('lg-critical'), '★ Critical path (thick blue border and edges)'),
        h('li', {}, box('lg-failed'), '✖ Failed (red, hatched)'),
        h('li', {}, line('call'), 'call (dashed)'),
        h('li', {}, line('sequence'), 'sequence (solid)'),
        h('li', {}, line('return'), 'return (dotted)'));
}

/** "1:3.2" → 1; the instance index of a node id. */
function instanceOf(id) {
    const n = parseInt(String(id).split(':', 1)[0], 10);
    return Number.isFinite(n) ? n : 0;
}

function layout(nodes) {
    const drawn = nodes.slice(0, MAX_DRAWN);
    const byId = new Map();
    const cols = new Map();          // instance index → {index, rows, maxDepth}
    for (const n of drawn) {
        const inst = instanceOf(n.id);
        if (!cols.has(inst)) cols.set(inst, { index: inst, rows: 0, maxDepth: 0 });
        const col = cols.get(inst);
        const parent = n.parent ? byId.get(n.parent) : null;
        const depth = parent ? parent.depth + 1
            : (n.parent ? String(n.id).split(':').slice(1).join(':').split('.').length - 1 : 0);
        const item = { node: n, col, row: col.rows++, depth, idx: 0 };
        col.maxDepth = Math.max(col.maxDepth, depth);
        byId.set(n.id, item);
    }
    const ordered = Array.from(cols.values()).sort((a, b) => a.index - b.index);
    let x = PAD;
    for (const col of ordered) {
        col.x = x;
        col.width = NODE_W + col.maxDepth * INDENT;
        col.lane = x + col.width + 12;             // where return edges run down
        x += col.width + COL_GAP;
    }
    const items = [];
    for (const n of drawn) {
        const it = byId.get(n.id);
        it.x = it.col.x + it.depth * INDENT;
        it.y = PAD + HEAD_H + it.row * (NODE_H + ROW_GAP);
        it.idx = items.length;
        items.push(it);
    }
    const rows = Math.max(0, ...ordered.map((c) => c.rows));
    return { items, byId, cols: ordered, width: x - COL_GAP + PAD + 30,
        height: PAD + HEAD_H + rows * (NODE_H + ROW_GAP) + PAD };
}

function edgePath(a, b, kind) {
    const aBottom = a.y + NODE_H;
    const aMid = a.y + NODE_H / 2;
    const bMid = b.y + NODE_H / 2;
    if (a.col === b.col && b.y > a.y) {
        if (kind === 'sequence' && a.depth === b.depth) {
            const x = a.x + SPINE;
            return `M${x},${aBottom} L${x},${b.y}`;
        }
        if (kind === 'call' && b.depth > a.depth) {
            const x = b.x + SPINE;
            return `M${x},${aBottom} L${x},${b.y}`;
        }
        // return (or anything else going down): out on the right, down the column's lane, back in
        const lane = a.col.lane + Math.max(0, a.depth - b.depth - 1) * 6;
        return `M${a.x + NODE_W},${aMid} L${lane},${aMid} L${lane},${bMid} L${b.x + NODE_W + 2},${bMid}`;
    }
    // across columns or upwards (not produced by gcmon, drawn anyway): a curve between the centres
    const x1 = a.x + NODE_W / 2, y1 = aBottom, x2 = b.x + NODE_W / 2, y2 = b.y;
    return `M${x1},${y1} C${x1},${y1 + 40} ${x2},${y2 - 40} ${x2},${y2}`;
}

function clip(text, max) {
    const t = String(text ?? '');
    return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function nodeLabel(n, marks) {
    const parts = [`Node ${n.id}`, n.type || 'item'];
    if (n.action_id) parts.push(`action ${n.action_id}`);
    parts.push(n.duration_ms === null || n.duration_ms === undefined ? 'duration unknown' : ms(n.duration_ms));
    parts.push(n.status === 'failed' ? `failed${n.error ? `: ${errorText(n.error)}` : ''}` : (n.status || 'ok'));
    if (marks.bottleneck) parts.push('the bottleneck');
    if (marks.critical) parts.push('on the critical path');
    return parts.join(', ');
}

function drawGraph(t, nodes, edges, bn, cp, failed) {
    const L = layout(nodes);
    const failedSet = new Set(failed);
    const cpSet = new Set(cp);
    const cpEdges = new Set();
    for (let i = 0; i + 1 < cp.length; i++) cpEdges.add(`${cp[i]}\u0000${cp[i + 1]}`);
    const insts = new Map((Array.isArray(t.instances) ? t.instances : []).map((i) => [i.index, i]));

    const defs = s('defs', {},
        s('pattern', { id: 't-hatch', width: 8, height: 8, patternUnits: 'userSpaceOnUse',
            patternTransform: 'rotate(45)' },
        s('rect', { width: 8, height: 8, class: 'hatch-bg' }),
        s('line', { x1: 0, y1: 0, x2: 0, y2: 8, class: 'hatch-line' })),
        ['sequence', 'call', 'return', 'critical'].map((k) => s('marker', { id: `t-arrow-${k}`, viewBox: '0 0 10 10',
            refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse',
            class: `arrow ${k}` },
        s('path', { d: 'M0,0 L10,5 L0,10 z' }))));

    const heads = s('g', { class: 'col-heads', 'aria-hidden': 'true' }, L.cols.map((c) => {
        const inst = insts.get(c.index);
        const label = `Instance ${c.index}${inst && inst.instance_id ? `: ${inst.instance_id}` : ''}`;
        return s('g', {},
            s('text', { x: c.x, y: PAD + 14, class: 'col-head' }, clip(label, 44)),
            s('text', { x: c.x, y: PAD + 30, class: 'col-sub' },
                inst ? `${plural(inst.nodes ?? c.rows, 'item')}${inst.truncated ? ' · truncated' : ''}` : ''));
    }));

    const edgeEls = [];
    for (const e of edges) {
        const a = L.byId.get(e.from), b = L.byId.get(e.to);
        if (!a || !b) continue;
        const kind = ['call', 'sequence', 'return'].includes(e.kind) ? e.kind : 'sequence';
        const crit = cpEdges.has(`${e.from}\u0000${e.to}`);
        edgeEls.push(s('path', { d: edgePath(a, b, kind), class: `tedge ${kind}${crit ? ' critical' : ''}`,
            'marker-end': `url(#t-arrow-${crit ? 'critical' : kind})`,
            dataset: { from: e.from, to: e.to, kind } }));
    }
    // critical edges last, so they are drawn on top
    edgeEls.sort((x, y) => Number(x.classList.contains('critical')) - Number(y.classList.contains('critical')));

    const nodeEls = L.items.map((it) => {
        const n = it.node;
        const marks = { bottleneck: Boolean(bn && bn.node_id === n.id), critical: cpSet.has(n.id),
            failed: failedSet.has(n.id) || n.status === 'failed' };
        const cls = ['tnode', marks.failed ? 'failed' : '', marks.bottleneck ? 'bottleneck' : '',
            marks.critical ? 'critical' : ''].filter(Boolean).join(' ');
        const tags = [marks.failed ? '✖ FAILED' : '', marks.bottleneck ? '◆ BOTTLENECK' : '',
            marks.critical ? '★' : ''].filter(Boolean).join(' ');
        const dur = n.duration_ms === null || n.duration_ms === undefined ? '? ms' : ms(n.duration_ms);
        const g = s('g', { class: cls, tabindex: '0', role: 'listitem', id: `t-node-${it.idx}`,
            'aria-label': nodeLabel(n, marks), transform: `translate(${it.x},${it.y})`,
            dataset: { node: n.id, idx: it.idx } },
        s('rect', { class: 'ring', x: -4, y: -4, width: NODE_W + 8, height: NODE_H + 8, rx: 8 }),
        s('rect', { class: 'box', width: NODE_W, height: NODE_H, rx: 5 }),
        s('text', { x: 10, y: 19, class: 'n-type' }, clip(n.type || 'item', 30)),
        s('text', { x: 10, y: 38, class: 'n-meta' }, `${n.id} · ${dur}`),
        tags ? s('text', { x: NODE_W - 8, y: 38, class: 'n-tags', 'text-anchor': 'end' }, tags) : null);
        g.addEventListener('focus', () => showNode(it));
        // pointermove, not mouseenter: a graph scrolled (or laid out anew) under a still
        // pointer must not take the details away from the focused node.
        g.addEventListener('pointermove', () => { if (shownIdx !== it.idx) showNode(it); });
        g.addEventListener('keydown', (e) => nodeKey(e, it));
        return g;
    });
    graph = { items: L.items, byId: L.byId, bn, cpSet, failedSet };
    shownIdx = -1;

    return s('svg', { class: 'trace-graph', id: 't-graph', width: L.width, height: L.height,
        viewBox: `0 0 ${L.width} ${L.height}`, role: 'group',
        'aria-label': `Execution graph of trace ${t.id}: ${plural(nodes.length, 'node')}, ${plural(edges.length, 'edge')}` },
    defs, heads,
    s('g', { class: 'edges', 'aria-hidden': 'true' }, edgeEls),
    s('g', { class: 'nodes', role: 'list', 'aria-label': 'Executed items in execution order',
        onpointerleave: backToFocused }, nodeEls));
}

/** The pointer left the graph: the details go back to the focused node, if one is. */
function backToFocused() {
    const f = document.activeElement;
    if (!graph || !f || !f.classList || !f.classList.contains('tnode')) return;
    const it = graph.items[Number(f.dataset.idx)];
    if (it && shownIdx !== it.idx) showNode(it);
}

function nodeKey(e, it) {
    const items = graph ? graph.items : [];
    let to = null;
    if (e.key === 'ArrowDown' || e.key === 'ArrowRight') to = items[it.idx + 1];
    else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') to = items[it.idx - 1];
    else if (e.key === 'Home') to = items[0];
    else if (e.key === 'End') to = items[items.length - 1];
    else return;
    e.preventDefault();
    if (to) document.getElementById(`t-node-${to.idx}`).focus();
}

function variablesContent(vars) {
    if (vars === undefined) return null;
    const list = Array.isArray(vars) ? vars : (vars && typeof vars === 'object'
        ? Object.entries(vars).map(([name, value]) => ({ name, value })) : [vars]);
    if (!list.length) return h('span', { class: 'muted' }, 'none');
    return h('ul', { class: 'vars', id: 't-nd-variables-list' }, list.map((v) => {
        if (v && typeof v === 'object' && 'name' in v) {
            const val = 'value' in v ? v.value : v;
            return h('li', {}, h('span', { class: 'mono' }, String(v.name)), ' = ',
                typeof val === 'string' ? val : JSON.stringify(val));
        }
        return h('li', { class: 'mono' }, typeof v === 'string' ? v : JSON.stringify(v));
    }));
}

function showNode(it) {
    if (!els.details || !graph) return;
    for (const el of els.current.querySelectorAll('.tnode.selected')) el.classList.remove('selected');
    const g = document.getElementById(`t-node-${it.idx}`);
    if (g) g.classList.add('selected');
    shownIdx = it.idx;
    const n = it.node;
    const marks = [];
    if (graph.bn && graph.bn.node_id === n.id) marks.push('◆ the bottleneck (the slowest item)');
    if (graph.cpSet.has(n.id)) marks.push('★ on the critical path');
    const failed = n.status === 'failed' || graph.failedSet.has(n.id);
    const dd = (id, ...c) => h('dd', { id }, ...c);
    fill(els.details,
        h('h5', { id: 't-node-details-head' }, `Node ${n.id}`),
        marks.length ? h('p', { class: 'node-marks', id: 't-nd-marks' }, marks.join(' · ')) : null,
        h('dl', { class: 'facts', id: 't-nd' },
            h('dt', {}, 'Type'), dd('t-nd-type', n.type || '—'),
            h('dt', {}, 'Action id'), dd('t-nd-action', h('span', { class: 'mono' }, n.action_id || '—')),
            h('dt', {}, 'Start'), dd('t-nd-start', timeEl(n.start, timeMs(n.start))),
            h('dt', {}, 'End'), dd('t-nd-end', timeEl(n.end, timeMs(n.end))),
            h('dt', {}, 'Duration'), dd('t-nd-duration', n.duration_ms === null || n.duration_ms === undefined
                ? 'unknown' : ms(n.duration_ms)),
            h('dt', {}, 'Status'), dd('t-nd-status', failed ? h('span', { class: 'badge bad' }, '✖ failed')
                : h('span', { class: 'badge good' }, n.status || 'ok')),
            h('dt', {}, 'Error'), dd('t-nd-error', n.error ? errorText(n.error) : h('span', { class: 'muted' }, 'none')),
            h('dt', {}, 'Called by'), dd('t-nd-parent', n.parent ? h('span', { class: 'mono' }, n.parent) : '—'),
            n.variables !== undefined ? [h('dt', {}, 'Variables'), dd('t-nd-variables', variablesContent(n.variables))]
                : null));
}

// ------------------------------------------------------------------ the list

function loadList(cursor) {
    els.lSummary.textContent = 'Loading…';
    const query = { flow_id: list.flow, limit: list.limit };
    if (cursor) query.cursor = cursor;
    return request('admin/traces', { query }).then((r) => r.body);
}

function markListRow() {
    if (!els.lTable) return;
    for (const tr of els.lTable.querySelectorAll('tbody tr')) {
        if (trace && tr.dataset.id === trace.id) tr.setAttribute('aria-current', 'true');
        else tr.removeAttribute('aria-current');
    }
}

function renderList(body, first, err) {
    if (err) {
        els.lSummary.textContent = '';
        fill(els.lTable);
        showFieldErrors(els.lForm, err, { flow_id: els.lFlow, limit: els.lLimit });
        showError(els.lError, err, 'Could not load the traces:');
        return;
    }
    showFieldErrors(els.lForm, null, {});
    showError(els.lError, null);
    const rows = Array.isArray(body.data) ? body.data : [];
    if (!rows.length) {
        els.lSummary.textContent = body.total ? 'No more traces.' : 'No traces.';
        fill(els.lTable, h('p', { class: 'empty' }, list.flow ? `No trace of flow ${list.flow}.`
            : 'No trace has been run yet.'));
        return;
    }
    els.lSummary.textContent = `${body.total ?? rows.length} trace${body.total === 1 ? '' : 's'}`;
    fill(els.lTable, h('table', { class: 'data', id: 'traces-table' },
        h('caption', { class: 'sr-only' }, 'Traces, newest first; choose one to see it'),
        h('thead', {}, h('tr', {}, ['Started', 'Flow', 'Status', 'Bottleneck', 'Finished', 'Error']
            .map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, rows.map((row) => {
            const btn = h('button', { type: 'button', class: 'link', 'aria-label':
                `Show trace ${row.id} of ${localDateTime(row.created_at)}`,
            onclick: () => openTrace(row.id, btn, true) },
            timeEl(row.created_at, localDateTime(row.created_at)));
            const tr = h('tr', { class: 'clickable', dataset: { id: row.id } },
                h('td', {}, btn),
                h('td', { class: 'mono' }, row.flow_id || '—'),
                h('td', {}, h('span', { class: `badge t-${row.status || 'unknown'}` }, row.status || '—')),
                h('td', {}, row.bottleneck && row.bottleneck.node_id
                    ? [h('span', { class: 'mono' }, row.bottleneck.node_id), ` (${ms(row.bottleneck.latency_ms)})`] : '—'),
                h('td', {}, timeEl(row.completed_at, localDateTime(row.completed_at))),
                h('td', {}, row.error ? errorText(row.error) : ''));
            tr.addEventListener('click', (e) => { if (!e.target.closest('button')) btn.click(); });
            return tr;
        }))));
    markListRow();
}
