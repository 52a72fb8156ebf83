// Addresses: "#/<view>?<params>" in the hash; the wallboard by "?kiosk=1"
// (before the hash, for a bookmark) or "kiosk=1" among the view's parameters.

export const VIEW_NAMES = ['board', 'history', 'alerts', 'stream', 'admin', 'weights', 'traces', 'strategies', 'audit'];

export function parseHash(hash = location.hash) {
    const raw = hash.replace(/^#\/?/, '');
    const q = raw.indexOf('?');
    const name = (q < 0 ? raw : raw.slice(0, q)) || 'board';
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    return { name: VIEW_NAMES.includes(name) ? name : 'board', params };
}

/** "#/<view>?<params>", leaving out empty values. */
export function hashFor(name, params) {
    const qs = new URLSearchParams();
    const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params || {});
    for (const [k, v] of entries) {
        if (v !== undefined && v !== null && v !== '' && v !== false) qs.set(k, String(v));
    }
    const s = qs.toString();
    return `#/${name}${s ? `?${s}` : ''}`;
}

/** Record a view's parameters in the address bar without navigating. */
export function replaceParams(name, params) {
    const { params: old } = parseHash();
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) p.set(k, v ?? '');
    if (old.get('kiosk') === '1') p.set('kiosk', '1');
    history.replaceState(history.state, '', hashFor(name, p));
}

export function isKiosk() {
    return new URLSearchParams(location.search).get('kiosk') === '1' ||
        parseHash().params.get('kiosk') === '1';
}

const kioskListeners = new Set();
export function onKiosk(fn) { kioskListeners.add(fn); }

export function setKiosk(on) {
    const search = new URLSearchParams(location.search);
    search.delete('kiosk');
    const { name, params } = parseHash();
    if (on) params.set('kiosk', '1'); else params.delete('kiosk');
    const s = search.toString();
    history.replaceState(history.state, '', `${location.pathname}${s ? `?${s}` : ''}${hashFor(name, params)}`);
    for (const fn of kioskListeners) fn(isKiosk());
}
