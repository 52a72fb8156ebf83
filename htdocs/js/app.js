// The dashboard shell: hash routing between the views (#/board, #/history,
// #/alerts, #/stream, #/admin, #/weights, #/traces, #/strategies, #/audit; parameters after "?"), the wallboard
// (kiosk) mode and the connection indicator.

import { $, $$ } from './dom.js';
import { board } from './boardmodel.js';
import { parseHash, isKiosk, setKiosk, onKiosk } from './nav.js';
import * as boardView from './board.js';
import * as historyView from './history.js';
import * as alertsView from './alerts.js';
import * as streamView from './stream.js';
import * as adminView from './admin.js';
import * as weightsView from './weights.js';
import * as tracesView from './traces.js';
import * as strategiesView from './strategies.js';
import * as auditView from './audit.js';

const VIEWS = {
    board: { mod: boardView, title: 'Live board' },
    history: { mod: historyView, title: 'History' },
    alerts: { mod: alertsView, title: 'Alerts' },
    stream: { mod: streamView, title: 'Stream health' },
    admin: { mod: adminView, title: 'Status change' },
    weights: { mod: weightsView, title: 'Weights' },
    traces: { mod: tracesView, title: 'Traces' },
    strategies: { mod: strategiesView, title: 'Strategies' },
    audit: { mod: auditView, title: 'Audit trail' },
};

let current = null;
const mounted = new Set();

function applyKiosk(on = isKiosk()) {
    document.body.classList.toggle('kiosk', on);
    $('#nav').hidden = on;
    if (current && current.mod.onKiosk) current.mod.onKiosk(on);
}

function route(focus) {
    const { name, params } = parseHash();
    const view = VIEWS[name];
    if (current && current !== view && current.mod.hide) current.mod.hide();
    for (const n of Object.keys(VIEWS)) $(`#view-${n}`).hidden = n !== name;
    for (const a of $$('#nav a')) {
        if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    }
    const section = $(`#view-${name}`);
    if (!mounted.has(name)) {
        view.mod.mount(section);
        mounted.add(name);
    }
    current = view;
    document.title = `gcmon — ${view.title}`;
    document.body.dataset.view = name;
    $('#conn').hidden = name !== 'board';     // the board's own poll status
    applyKiosk();
    view.mod.show(params);
    if (focus) {
        const heading = section.querySelector('h2');
        if (heading) heading.focus();
    }
}

function updateConn() {
    const el = $('#conn');
    el.classList.toggle('bad', Boolean(board.error));
    el.classList.toggle('ok', !board.error && Boolean(board.lastOk));
    if (board.error) el.textContent = `Not updating: ${board.error.message}`;
    else if (board.lastOk) el.textContent = `Live · updated ${new Date(board.lastOk).toLocaleTimeString()}`;
    else el.textContent = 'Connecting…';
}

board.subscribe(updateConn);
onKiosk(applyKiosk);
window.addEventListener('hashchange', () => route(true));
document.addEventListener('keydown', (e) => {
    // Escape leaves the wallboard (an open dialog takes Escape first).
    if (e.key === 'Escape' && isKiosk() && !document.querySelector('dialog[open]')) setKiosk(false);
});
route(false);
