// Formatting of times and durations. Times are shown in the browser's zone;
// the UTC value goes into the element's title.

const dateTime = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit',
});

export function localDateTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function localTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : timeOnly.format(d);
}

/** 75 → "1:15", 3725 → "1:02:05" (a running clock). */
export function clock(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
    const s = Math.max(0, Math.floor(seconds));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const p = (n) => String(n).padStart(2, '0');
    return hh > 0 ? `${hh}:${p(mm)}:${p(ss)}` : `${mm}:${p(ss)}`;
}

/** 900 → "15 min", 45 → "45 s", 7200 → "2 h", 5400 → "1 h 30 min". */
export function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
    if (seconds > 0 && seconds < 0.5) return '< 1 s';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) {
        const m = Math.floor(s / 60), r = s % 60;
        return r ? `${m} min ${r} s` : `${m} min`;
    }
    const hh = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return m ? `${hh} h ${m} min` : `${hh} h`;
}

/** "12 s ago", "3 min ago" for a past ISO time, given the current epoch ms. */
export function ago(iso, nowMs) {
    if (!iso) return 'never';
    const s = (nowMs - Date.parse(iso)) / 1000;
    if (!Number.isFinite(s)) return iso;
    if (s < 1) return 'just now';
    return `${duration(s)} ago`;
}

/** A datetime-local input's value (browser zone) → RFC 3339 UTC, or '' when empty. */
export function localInputToIso(value) {
    if (!value) return '';
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** RFC 3339 → a datetime-local input's value in the browser's zone. */
export function isoToLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
        `${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** x rounded to d decimals, as text ("0.4167", "12"); "—" for nothing. */
export function num(x, d = 4) {
    if (x === null || x === undefined || x === '' || !Number.isFinite(Number(x))) return '—';
    const f = 10 ** d;
    return String(Math.round(Number(x) * f) / f);
}

export function shortId(id) {
    return id && id.length > 12 ? `${id.slice(0, 8)}…` : (id || '');
}
