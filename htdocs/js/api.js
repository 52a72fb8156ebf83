// Every call to gcmon's API. URLs are relative to the page ("api/v1/…" from
// /gcmon/), so the dashboard works under any Alias. Errors come back as an
// ApiError whose message is in words: the problem+json `detail` when the API
// sent one, otherwise an explanation of the HTTP status (Apache's own 401/403
// pages are HTML).

export class ApiError extends Error {
    constructor(status, message, problem = null) {
        super(message);
        this.name = 'ApiError';
        this.status = status;          // 0 for a network failure
        this.problem = problem;        // the problem+json body, when there was one
        this.retryAfter = null;        // the Retry-After header (seconds), when there was one
    }

    /** {field: message} from the problem's errors[]. */
    get fieldErrors() {
        const out = {};
        for (const e of (this.problem && Array.isArray(this.problem.errors)) ? this.problem.errors : []) {
            if (e && e.field) out[e.field] = out[e.field] ? `${out[e.field]}; ${e.message}` : e.message;
        }
        return out;
    }
}

const ADMIN_HEADERS = { 'Content-Type': 'application/json', 'X-Gcmon-Request': '1' };

/** "api/v1/<path>?<query>" with empty query values left out. */
export function apiUrl(path, query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) {
        if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    }
    const s = qs.toString();
    return `api/v1/${path}${s ? `?${s}` : ''}`;
}

function statusWords(status, admin) {
    switch (status) {
    case 401:
        return 'You are not signed in for this (HTTP 401): the web server asks for a user name ' +
            'and password for the admin pages. Reload the page and sign in when the browser ' +
            'asks, or ask your Apache admin for an account.';
    case 403:
        return admin
            ? 'The web server refused this admin request (HTTP 403): your account is not ' +
              'allowed to use the admin API. Ask your Apache admin for access.'
            : 'The web server refused this request (HTTP 403). Ask your Apache admin for access.';
    case 404: return 'Not found (HTTP 404): is the gcmon API mounted below this page (api/v1/)?';
    case 502: case 503: case 504:
        return `The gcmon server or something in front of it is unavailable (HTTP ${status}). ` +
            'Try again in a moment.';
    default: return `The server answered HTTP ${status}.`;
    }
}

/** Words for a problem+json body; adds what to do when the server names a directive. */
function problemWords(status, p, admin) {
    let text = p.detail || p.title || statusWords(status, admin);
    if (status === 403 && /GcmonAdminActor/.test(`${p.detail} ${p.title}`)) {
        text += ' — Admin actions need a signed-in user: the Apache admin has to put ' +
            '/gcmon/api/v1/admin behind authentication (see GcmonAdminActor in docs/directives.md).';
    }
    return text;
}

/**
 * fetch() one API resource. Resolves to {status, etag, body, headers}; a 304
 * resolves with body null. Anything else outside 2xx rejects with an ApiError.
 */
export async function request(path, { method = 'GET', query, body, headers = {}, signal } = {}) {
    const admin = path.startsWith('admin/');
    const h = { Accept: 'application/json, application/problem+json', ...(admin ? ADMIN_HEADERS : {}),
        ...headers };
    let res;
    try {
        res = await fetch(apiUrl(path, query), {
            method, headers: h, signal, cache: 'no-store', credentials: 'same-origin',
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    } catch (e) {
        if (e && e.name === 'AbortError') throw e;
        throw new ApiError(0, 'The gcmon server could not be reached (network error). ' +
            'Check the connection; the dashboard keeps trying.');
    }
    const etag = res.headers.get('ETag');
    if (res.status === 304) return { status: 304, etag, body: null, headers: res.headers };
    const type = res.headers.get('Content-Type') || '';
    let data = null;
    if (/json/.test(type)) {
        try { data = await res.json(); } catch { data = null; }
    }
    if (res.ok) {
        // 204 No Content (a DELETE), or a 202 that only says "accepted": no body to read.
        if (data === null && (res.status === 204 || res.status === 202)) {
            return { status: res.status, etag, body: null, headers: res.headers };
        }
        if (data === null) {
            throw new ApiError(res.status, `The server answered HTTP ${res.status} without JSON: ` +
                'is the gcmon API mounted below this page (api/v1/)?');
        }
        return { status: res.status, etag, body: data, headers: res.headers };
    }
    const err = data && type.includes('problem+json')
        ? new ApiError(res.status, problemWords(res.status, data, admin), data)
        : new ApiError(res.status, statusWords(res.status, admin));
    err.retryAfter = res.headers.get('Retry-After');
    throw err;
}

export const get = (path, query, opts = {}) => request(path, { ...opts, query });
