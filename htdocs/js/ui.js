// Pieces the views share: error messages in words (with field messages next
// to their fields), a cursor pager, and the agent picker.

import { h, fill, $$ } from './dom.js';
import { board } from './boardmodel.js';
import { stateInfo } from './states.js';

/** Show err (an ApiError or anything) in words in el; hide el when err is null. */
export function showError(el, err, prefix = '') {
    if (!err) {
        el.hidden = true;
        el.replaceChildren();
        return;
    }
    el.hidden = false;
    const status = err.status ? ` (HTTP ${err.status})` : '';
    fill(el, prefix ? h('strong', {}, prefix, ' ') : null, err.message || String(err),
        err.status && !/HTTP \d{3}/.test(err.message || '') ? h('span', { class: 'muted' }, status) : null);
}

/**
 * Put the problem's errors[] next to their fields: fields maps an API field
 * name ("status", "limit", …) to the input it belongs to. Returns the messages
 * that found no field. Clears earlier messages first.
 */
export function showFieldErrors(form, err, fields) {
    for (const el of $$('.field-error', form)) el.remove();
    for (const el of $$('[aria-invalid]', form)) {
        el.removeAttribute('aria-invalid');
        el.removeAttribute('aria-describedby');
    }
    const rest = [];
    const errors = err && err.problem && Array.isArray(err.problem.errors) ? err.problem.errors : [];
    for (const e of errors) {
        const input = fields[e.field];
        if (!input) {
            rest.push(e);
            continue;
        }
        const id = `${input.id}-error`;
        let msg = document.getElementById(id);
        if (!msg) {
            msg = h('p', { class: 'field-error', id });
            input.insertAdjacentElement('afterend', msg);
        }
        msg.textContent = msg.textContent ? `${msg.textContent}; ${e.message}` : e.message;
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', id);
    }
    return rest;
}

/**
 * Cursor paging: "Newer" goes back through the cursors seen, "Older" follows
 * next_cursor. load(cursor) fetches a page and resolves to the API body.
 */
export class Pager {
    constructor(label, load, render) {
        this.load = load;
        this.render = render;
        this.cursors = [null];
        this.prevBtn = h('button', { type: 'button', class: 'secondary', onclick: () => this.go(-1) }, '← Newer');
        this.nextBtn = h('button', { type: 'button', class: 'secondary', onclick: () => this.go(1) }, 'Older →');
        this.info = h('span', { class: 'page-info', 'aria-live': 'polite' });
        this.el = h('nav', { class: 'pager', 'aria-label': label }, this.prevBtn, this.info, this.nextBtn);
        this.last = null;
        this.update(null);
    }

    /** Start again at the newest page. */
    async reset() {
        this.cursors = [null];
        return this.fetch();
    }

    async go(dir) {
        if (dir > 0) {
            if (!this.last || !this.last.next_cursor) return;
            this.cursors.push(this.last.next_cursor);
        } else {
            if (this.cursors.length < 2) return;
            this.cursors.pop();
        }
        const focusBtn = dir > 0 ? this.nextBtn : this.prevBtn;
        await this.fetch();
        // Keep the keyboard where it was; if that button is now off, move to the other.
        if (focusBtn.disabled) (dir > 0 ? this.prevBtn : this.nextBtn).focus();
    }

    async fetch() {
        const cursor = this.cursors[this.cursors.length - 1];
        this.prevBtn.disabled = true;
        this.nextBtn.disabled = true;
        try {
            const body = await this.load(cursor);
            this.last = body;
            this.render(body, this.firstRow(body));
        } catch (e) {
            this.last = null;
            this.render(null, 0, e);
        }
        this.update(this.last);
    }

    firstRow(body) {
        return (this.cursors.length - 1) * (body && body.limit ? body.limit : 0);
    }

    update(body) {
        this.prevBtn.disabled = this.cursors.length < 2;
        this.nextBtn.disabled = !body || !body.next_cursor;
        if (!body) {
            this.info.textContent = '';
            return;
        }
        const first = this.firstRow(body);
        const n = body.data.length;
        this.info.textContent = n
            ? `${first + 1}–${first + n} of ${body.total}`
            : `0 of ${body.total}`;
    }
}

/** Fill a <select> with "any agent" and the agents on the board (by name). */
export async function fillAgentSelect(select, selected, anyLabel = 'All agents') {
    await board.ensureLoaded();
    const agents = board.byName();
    const opts = [anyLabel ? h('option', { value: '' }, anyLabel) : null,
        agents.map((a) => h('option', { value: a.user_id }, a.user_name || a.user_id))];
    if (selected && !board.agents.has(selected)) opts.push(h('option', { value: selected }, selected));
    fill(select, opts);
    select.value = selected || '';
}

/** Fill a <datalist> with the monitored queues (those of the agents on the board). */
export async function fillQueueDatalist(datalist) {
    try {
        await board.ensureLoaded();
    } catch {
        return;                // only suggestions: the board shows its own error
    }
    const ids = new Set();
    for (const a of board.agents.values()) for (const q of a.queue_ids || []) ids.add(q);
    fill(datalist, Array.from(ids).sort().map((q) => h('option', { value: q })));
}

/**
 * A <table class="data">: columns [{label, cell(row, i) → content, cls?, head?}]
 * (head: the cell is the row's <th scope=row>), rowAttrs(row, i) → attributes of the <tr>.
 */
export function dataTable({ id, cls = '', caption, captionHidden = true, columns, rows, rowAttrs }) {
    return h('table', { class: `data ${cls}`.trim(), id },
        caption ? h('caption', { class: captionHidden ? 'sr-only' : null }, caption) : null,
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.cls || null }, c.label)))),
        h('tbody', {}, rows.map((row, i) => h('tr', rowAttrs ? rowAttrs(row, i) : {},
            columns.map((c) => h(c.head ? 'th' : 'td', { scope: c.head ? 'row' : null, class: c.cls || null },
                c.cell(row, i)))))));
}

export function agentLabel(id, name) {
    return name || board.nameOf(id) || id;
}

export function statePill(state) {
    const info = stateInfo(state);
    return h('span', { class: `state-pill ${info.cls}` }, info.label);
}
