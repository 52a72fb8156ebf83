// The 15 agent states gcmon reports (docs/api.md), how the dashboard names
// them, and how they group into Genesys-style "Queue Activity" columns.
// Colour is never the only signal: every tile and count carries the label.

export const STATES = [
    // [state, label, colour class]
    ['IDLE', 'Idle', 'c-idle'],
    ['INTERACTING', 'Interacting', 'c-interacting'],
    ['COMMUNICATING', 'Communicating', 'c-communicating'],
    ['NOT_RESPONDING', 'Not responding', 'c-notresp'],
    ['OnQueue', 'On queue', 'c-onqueue'],
    ['OFF_QUEUE', 'Off queue', 'c-offqueue'],
    ['Available', 'Available', 'c-available'],
    ['Busy', 'Busy', 'c-busy'],
    ['Meeting', 'Meeting', 'c-busy'],
    ['Training', 'Training', 'c-busy'],
    ['Away', 'Away', 'c-away'],
    ['Break', 'Break', 'c-away'],
    ['Meal', 'Meal', 'c-away'],
    ['Idle', 'Idle presence', 'c-inactive'],
    ['Offline', 'Offline', 'c-offline'],
];

const BY_STATE = new Map(STATES.map(([s, label, cls]) => [s, { state: s, label, cls }]));

export const STATE_NAMES = STATES.map(([s]) => s);

/** {state, label, cls} for any state string (unknown ones get a neutral look). */
export function stateInfo(state) {
    return BY_STATE.get(state) || { state, label: state || 'Unknown', cls: 'c-unknown' };
}

const ON_QUEUE = new Set(['IDLE', 'INTERACTING', 'COMMUNICATING', 'NOT_RESPONDING', 'OnQueue']);

/** The Queue Activity columns: [key, heading, predicate(agent)]. */
export const QUEUE_COLUMNS = [
    ['on_queue', 'On queue', (a) => ON_QUEUE.has(a.state)],
    ['idle', 'Idle', (a) => a.state === 'IDLE'],
    ['interacting', 'Interacting', (a) => a.state === 'INTERACTING'],
    ['communicating', 'Communicating', (a) => a.state === 'COMMUNICATING'],
    ['not_responding', 'Not responding', (a) => a.state === 'NOT_RESPONDING'],
    ['off_queue', 'Off queue', (a) => !ON_QUEUE.has(a.state) && a.state !== 'Offline'],
    ['away', 'Away', (a) => a.state === 'Away'],
    ['break', 'Break', (a) => a.state === 'Break'],
    ['meal', 'Meal', (a) => a.state === 'Meal'],
    ['offline', 'Offline', (a) => a.state === 'Offline'],
];

/** The system presences an admin can set (org-defined labels can be typed too). */
export const PRESENCES = ['Available', 'Away', 'Break', 'Busy', 'Meal', 'Meeting', 'OnQueue',
    'Training', 'Idle', 'Offline'];
