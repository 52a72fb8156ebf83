// Small DOM helpers. No innerHTML anywhere: every text goes through
// textContent, so names and API messages can never inject markup.

/** h('div', {class: 'x', onclick: fn, hidden: true}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') {
            el.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
            el.className = v;
        } else if (k === 'dataset') {
            Object.assign(el.dataset, v);
        } else if (k === 'value' || k === 'checked' || k === 'selected') {
            el[k] = v;
        } else {
            el.setAttribute(k, v === true ? '' : String(v));
        }
    }
    append(el, children);
    return el;
}

export function append(el, children) {
    for (const c of children.flat(Infinity)) {
        if (c === undefined || c === null || c === false) continue;
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
}

/** Replace every child of el. */
export function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** A <time> in the browser's zone, with the UTC value on hover. */
export function timeEl(iso, text) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    return h('time', { datetime: iso, title: `${iso} (UTC)` }, text);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** s('rect', {x: 1, class: 'node'}, child…): h() for SVG elements (no event shorthands). */
export function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
}
