// A long-lived browser driver for the pytest suites: Debian's /usr/bin/chromium
// steered by playwright-core (no browser download), speaking JSON lines.
//
//   stdin:  {"id": 1, "cmd": "goto", "page": "main", "url": "http://127.0.0.1:…/gcmon/"}
//   stdout: {"id": 1, "ok": true, "result": …}  or  {"id": 1, "ok": false, "error": "…"}
//
// Contexts (cookie/credential jars) and pages are named by the caller. Every
// request any page makes is recorded; one to a host other than 127.0.0.1 /
// localhost is aborted and recorded as "blocked". Console messages, page
// errors and CSP violations are recorded per page.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const EXECUTABLE = process.env.GCMON_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-sandbox', '--disable-dev-shm-usage'];
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

let browser = null;
const contexts = new Map();
const pages = new Map();
const requests = [];           // {url, method, page, resource, blocked, headers}
const logs = new Map();        // page name → [{type, text, location}]

function out(obj) {
    process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function launch() {
    if (browser) return browser;
    // launch() gives the browser a fresh temporary --user-data-dir of its own and
    // removes it on close; headless is passed by playwright-core as --headless.
    browser = await chromium.launch({ executablePath: EXECUTABLE, headless: true, args: ARGS,
        timeout: 30000 });
    return browser;
}

function isLocal(url) {
    try {
        const u = new URL(url);
        if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
        return LOCAL_HOSTS.has(u.hostname) || LOCAL_HOSTS.has(`[${u.hostname}]`);
    } catch {
        return false;
    }
}

async function newContext({ name, credentials, viewport, timezone, locale }) {
    const b = await launch();
    const ctx = await b.newContext({
        viewport: viewport || { width: 1280, height: 800 },
        httpCredentials: credentials || undefined,
        timezoneId: timezone || undefined,
        locale: locale || 'en-GB',
        serviceWorkers: 'block',
    });
    await ctx.route('**/*', (route) => {
        const req = route.request();
        if (isLocal(req.url())) return route.continue();
        requests.push({ url: req.url(), method: req.method(), page: null, blocked: true });
        return route.abort('blockedbyclient');
    });
    // Every CSP violation becomes a console error (and is kept on window).
    await ctx.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
            console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
        });
    });
    contexts.set(name, ctx);
    return name;
}

async function newPage({ name, context }) {
    const ctx = contexts.get(context);
    if (!ctx) throw new Error(`no context ${context}`);
    const page = await ctx.newPage();
    const log = [];
    logs.set(name, log);
    page.on('console', (m) => log.push({ type: m.type(), text: m.text(), location: m.location().url || '' }));
    page.on('pageerror', (e) => log.push({ type: 'pageerror', text: String(e && e.stack || e) }));
    page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), page: name,
        resource: r.resourceType(), blocked: !isLocal(r.url()), headers: r.headers() }));
    page.on('response', (r) => {
        const rec = requests.findLast((x) => x.url === r.url() && x.page === name && x.status === undefined);
        if (rec) rec.status = r.status();
    });
    page.setDefaultTimeout(10000);
    pages.set(name, page);
    return name;
}

function pageOf(a) {
    const p = pages.get(a.page || 'main');
    if (!p) throw new Error(`no page ${a.page}`);
    return p;
}

const fakes = new Map();        // "page pattern" → {responses, seen}

const commands = {
    async launch() { await launch(); return chromium.executablePath ? EXECUTABLE : EXECUTABLE; },
    async version() { return (await launch()).version(); },
    new_context: newContext,
    new_page: newPage,
    async close_page(a) { await pageOf(a).close(); pages.delete(a.page); return true; },
    async goto(a) {
        const r = await pageOf(a).goto(a.url, { waitUntil: a.wait_until || 'load' });
        return r ? r.status() : null;
    },
    async reload(a) { await pageOf(a).reload(); return true; },
    async url(a) { return pageOf(a).url(); },
    async set_viewport(a) { await pageOf(a).setViewportSize({ width: a.width, height: a.height }); return true; },
    async click(a) { await pageOf(a).click(a.selector, { timeout: a.timeout }); return true; },
    async fill(a) { await pageOf(a).fill(a.selector, a.value); return true; },
    async select(a) { return pageOf(a).selectOption(a.selector, a.value); },
    async focus(a) { await pageOf(a).focus(a.selector); return true; },
    async hover(a) { await pageOf(a).hover(a.selector); return true; },
    async press(a) {
        const p = pageOf(a);
        if (a.selector) await p.press(a.selector, a.key);
        else await p.keyboard.press(a.key);
        return true;
    },
    async type(a) { await pageOf(a).keyboard.type(a.text, { delay: a.delay || 0 }); return true; },
    async wait_for(a) {
        await pageOf(a).waitForSelector(a.selector, { state: a.state || 'visible', timeout: a.timeout });
        return true;
    },
    // Wait until a JS expression (a function body's return value) is truthy; returns it.
    async wait_fn(a) {
        const h = await pageOf(a).waitForFunction(new Function('arg', a.expression), a.arg ?? null,
            { timeout: a.timeout || 10000, polling: a.polling || 50 });
        return h.jsonValue();
    },
    async text(a) { return pageOf(a).textContent(a.selector, { timeout: a.timeout }); },
    async texts(a) { return pageOf(a).locator(a.selector).allTextContents(); },
    async count(a) { return pageOf(a).locator(a.selector).count(); },
    async attr(a) { return pageOf(a).getAttribute(a.selector, a.name); },
    async visible(a) { return pageOf(a).isVisible(a.selector); },
    // Evaluate a function body in the page; `arg` is passed as the variable arg.
    async eval(a) { return pageOf(a).evaluate(new Function('arg', a.expression), a.arg ?? null); },
    async screenshot(a) {
        await pageOf(a).screenshot({ path: a.path, fullPage: Boolean(a.full_page) });
        return a.path;
    },
    async console(a) { return a.page ? (logs.get(a.page) || []) : Object.fromEntries(logs); },
    async clear_console(a) {
        for (const [n, l] of logs) if (!a.page || a.page === n) l.length = 0;
        return true;
    },
    async requests(a) {
        return requests.filter((r) => !a.page || r.page === a.page)
            .filter((r) => !a.match || new RegExp(a.match).test(r.url));
    },
    async clear_requests() { requests.length = 0; return true; },
    // Answer requests whose URL matches `pattern` (a regex) with the canned
    // `responses` in turn (the last one repeats); what was asked is kept.
    async fake(a) {
        const page = pageOf(a);
        const key = `${a.page} ${a.pattern}`;
        const state = { responses: a.responses, seen: [] };
        fakes.set(key, state);
        const re = new RegExp(a.pattern);
        await page.route((url) => re.test(url.toString()), (route) => {
            const req = route.request();
            const i = Math.min(state.seen.length, state.responses.length - 1);
            state.seen.push({ url: req.url(), headers: req.headers() });
            const r = state.responses[i];
            return route.fulfill({ status: r.status, headers: r.headers || {},
                body: r.body === undefined ? '' : (typeof r.body === 'string' ? r.body : JSON.stringify(r.body)) });
        });
        return true;
    },
    async unfake(a) {
        await pageOf(a).unrouteAll({ behavior: 'ignoreErrors' });
        for (const k of fakes.keys()) if (k.startsWith(`${a.page} `)) fakes.delete(k);
        return true;
    },
    async fake_seen(a) { return (fakes.get(`${a.page} ${a.pattern}`) || { seen: [] }).seen; },
    async quit() {
        if (browser) await browser.close();
        browser = null;
        return true;
    },
};

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
    chain = chain.then(async () => {
        let msg;
        try {
            msg = JSON.parse(line);
        } catch (e) {
            out({ id: null, ok: false, error: `bad JSON: ${e.message}` });
            return;
        }
        const fn = commands[msg.cmd];
        if (!fn) {
            out({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
            return;
        }
        try {
            const result = await fn(msg);
            out({ id: msg.id, ok: true, result: result === undefined ? null : result });
        } catch (e) {
            out({ id: msg.id, ok: false, error: String(e && e.message || e) });
        }
        if (msg.cmd === 'quit') process.exit(0);
    });
});
rl.on('close', async () => {
    await chain;
    if (browser) await browser.close().catch(() => {});
    process.exit(0);
});
