// The live board's data: every agent by user id, kept current by polling
// GET api/v1/agents with If-None-Match (a 304 means nothing changed).
//
// Delta polling: when the last answer carried a "generation", the next poll
// asks for ?since=<generation> and the server answers only what changed —
// {"full":false, "data":[changed agents], "removed":[user ids]} — or the
// whole board with "full":true when it no longer knows that generation. A
// server without generations (no "generation" member) gets plain full polls.

import { request } from './api.js';

// 1.5 s: a change is on the screen within 2 s of happening (≤ 1.5 s until the
// next poll + the stream's ingest lag + one request).
export const POLL_MS = 1500;
const HIDDEN_POLL_MS = 10000;     // a tab nobody looks at polls slowly

export class BoardModel {
    constructor() {
        this.agents = new Map();     // user_id → board item
        this.etag = null;
        this.generation = null;
        this.total = 0;
        this.loaded = false;
        this.error = null;           // the last ApiError, cleared by a good poll
        this.lastOk = 0;             // Date.now() of the last good poll (200 or 304)
        this.clockOffset = 0;        // server time − browser time, ms
        this.version = 0;            // bumps when agents change
        this.listeners = new Set();
        this.timer = null;
        this.inflight = null;
        this.active = false;
    }

    /** Server "now" in epoch ms (the browser's clock corrected by generated_at). */
    now() { return Date.now() + this.clockOffset; }

    secondsInState(agent) {
        if (!agent.since) return null;
        return (this.now() - Date.parse(agent.since)) / 1000;
    }

    subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

    emit(changed) { for (const fn of this.listeners) fn(changed); }

    /** Apply one 200 answer (full board or delta). Returns true when agents changed. */
    apply(body, etag) {
        const delta = body.full === false && this.generation !== null && 'generation' in body;
        if (delta) {
            for (const a of body.data || []) this.agents.set(a.user_id, a);
            for (const id of body.removed || []) this.agents.delete(id);
        } else {
            this.agents = new Map((body.data || []).map((a) => [a.user_id, a]));
        }
        this.generation = typeof body.generation === 'string' ? body.generation : null;
        this.etag = etag || null;
        this.total = Number.isInteger(body.total) ? body.total : this.agents.size;
        if (delta && this.agents.size !== this.total) {
            // Out of step with the server: ask for the whole board next time.
            this.generation = null;
            this.etag = null;
        }
        if (body.generated_at) {
            const t = Date.parse(body.generated_at);
            if (Number.isFinite(t)) this.clockOffset = t - Date.now();
        }
        this.loaded = true;
        this.version += 1;
        return true;
    }

    /** One poll. Resolves to true when the agents changed. */
    async poll() {
        if (this.inflight) return this.inflight;
        const query = this.generation !== null ? { since: this.generation } : undefined;
        const headers = this.etag ? { 'If-None-Match': this.etag } : {};
        this.inflight = (async () => {
            try {
                const r = await request('agents', { query, headers });
                this.error = null;
                this.lastOk = Date.now();
                if (r.status === 304) return false;
                return this.apply(r.body, r.etag);
            } catch (e) {
                if (query && e.status === 400) {
                    // The server refused our generation: start again from the full board.
                    this.generation = null;
                    this.etag = null;
                }
                this.error = e;
                return false;
            } finally {
                this.inflight = null;
            }
        })();
        const changed = await this.inflight;
        this.emit(changed);
        return changed;
    }

    /** Load once if never loaded (for views that only need the agent list). */
    async ensureLoaded() {
        if (!this.loaded) await this.poll();
        return this;
    }

    /** Poll every POLL_MS while active; start-to-start, never overlapping. */
    start() {
        if (this.active) return;
        this.active = true;
        const loop = async () => {
            if (!this.active) return;
            const t0 = Date.now();
            await this.poll();
            if (!this.active) return;
            const period = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
            this.timer = setTimeout(loop, Math.max(0, period - (Date.now() - t0)));
        };
        this.onVisible = () => {
            if (!document.hidden && this.active) { clearTimeout(this.timer); loop(); }
        };
        document.addEventListener('visibilitychange', this.onVisible);
        loop();
    }

    stop() {
        this.active = false;
        clearTimeout(this.timer);
        if (this.onVisible) document.removeEventListener('visibilitychange', this.onVisible);
    }

    /** Agents sorted by name (then id), for pickers. */
    byName() {
        return Array.from(this.agents.values()).sort((a, b) =>
            (a.user_name || a.user_id).localeCompare(b.user_name || b.user_id) ||
            a.user_id.localeCompare(b.user_id));
    }

    nameOf(id) {
        const a = this.agents.get(id);
        return (a && a.user_name) || null;
    }
}

export const board = new BoardModel();
