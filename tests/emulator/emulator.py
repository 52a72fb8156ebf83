#!/usr/bin/python3
"""Genesys Cloud Platform API v2 emulator for the gcmon test suites and `make demo`.

One aiohttp server plays the login host (`/oauth/token`), the API host (`/api/v2/...`),
the streaming host (`/channels/{id}` WebSockets) and the storage behind the pre-signed flow
execution data links (`/downloads/{token}`), with the real API's JSON shapes.
A control API under `/__emulator/` (no auth) lets tests create agents and queues, drive
state changes, inject faults, read the request log and the agents' ground-truth
timelines. See README.md next to this file.

Layout of this module:
  1. time, ids and constants         5. middlewares (log, faults, errors, auth, rate limit)
  2. state model (presence catalogue, 6. Genesys REST routes
     agents, queues, tokens, faults)  7. notifications (channels, subscriptions, sockets)
  3. the Emulator (state + actions)   8. control API
  4. JSON views of the model          9. simulation   10. app factory + CLI

Run only with Debian's /usr/bin/python3 (python3-aiohttp 3.8).
"""
import argparse
import asyncio
import base64
import collections
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import ssl
import string
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

from aiohttp import WSMsgType, web

log = logging.getLogger("gc-emulator")

# =============================================================================
# 1. Time, ids, constants
# =============================================================================

CORRELATION_HEADER = "ININ-Correlation-ID"
CONTROL_PREFIX = "/__emulator/"
API_PREFIX = "/api/v2/"
NAMESPACE = uuid.UUID("5f0c6c1e-2b1a-4c53-9d1e-6a6d6f6e0001")  # stable ids for seeded objects

ROUTING_STATUSES = ("OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING", "COMMUNICATING")
SETTABLE_ROUTING_STATUSES = ("OFF_QUEUE", "IDLE")       # what a client may PUT
MAX_TOPICS_PER_CHANNEL = 1000
MAX_CHANNELS_PER_CLIENT = 20
MAX_IDS_PER_USERS_QUERY = 100
REQUEST_LOG_MAX = 20000
TIMELINE_MAX = 5000
RATE_WINDOW = 60.0

ERROR_CODES = {
    400: "bad.request", 401: "bad.credentials", 403: "missing.any.permissions",
    404: "not.found", 405: "method.not.allowed", 409: "general.conflict",
    413: "request.entity.too.large", 415: "unsupported.media.type",
    429: "too.many.requests", 500: "internal.server.error", 502: "bad.gateway",
    503: "service.unavailable", 504: "gateway.timeout",
}


def now() -> float:
    """Wall-clock time in epoch seconds, truncated to the millisecond."""
    return math.floor(time.time() * 1000) / 1000


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, as Genesys writes dates."""
    total_ms = int(round(ts * 1000))
    secs, ms = divmod(total_ms, 1000)
    return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def parse_iso(value: str) -> float:
    value = value.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp(), 3)


def stable_id(kind: str, key) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{key}"))


def new_id() -> str:
    return str(uuid.uuid4())


def squash(name: str) -> str:
    """Case- and punctuation-insensitive key: 'On Queue', 'ON_QUEUE', 'OnQueue' -> 'onqueue'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# =============================================================================
# 2. State model
# =============================================================================

@dataclass(frozen=True)
class PresenceDefinition:
    """One org presence. `system` is the presence-definitions API casing (e.g. `OnQueue`)."""
    id: str
    system: str
    label: str
    type: str = "System"          # System | User
    primary: bool = True
    deactivated: bool = False

    # Casing differs by API, as on the real platform (see the notes, section 2.5):
    #   /api/v2/presence/definitions   -> camel case   "OnQueue"
    #   user presence (users, presences/purecloud) -> legacy label form "On Queue"
    #   notifications (v2.users.*)     -> upper snake  "ON_QUEUE"
    @property
    def rest_system(self) -> str:
        return "On Queue" if self.system == "OnQueue" else self.system

    @property
    def event_system(self) -> str:
        return "ON_QUEUE" if self.system == "OnQueue" else self.system.upper()

    @property
    def on_queue(self) -> bool:
        return self.system == "OnQueue"


# (system presence, fixed id). Available and On Queue carry the ids seen on real orgs.
SYSTEM_PRESENCES = [
    ("Available", "6a3af858-942f-489d-9700-5f9bcdcdae9b"),
    ("Away", stable_id("presence", "Away")),
    ("Busy", stable_id("presence", "Busy")),
    ("Break", stable_id("presence", "Break")),
    ("Meal", stable_id("presence", "Meal")),
    ("Meeting", stable_id("presence", "Meeting")),
    ("Training", stable_id("presence", "Training")),
    ("Offline", stable_id("presence", "Offline")),
    ("Idle", stable_id("presence", "Idle")),
    ("OnQueue", "e08eaf1b-ee47-4fa9-a231-1200e284798f"),
]
SECONDARY_PRESENCES = [  # org-defined ("User") presences
    ("Meal", "Lunch Walk", stable_id("presence", "Lunch Walk")),
]


class PresenceCatalogue:
    def __init__(self):
        self.definitions: Dict[str, PresenceDefinition] = {}
        for system, pid in SYSTEM_PRESENCES:
            label = "On Queue" if system == "OnQueue" else system
            self.definitions[pid] = PresenceDefinition(pid, system, label)
        for system, label, pid in SECONDARY_PRESENCES:
            self.definitions[pid] = PresenceDefinition(pid, system, label, type="User", primary=False)

    def primary(self, system: str) -> PresenceDefinition:
        return next(d for d in self.definitions.values() if d.primary and d.system == system)

    def resolve(self, name: str) -> Optional[PresenceDefinition]:
        """By id, by system presence in any casing, or by label (primary system ones first)."""
        if name in self.definitions:
            return self.definitions[name]
        key = squash(name)
        for d in sorted(self.definitions.values(), key=lambda d: not d.primary):
            if key in (squash(d.system), squash(d.label), squash(d.event_system)):
                return d
        return None


@dataclass
class Agent:
    id: str
    name: str
    email: str
    presence: PresenceDefinition
    presence_message: str
    presence_modified: float
    routing_status: str
    routing_start: float
    created: float
    skills: Dict[str, dict] = field(default_factory=dict)    # skill id -> {proficiency, state}
    timeline: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TIMELINE_MAX))
    simulated: bool = False

    @property
    def state(self) -> str:
        """gcmon's agent state (SPEC 3.1): the presence, or the routing status when On Queue."""
        return self.routing_status if self.presence.on_queue else self.presence.system


@dataclass
class Member:
    user_id: str
    ring_number: int = 1
    joined: bool = True


@dataclass
class Queue:
    id: str
    name: str
    body: dict                     # the writable Genesys fields (mediaSettings, acwSettings, ...)
    created: float
    modified: float
    version: int = 1
    waiting: int = 0
    members: Dict[str, Member] = field(default_factory=dict)
    observed: Dict[str, int] = field(default_factory=dict)   # scripted observation counts
    readback_lag: int = 0          # after a PUT, this many GETs still see the old queue
    stale: Optional[dict] = None   # the queue JSON those GETs see
    stale_gets: int = 0            # GETs left before the PUT reads back


@dataclass
class Token:
    value: str
    client_id: str
    issued: float                  # wall clock
    expires_at: float              # monotonic
    revoked: bool = False
    window: collections.deque = field(default_factory=collections.deque)  # monotonic request times


@dataclass
class Fault:
    method: str
    path: re.Pattern
    remaining: int
    status: Optional[int] = None
    retry_after: Optional[float] = None
    body: Optional[object] = None
    delay: Optional[float] = None
    drop: bool = False
    skip: int = 0                  # matching requests let through before the fault applies

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and bool(self.path.search(path))


@dataclass
class FlowInstance:
    """One scripted flow execution ("historical flow execution data"). `execution` is the
    downloaded document's execution list exactly as given; None timestamps are left out."""
    id: str
    flow_id: str
    flow_name: str
    flow_type: str
    flow_version: str
    conversation_id: str
    division_id: str
    start: Optional[str]
    end: Optional[str]
    execution: list
    error_reason: Optional[str] = None
    warning_reason: Optional[str] = None
    job_polls: int = 2             # the job answers its final state on this GET (0: at once)
    job_fails: Optional[str] = None         # a job containing it ends Failed with this message
    entity_fails: Optional[str] = None      # its job entity is failed:true with this statusCode
    truncated: Optional[bool] = None        # executionItemsTruncated (None: left out)
    reported_items: Optional[int] = None    # executionItemCount (None: left out)


@dataclass
class FlowJob:
    id: str
    ids: List[str]                 # the requested instance ids, in order
    job_polls: int
    fails: Optional[str]
    created: float
    polls: int = 0                 # GETs of the job that reached the handler
    downloads: List[str] = field(default_factory=list)   # tokens handed out so far

    @property
    def state(self) -> str:
        if self.polls >= self.job_polls:
            return "Failed" if self.fails else "Success"
        return "Registered" if self.polls == 0 else "Running"


@dataclass
class AuditQuery:
    """One `POST /api/v2/audits/query` execution. Its entries are matched when it is created."""
    id: str
    request: dict                  # interval, serviceName, filters, sort (as echoed back)
    entries: List[dict]
    running_polls: int             # GETs of the query that still answer Running
    fails: Optional[str]
    created: float
    polls: int = 0                 # GETs of the query that reached the handler

    @property
    def state(self) -> str:
        if self.polls > self.running_polls:
            return "Failed" if self.fails else "Succeeded"
        return "Running"


@dataclass
class Download:
    token: str
    instance_id: str
    job_id: str
    expires_at: float              # monotonic


@dataclass
class Config:
    token_expires: int = 86400
    heartbeat: float = 30.0
    rate_limit: int = 0            # API requests per token in any RATE_WINDOW (0 = off)
    client_rate_limit: int = 0     # the same per OAuth client, all its tokens together
    channel_ttl: float = 86400.0
    socket_closing_grace: float = 60.0
    download_ttl: float = 600.0    # lifetime of a flow execution data downloadUri (s)

    LIMITS = {"token_expires": (1, 172800), "heartbeat": (0, 3600), "rate_limit": (0, 10 ** 9),
              "client_rate_limit": (0, 10 ** 9),
              "channel_ttl": (1, 10 ** 7), "socket_closing_grace": (0, 3600),
              "download_ttl": (0.1, 86400)}

    def update(self, values: dict):
        for key, value in values.items():
            if key not in self.LIMITS:
                raise ControlError(400, f"unknown config key {key!r}")
            lo, hi = self.LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ControlError(400, f"{key} must be a number in [{lo}, {hi}]")
        for key, value in values.items():
            setattr(self, key, int(value) if key in ("token_expires", "rate_limit", "client_rate_limit")
                    else float(value))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.LIMITS}


class ApiError(Exception):
    """A Genesys-style error response (`ErrorBody`)."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, headers=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or ERROR_CODES.get(status, "error")
        self.headers = headers or {}


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# =============================================================================
# 3. The emulator: all state and the actions on it
# =============================================================================

class Emulator:
    def __init__(self, client_id: str, client_secret: str, config: Config, seed=None):
        self.client_id, self.client_secret = client_id, client_secret
        self.launch_config = Config(**config.as_dict())
        self.seed = seed
        self.started = time.monotonic()
        self.org_id = stable_id("org", "gcmon-emulator")
        self.division_id = stable_id("division", "Home")
        self.notifier = Notifier(self)
        self.simulation: Optional["Simulation"] = None
        self.request_seq = 0          # never reset: `since=` cursors stay valid across resets
        self.connect_base: Optional[str] = None   # --ws-tls: channels' connectUri base
        self.reset()

    # ---------------------------------------------------------------- reset
    def reset(self):
        if self.simulation:
            self.simulation.stop()
            self.simulation = None
        self.config = Config(**self.launch_config.as_dict())
        self.presences = PresenceCatalogue()
        self.agents: Dict[str, Agent] = {}
        self.queues: Dict[str, Queue] = {}
        self.skills: Dict[str, str] = {}              # org routing skills: id -> name
        self.tokens: Dict[str, Token] = {}
        self.client_windows: Dict[str, collections.deque] = {}    # client id -> request times
        self.faults: List[Fault] = []
        self.clear_flows()
        self.aggregates: Dict[str, List[dict]] = {}   # queue id -> scripted aggregate buckets
        self.clear_audits()
        self.request_log: collections.deque = collections.deque(maxlen=REQUEST_LOG_MAX)
        self.stats = collections.Counter()
        self.routes = collections.Counter()
        self.notifier.reset()

    # ---------------------------------------------------------------- tokens
    def issue_token(self, client_id: str) -> Token:
        mono = time.monotonic()
        for value in [v for v, t in self.tokens.items() if t.expires_at < mono - 3600]:
            del self.tokens[value]                      # forget long-dead tokens
        token = Token(secrets.token_urlsafe(48), client_id, now(), mono + self.config.token_expires)
        self.tokens[token.value] = token
        self.stats["tokens_issued"] += 1
        return token

    def check_token(self, header: str) -> Token:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "No authentication bearer token specified in authorization header.")
        token = self.tokens.get(value.strip())
        if token is None:
            raise ApiError(401, "Invalid login credentials.")
        if token.revoked:
            raise ApiError(401, "Invalid login credentials. The access token has been revoked.")
        if time.monotonic() >= token.expires_at:
            raise ApiError(401, "Invalid login credentials. The access token has expired.")
        return token

    def rate_check(self, token: Token):
        """The per-token limit (`rate_limit`, as Genesys) and the per-client one
        (`client_rate_limit`: every token of the OAuth client together): at most that many
        API requests in any RATE_WINDOW seconds (an exact sliding window), else 429 with
        Retry-After. A refused request takes no slot."""
        windows = []
        if self.config.rate_limit > 0:
            windows.append((self.config.rate_limit, token.window))
        if self.config.client_rate_limit > 0:
            windows.append((self.config.client_rate_limit,
                            self.client_windows.setdefault(token.client_id, collections.deque())))
        mono = time.monotonic()
        for limit, window in windows:
            while window and window[0] <= mono - RATE_WINDOW:
                window.popleft()
            if len(window) >= limit:
                self.stats["rate_limited"] += 1
                retry_after = max(1, math.ceil(window[0] + RATE_WINDOW - mono))
                raise ApiError(429, f"Rate limit exceeded the maximum [{limit}] requests within "
                                    f"[{int(RATE_WINDOW)}] seconds",
                               headers={"Retry-After": str(retry_after)})
        for _, window in windows:
            window.append(mono)

    # ---------------------------------------------------------------- faults
    def add_fault(self, spec: dict) -> Fault:
        try:
            fault = Fault(method=str(spec.get("method", "*")).upper(),
                          path=re.compile(spec.get("path", ".*")),
                          remaining=int(spec.get("count", 1)),
                          status=spec.get("status"), retry_after=spec.get("retry_after"),
                          body=spec.get("body"), delay=spec.get("delay"),
                          drop=bool(spec.get("drop", False)), skip=int(spec.get("skip", 0)))
        except (re.error, TypeError, ValueError) as e:
            raise ControlError(400, f"bad fault: {e}")
        if fault.skip < 0 or fault.remaining < 1:
            raise ControlError(400, "skip must be >= 0 and count >= 1")
        if fault.status is None and fault.delay is None and not fault.drop:
            raise ControlError(400, "a fault needs status, delay or drop")
        if fault.status is not None and not (isinstance(fault.status, int) and 100 <= fault.status <= 599):
            raise ControlError(400, "status must be an HTTP status code")
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Optional[Fault]:
        """The first pending fault that applies to this request. Every matching fault still
        skipping counts the request (so `skip` = N-1 hits the Nth matching call, whatever
        other faults do); the first matching one not skipping applies."""
        chosen = None
        for fault in list(self.faults):
            if not fault.matches(method, path):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            if chosen is None:
                chosen = fault
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
        return chosen

    # ---------------------------------------------------------------- skills, agents, queues
    def register_skill(self, skill_id: Optional[str], name: Optional[str]) -> str:
        if not skill_id and not name:
            raise ControlError(400, "a skill needs an id or a name")
        skill_id = skill_id or stable_id("skill", name)
        self.skills[skill_id] = name or self.skills.get(skill_id) or skill_id
        return skill_id

    def get_agent(self, user_id: str) -> Agent:
        agent = self.agents.get(user_id)
        if agent is None:
            raise ApiError(404, f"The user {user_id} could not be found.")
        return agent

    def get_queue(self, queue_id: str) -> Queue:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise ApiError(404, f"The queue {queue_id} could not be found.")
        return queue

    def create_agent(self, spec: dict, simulated=False) -> Agent:
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ControlError(400, "each agent needs a name")
        agent_id = str(spec.get("id") or new_id())
        if agent_id in self.agents:
            raise ControlError(409, f"agent {agent_id} already exists")
        presence = self.resolve_presence(spec.get("presence", "Available"))
        routing = spec.get("routing_status")
        routing = self.resolve_routing(routing) if routing else ("IDLE" if presence.on_queue else "OFF_QUEUE")
        ts = parse_iso(spec["at"]) if spec.get("at") else now()
        email = spec.get("email") or re.sub(r"[^a-z0-9.]", "", spec["name"].lower().replace(" ", ".")) \
            + "@example.com"
        agent = Agent(agent_id, spec["name"], email, presence, spec.get("message", ""), ts,
                      routing, ts, ts, simulated=simulated)
        for skill in spec.get("skills", []):
            skill_id = self.register_skill(skill.get("id"), skill.get("name"))
            agent.skills[skill_id] = {"proficiency": float(skill.get("proficiency", 0)),
                                      "state": skill.get("state", "active")}
        self.agents[agent_id] = agent
        for queue_id in spec.get("queues", []):
            queue = self.queues.get(queue_id) or self.create_queue({"id": queue_id, "name": queue_id})
            queue.members.setdefault(agent_id, Member(agent_id))
        self.record(agent, ts, "created")
        return agent

    def create_queue(self, spec: dict) -> Queue:
        """Create, or update when the id exists (name, waiting, members, skill evaluation)."""
        if not isinstance(spec, dict):
            raise ControlError(400, "each queue must be an object")
        queue_id = str(spec.get("id") or new_id())
        queue = self.queues.get(queue_id)
        if queue is None:
            if not spec.get("name"):
                raise ControlError(400, "a new queue needs a name")
            ts = now()
            queue = Queue(queue_id, spec["name"], default_queue_body(self), ts, ts)
            self.queues[queue_id] = queue
        if spec.get("name"):
            queue.name = spec["name"]
        if "waiting" in spec:
            queue.waiting = max(0, int(spec["waiting"]))
        if spec.get("skill_evaluation_method"):
            method = str(spec["skill_evaluation_method"]).upper()
            if method not in ("NONE", "BEST", "ALL"):
                raise ControlError(400, "skill_evaluation_method must be NONE, BEST or ALL")
            queue.body["skillEvaluationMethod"] = method
        if "members" in spec:
            self.set_members(queue, spec["members"])
        return queue

    def set_members(self, queue: Queue, members: list):
        """Replace membership. Entries: a user id, or {"id","ring_number"|"ringNumber","joined"}."""
        if not isinstance(members, list):
            raise ControlError(400, "members must be a list")
        new = {}
        for entry in members:
            entry = {"id": entry} if isinstance(entry, str) else entry
            user_id = entry.get("id") if isinstance(entry, dict) else None
            if user_id not in self.agents:
                raise ControlError(400, f"unknown member {user_id!r}")
            new[user_id] = Member(user_id, int(entry.get("ring_number", entry.get("ringNumber", 1))),
                                  bool(entry.get("joined", True)))
        queue.members = new

    def queues_of(self, agent: Agent, joined_only=True) -> List[str]:
        return [q.id for q in self.queues.values()
                if agent.id in q.members and (q.members[agent.id].joined or not joined_only)]

    def resolve_presence(self, name) -> PresenceDefinition:
        definition = self.presences.resolve(str(name))
        if definition is None:
            raise ControlError(400, f"unknown presence {name!r}")
        return definition

    @staticmethod
    def resolve_routing(name) -> str:
        status = str(name).upper().replace(" ", "_").replace("-", "_")
        if status not in ROUTING_STATUSES:
            raise ControlError(400, f"unknown routing status {name!r}")
        return status

    # ---------------------------------------------------------------- state changes
    def apply_state(self, agent: Agent, presence: Optional[PresenceDefinition] = None,
                    routing: Optional[str] = None, at: Optional[float] = None,
                    message: Optional[str] = None, force_presence=False, force_routing=False,
                    source="control") -> bool:
        """Change an agent's presence and/or routing status, as Genesys couples them:
        going On Queue makes an OFF_QUEUE agent IDLE, leaving On Queue makes it OFF_QUEUE,
        and setting a routing status alone moves the presence on/off queue. Values given
        explicitly always win. Returns whether anything changed (then the change is
        timestamped, recorded in the timeline and pushed to subscribed channels)."""
        new_presence = presence or agent.presence
        new_routing = routing or agent.routing_status
        if presence is not None and routing is None:
            if presence.on_queue and agent.routing_status == "OFF_QUEUE":
                new_routing = "IDLE"
            elif not presence.on_queue:
                new_routing = "OFF_QUEUE"
        if routing is not None and presence is None:
            if routing != "OFF_QUEUE" and not agent.presence.on_queue:
                new_presence = self.presences.primary("OnQueue")
            elif routing == "OFF_QUEUE" and agent.presence.on_queue:
                new_presence = self.presences.primary("Available")
        presence_changed = (force_presence or new_presence is not agent.presence
                            or (message is not None and message != agent.presence_message))
        routing_changed = force_routing or new_routing != agent.routing_status
        if not (presence_changed or routing_changed):
            return False
        ts = at if at is not None else now()
        if presence_changed:
            agent.presence, agent.presence_modified = new_presence, ts
            if message is not None:
                agent.presence_message = message
        if routing_changed:
            agent.routing_status, agent.routing_start = new_routing, ts
        self.stats["state_changes"] += 1
        self.record(agent, ts, source)
        self.notifier.publish_user(agent, presence_changed, routing_changed)
        return True

    @staticmethod
    def record(agent: Agent, ts: float, source: str):
        agent.timeline.append({
            "at": iso(ts), "ts": ts, "presence": agent.presence.system,
            "presence_id": agent.presence.id, "presence_label": agent.presence.label,
            "routing_status": agent.routing_status, "state": agent.state, "source": source,
        })

    # ---------------------------------------------------------------- analytics
    def observe_queue(self, queue: Optional[Queue], metric: str) -> int:
        if queue is None:
            return 0
        if metric in queue.observed:                  # scripted through the control API
            return queue.observed[metric]
        members = [self.agents[m.user_id] for m in queue.members.values() if m.user_id in self.agents]
        joined = [self.agents[m.user_id] for m in queue.members.values()
                  if m.joined and m.user_id in self.agents]
        return {
            "oMemberUsers": lambda: len(members),
            "oActiveUsers": lambda: len(joined),
            "oOnQueueUsers": lambda: sum(a.presence.on_queue for a in joined),
            "oOffQueueUsers": lambda: sum(not a.presence.on_queue and a.presence.system != "Offline"
                                          for a in joined),
            "oInteracting": lambda: sum(a.routing_status in ("INTERACTING", "COMMUNICATING")
                                        for a in joined),
            "oWaiting": lambda: queue.waiting,
            "oAlerting": lambda: 0,
        }[metric]()

    def script_observations(self, queue: Queue, values: dict):
        """Set (a count >= 0) or clear (null) scripted observation counts of one queue."""
        for metric, value in values.items():
            if metric not in OBSERVATION_METRICS:
                raise ControlError(400, f"unknown observation metric {metric!r}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ControlError(400, f"{metric} must be an integer >= 0 or null")
        for metric, value in values.items():
            if value is None:
                queue.observed.pop(metric, None)
            else:
                queue.observed[metric] = value

    def add_aggregate_bucket(self, queue_id: str, spec: dict) -> dict:
        """Script conversation aggregates of one queue: {"metrics":{name: stats}, "at"?, "media_type"?}.
        A t-metric's stats: a list of samples (ms) or {"max","min","count","sum"}; an n-metric's:
        a count (int) or {"count"}."""
        if not isinstance(spec, dict) or not isinstance(spec.get("metrics"), dict) or not spec["metrics"]:
            raise ControlError(400, "an aggregate bucket needs a non-empty metrics object")
        unknown = set(spec) - {"metrics", "at", "media_type"}
        if unknown:
            raise ControlError(400, f"unknown aggregate fields {sorted(unknown)}")
        metrics = {}
        for name, value in spec["metrics"].items():
            if name not in AGGREGATE_METRICS:
                raise ControlError(400, f"unsupported aggregate metric {name!r}")
            metrics[name] = aggregate_stats(name, value)
        try:
            at = parse_iso(spec["at"]) if spec.get("at") else None
        except (ValueError, AttributeError):
            raise ControlError(400, "at must be an ISO 8601 timestamp")
        bucket = {"metrics": metrics, "at": at, "media_type": str(spec.get("media_type") or "voice")}
        self.aggregates.setdefault(queue_id, []).append(bucket)
        return bucket

    # ---------------------------------------------------------------- audits
    def clear_audits(self):
        self.audit_entries: List[dict] = []       # AuditLogMessage JSON + "_ts" (epoch seconds)
        self.audit_queries: Dict[str, AuditQuery] = {}
        self.audit_behaviour = {"running_polls": 1, "fail": None, "put_user": None}

    def make_audit_entry(self, spec: dict) -> dict:
        """One audit entry from a control spec. Defaults: a Routing Update of a Queue, now."""
        if not isinstance(spec, dict):
            raise ControlError(400, "each audit entry must be an object")
        entity = spec.get("entity") or {}
        if not isinstance(entity, dict) or not entity.get("id"):
            raise ControlError(400, "an audit entry needs entity.id")
        try:
            ts = parse_iso(spec["eventDate"]) if spec.get("eventDate") else now()
        except (ValueError, AttributeError):
            raise ControlError(400, "eventDate must be an ISO 8601 timestamp")
        entry = {"id": str(spec.get("id") or new_id()), "userHomeOrgId": self.org_id}
        if spec.get("user") is not None:
            if not isinstance(spec["user"], dict) or not spec["user"].get("id"):
                raise ControlError(400, "user must be an object with an id")
            entry["user"] = {"id": str(spec["user"]["id"])}
            if spec["user"].get("name"):
                entry["user"]["name"] = str(spec["user"]["name"])
        if spec.get("client"):
            client = spec["client"] if isinstance(spec["client"], dict) else {"id": str(spec["client"])}
            entry["client"] = {"id": str(client.get("id")),
                               "selfUri": f"/api/v2/oauth/clients/{client.get('id')}"}
        entity_type = str(spec.get("entityType", "Queue"))
        ref = {"id": str(entity["id"])}
        if entity.get("name"):
            ref["name"] = str(entity["name"])
        if entity.get("selfUri") or entity_type == "Queue":
            ref["selfUri"] = entity.get("selfUri") or f"/api/v2/routing/queues/{entity['id']}"
        entry.update(serviceName=str(spec.get("serviceName", "Routing")),
                     level=str(spec.get("level", "USER")), eventDate=iso(ts),
                     action=str(spec.get("action", "Update")),
                     entity=ref, entityType=entity_type,
                     status=str(spec.get("status", "SUCCESS")),
                     application=str(spec.get("application", "gcmon-emulator")),
                     remoteIp=list(spec.get("remoteIp", ["127.0.0.1"])),
                     propertyChanges=list(spec.get("propertyChanges", [])),
                     context=dict(spec.get("context", {})), _ts=ts)
        return entry

    def audit_queue_put(self, queue: Queue, before: dict, after: dict, client_id: str):
        """Record a queue PUT as Genesys would: a Routing `Update` of a `Queue`."""
        changes = []
        for key in sorted(set(before) | set(after)):
            if key in QUEUE_READ_ONLY or before.get(key) == after.get(key):
                continue
            changes.append({"property": key,
                            "oldValues": [] if key not in before else [audit_value(before[key])],
                            "newValues": [] if key not in after else [audit_value(after[key])]})
        spec = {"entity": {"id": queue.id, "name": queue.name}, "client": client_id,
                "propertyChanges": changes, "context": {"version": str(queue.version)}}
        if self.audit_behaviour["put_user"]:
            spec["user"] = self.audit_behaviour["put_user"]
        self.audit_entries.append(self.make_audit_entry(spec))

    # ---------------------------------------------------------------- flow execution data
    def clear_flows(self):
        self.flow_instances: Dict[str, FlowInstance] = {}
        self.flow_jobs: Dict[str, FlowJob] = {}
        self.downloads: Dict[str, Download] = {}

    def add_flow_instance(self, spec: dict) -> FlowInstance:
        """Script one flow instance (control API). Replaces an instance with the same id."""
        if not isinstance(spec, dict) or not spec.get("flow_id"):
            raise ControlError(400, "each flow instance needs a flow_id")
        execution = spec.get("execution", [])
        if not isinstance(execution, list):
            raise ControlError(400, "execution must be a list (the document's execution items)")
        polls = spec.get("job_polls", 2)
        if isinstance(polls, bool) or not isinstance(polls, int) or not 0 <= polls <= 1000:
            raise ControlError(400, "job_polls must be an integer in [0, 1000]")
        reported = spec.get("reported_items")
        if reported is not None and (isinstance(reported, bool) or not isinstance(reported, int)
                                     or reported < 0):
            raise ControlError(400, "reported_items must be an integer >= 0")
        truncated = spec.get("truncated")
        if truncated is not None and not isinstance(truncated, bool):
            raise ControlError(400, "truncated must be true or false")

        def failure(key, default):
            value = spec.get(key)
            if value is None or value is False:
                return None
            return default if value is True else str(value)

        def timestamp(key, index):
            if key in spec:                       # given, or explicitly null (left out)
                value = spec[key]
                if value is not None:
                    try:
                        parse_iso(str(value))
                    except ValueError:
                        raise ControlError(400, f"{key} must be an ISO 8601 timestamp")
                return value
            return item_datetime(execution[index]) if execution else None

        flow_id = str(spec["flow_id"])
        start = timestamp("start", 0)
        end = timestamp("end", -1)
        if "start" not in spec and start is None and "end" not in spec and end is None:
            start = end = iso(now())
        instance = FlowInstance(
            id=str(spec.get("id") or new_id()), flow_id=flow_id,
            flow_name=str(spec.get("flow_name") or f"Flow {flow_id[:8]}"),
            flow_type=str(spec.get("flow_type") or "inboundcall"),
            flow_version=str(spec.get("flow_version") or "1.0"),
            conversation_id=str(spec.get("conversation_id") or new_id()),
            division_id=str(spec.get("division_id") or self.division_id),
            start=start, end=end, execution=execution,
            error_reason=spec.get("error_reason"), warning_reason=spec.get("warning_reason"),
            job_polls=polls, job_fails=failure("job_fails", "Execution data retrieval failed"),
            entity_fails=failure("entity_fails", "500"), truncated=truncated, reported_items=reported)
        self.flow_instances[instance.id] = instance
        return instance

    def create_flow_job(self, ids: List[str]) -> FlowJob:
        known = [self.flow_instances[i] for i in ids if i in self.flow_instances]
        fails = next((i.job_fails for i in known if i.job_fails), None)
        job = FlowJob(new_id(), list(ids), max([i.job_polls for i in known], default=0), fails, now())
        self.flow_jobs[job.id] = job
        self.stats["flow_jobs_created"] += 1
        return job

    def flow_job_entities(self, job: FlowJob, base_url: str) -> list:
        """At Success: one entity per requested id, a fresh pre-signed link each time (older
        links stay valid until they expire), or failed:true with a statusCode."""
        entities = []
        mono = time.monotonic()
        for token in [t for t, d in self.downloads.items() if d.expires_at < mono - 3600]:
            del self.downloads[token]                   # forget long-dead links
        for instance_id in job.ids:
            instance = self.flow_instances.get(instance_id)
            if instance is None or instance.entity_fails:
                entities.append({"id": instance_id, "failed": True,
                                 "statusCode": instance.entity_fails if instance else "404"})
                continue
            token = secrets.token_urlsafe(24)
            self.downloads[token] = Download(token, instance_id, job.id, mono + self.config.download_ttl)
            job.downloads.append(token)
            entities.append({"id": instance_id, "downloadUri": f"{base_url}/downloads/{token}",
                             "failed": False, "statusCode": "200"})
        return entities

    def flow_document(self, instance: FlowInstance) -> dict:
        flow = {"flowId": instance.flow_id, "flowName": instance.flow_name,
                "flowType": instance.flow_type, "flowVersion": instance.flow_version,
                "conversationId": instance.conversation_id, "division": {"id": instance.division_id}}
        if instance.start is not None:
            flow["startDateTime"] = instance.start
        if instance.end is not None:
            flow["endDateTime"] = instance.end
        if instance.error_reason:
            flow["flowErrorReason"] = instance.error_reason
        flow["execution"] = instance.execution
        if instance.truncated is not None:
            flow["executionItemsTruncated"] = instance.truncated
        if instance.reported_items is not None:
            flow["executionItemCount"] = instance.reported_items
        return {"flow": flow}


def item_datetime(item) -> Optional[str]:
    """The dateTime of an execution item {"<type>": {"dateTime", ...}}, if it has one."""
    if isinstance(item, dict) and len(item) == 1:
        fields = next(iter(item.values()))
        if isinstance(fields, dict) and isinstance(fields.get("dateTime"), str):
            return fields["dateTime"]
    return None


OBSERVATION_METRICS = ("oOnQueueUsers", "oOffQueueUsers", "oActiveUsers", "oMemberUsers",
                       "oInteracting", "oWaiting", "oAlerting")
# Conversation aggregate metrics the emulator can script (a subset of AggregateMetricData's enum).
AGGREGATE_METRICS = ("tWait", "tAnswered", "tAbandon", "tAcd", "tTalk", "tHeld", "tAcw", "tHandle",
                     "tAlert", "tNotResponding", "nOffered", "nTransferred", "nOverSla", "nError")
AGGREGATE_GROUP_BY = ("queueId", "mediaType")
AUDIT_FILTER_PROPERTIES = {"UserId": lambda e: (e.get("user") or {}).get("id"),
                           "TrusteeOrganizationId": lambda e: None,
                           "ClientId": lambda e: (e.get("client") or {}).get("id"),
                           "Action": lambda e: e.get("action"),
                           "EntityType": lambda e: e.get("entityType"),
                           "EntityId": lambda e: (e.get("entity") or {}).get("id")}
AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX = 25, 500


def aggregate_stats(name: str, value) -> dict:
    """Scripted stats of one aggregate metric -> StatisticalSummary. t-metrics (durations, ms):
    a list of samples or {"max","min","count","sum"}; n-metrics (counts): an int or {"count"}."""
    def number(v):
        return not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0
    if name.startswith("n"):
        count = value.get("count") if isinstance(value, dict) else value
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError(400, f"{name} must be a count >= 0 (or {{\"count\"}})")
        return {"count": count}
    if isinstance(value, list):
        if not value or not all(number(v) for v in value):
            raise ControlError(400, f"{name} samples must be a non-empty list of numbers >= 0 (ms)")
        return {"max": max(value), "min": min(value), "count": len(value), "sum": sum(value)}
    if isinstance(value, dict) and set(value) == {"max", "min", "count", "sum"} \
            and all(number(v) for v in value.values()) and isinstance(value["count"], int) \
            and value["count"] > 0 and value["min"] <= value["max"]:
        return dict(value)
    raise ControlError(400, f"{name} must be a list of samples or {{max,min,count,sum}} (count > 0)")


def merge_stats(a: dict, b: dict) -> dict:
    if "sum" not in a:
        return {"count": a["count"] + b["count"]}
    return {"max": max(a["max"], b["max"]), "min": min(a["min"], b["min"]),
            "count": a["count"] + b["count"], "sum": a["sum"] + b["sum"]}


def audit_value(value) -> str:
    """A propertyChanges value: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else dumps(value)


def parse_interval(value) -> tuple:
    """An ISO-8601 interval `start/end` -> (start, end) epoch seconds; ApiError 400 if bad."""
    try:
        start, end = (parse_iso(part) for part in str(value).split("/"))
    except (ValueError, TypeError):
        raise ApiError(400, "interval must be an ISO-8601 interval: <start>/<end>")
    if end <= start:
        raise ApiError(400, "The interval end must be after its start.")
    return start, end


def default_queue_body(emu: Emulator) -> dict:
    def media(alert_s, level_ms):
        return {"alertingTimeoutSeconds": alert_s,
                "serviceLevel": {"percentage": 0.8, "durationMs": level_ms}}
    return {
        "description": "",
        "division": {"id": emu.division_id, "name": "Home",
                     "selfUri": f"/api/v2/authorization/divisions/{emu.division_id}"},
        "mediaSettings": {"call": media(8, 20000), "callback": media(30, 20000),
                          "chat": media(30, 20000), "email": media(300, 86400000),
                          "message": media(30, 20000)},
        "routingRules": [],
        "bullseye": {"rings": [{"expansionCriteria": [{"type": "TIMEOUT_SECONDS", "threshold": 15.0}],
                                "actions": {"skillsToRemove": []}}]},
        "acwSettings": {"wrapupPrompt": "OPTIONAL", "timeoutMs": 30000},
        "skillEvaluationMethod": "ALL",
        "scoringMethod": "TimestampAndPriority",
        "lastAgentRoutingMode": "Disabled",
        "enableTranscription": False,
        "enableManualAssignment": False,
        "callingPartyName": "gcmon Emulated Contact Centre",
    }


# =============================================================================
# 4. JSON views (REST casing)
# =============================================================================

def user_presence_json(agent: Agent) -> dict:
    d = agent.presence
    return {"source": "PURECLOUD", "primary": True,
            "presenceDefinition": {"id": d.id, "systemPresence": d.rest_system,
                                   "selfUri": f"/api/v2/presencedefinitions/{d.id}"},
            "message": agent.presence_message, "modifiedDate": iso(agent.presence_modified)}


def routing_status_json(agent: Agent) -> dict:
    return {"userId": agent.id, "status": agent.routing_status, "startTime": iso(agent.routing_start)}


def user_json(agent: Agent, expand=()) -> dict:
    body = {"id": agent.id, "name": agent.name, "email": agent.email, "username": agent.email,
            "state": "active", "version": 1, "selfUri": f"/api/v2/users/{agent.id}"}
    if "routingstatus" in expand:
        body["routingStatus"] = routing_status_json(agent)
    if "presence" in expand:
        body["presence"] = user_presence_json(agent)
    return body


def definition_json(d: PresenceDefinition) -> dict:
    return {"id": d.id, "name": d.label, "type": d.type, "systemPresence": d.system,
            "languageLabels": {"en_US": d.label}, "deactivated": d.deactivated,
            "primary": d.primary, "selfUri": f"/api/v2/presence/definitions/{d.id}"}


def queue_json(emu: Emulator, queue: Queue) -> dict:
    joined = sum(m.joined for m in queue.members.values())
    return {"id": queue.id, "name": queue.name, **queue.body, "version": queue.version,
            "dateCreated": iso(queue.created), "dateModified": iso(queue.modified),
            "modifiedBy": "gcmon-emulator", "createdBy": "gcmon-emulator", "state": "active",
            "memberCount": len(queue.members), "userMemberCount": len(queue.members),
            "joinedMemberCount": joined, "selfUri": f"/api/v2/routing/queues/{queue.id}"}


def skill_json(emu: Emulator, agent: Agent, skill_id: str) -> dict:
    skill = agent.skills[skill_id]
    return {"id": skill_id, "name": emu.skills.get(skill_id, skill_id),
            "proficiency": skill["proficiency"], "state": skill["state"],
            "skillUri": f"/api/v2/routing/skills/{skill_id}",
            "selfUri": f"/api/v2/users/{agent.id}/routingskills/{skill_id}"}


def error_body(status: int, code: str, message: str, context_id: str) -> dict:
    return {"message": message, "code": code, "status": status, "messageParams": {},
            "contextId": context_id, "details": [], "errors": []}


def dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"))


def json_response(data, status=200, headers=None) -> web.Response:
    return web.Response(text=dumps(data), status=status, headers=headers,
                        content_type="application/json")


# =============================================================================
# 5. Middlewares
# =============================================================================

def is_control(request: web.Request) -> bool:
    return request.path.startswith(CONTROL_PREFIX)


def route_name(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return f"{request.method} {resource.canonical if resource else '<unmatched>'}"


@web.middleware
async def correlation_and_log(request: web.Request, handler):
    """Outermost: correlation id on every response; request log + stderr line for the API."""
    emu: Emulator = request.app["emu"]
    request["correlation_id"] = new_id()
    started = time.monotonic()
    entry = None
    if not is_control(request):
        emu.request_seq += 1
        emu.stats["requests_total"] += 1
        emu.routes[route_name(request)] += 1
        body = await request.text() if request.can_read_body else ""
        entry = {"seq": emu.request_seq, "at": time.time(), "method": request.method,
                 "path": request.path, "query": request.query_string,
                 "params": {k: request.query.getall(k) for k in request.query.keys()},
                 "headers": dict(request.headers), "body": body, "status": None}
        emu.request_log.append(entry)
    status = 0
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[CORRELATION_HEADER] = request["correlation_id"]
        return response
    finally:
        if entry is not None:
            entry["status"] = status or None
        line = f"{request.method} {request.path_qs} -> {status or 'dropped'} " \
               f"{(time.monotonic() - started) * 1000:.1f}ms"
        (log.debug if is_control(request) else log.info)(line)


@web.middleware
async def inject_faults(request: web.Request, handler):
    emu: Emulator = request.app["emu"]
    fault = None if is_control(request) else emu.take_fault(request.method, request.path)
    if fault is None:
        return await handler(request)
    emu.stats["faults_injected"] += 1
    if fault.delay:
        await asyncio.sleep(float(fault.delay))
    if fault.drop:
        request.transport.abort()              # no response at all: the client sees a reset
        raise asyncio.CancelledError()
    if fault.status is None:
        return await handler(request)          # delay-only fault: then normal processing
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(int(math.ceil(float(fault.retry_after))))
    if fault.body is not None:
        return json_response(fault.body, fault.status, headers)
    code = ERROR_CODES.get(fault.status, "error")
    message = f"Injected fault: HTTP {fault.status}"
    if fault.status == 429:
        message = "Rate limit exceeded the maximum [300] requests within [60] seconds"
    return json_response(error_body(fault.status, code, message, request["correlation_id"]),
                         fault.status, headers)


@web.middleware
async def errors_as_json(request: web.Request, handler):
    """ApiError / aiohttp HTTP errors -> Genesys ErrorBody (control API: {"error"})."""
    try:
        return await handler(request)
    except (ApiError, ControlError, web.HTTPException) as exc:
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise
            status, message, code = exc.status, exc.reason, ERROR_CODES.get(exc.status, "error")
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        else:
            status, message, headers = exc.status, exc.message, getattr(exc, "headers", {})
            code = getattr(exc, "code", None)
        if is_control(request):
            return json_response({"error": message}, status, headers)
        return json_response(error_body(status, code or ERROR_CODES.get(status, "error"), message,
                                        request["correlation_id"]), status, headers)
    except Exception:  # a bug in the emulator: still answer in the API's error shape
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response(error_body(500, "internal.server.error", "Emulator internal error",
                                        request["correlation_id"]), 500)


@web.middleware
async def authenticate(request: web.Request, handler):
    """Bearer token + per-token rate limit on every /api/v2/ route."""
    if request.path.startswith(API_PREFIX):
        emu: Emulator = request.app["emu"]
        token = emu.check_token(request.headers.get("Authorization", ""))
        emu.rate_check(token)
        request["token"] = token
    return await handler(request)


# =============================================================================
# 6. Genesys REST routes
# =============================================================================

def emu_of(request) -> Emulator:
    return request.app["emu"]


def require_media_type(request: web.Request, media_type: str) -> bool:
    """Whether the request's Content-Type (parameters aside) is `media_type`; a request without
    a body passes, as on the real API."""
    if not request.body_exists:
        return True
    raw = request.headers.get("Content-Type", "")
    return raw.split(";", 1)[0].strip().lower() == media_type


async def json_body(request: web.Request, kind=None):
    """The JSON request body. As on the real API, a body sent with any Content-Type other than
    application/json is refused with 415 `unsupported.media.type` before it is parsed."""
    if not require_media_type(request, "application/json"):
        emu_of(request).stats["unsupported_media_type"] += 1
        raise ApiError(415, "The request Content-Type must be application/json.")
    try:
        body = json.loads(await request.text() or "null")
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.")
    if kind is not None and not isinstance(body, kind):
        raise ApiError(400, f"The request body must be a JSON {'array' if kind is list else 'object'}.")
    return body


def int_param(request, name, default, lo, hi) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer")
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return value


def expand_param(request) -> set:
    values = (v.strip().lower() for raw in request.query.getall("expand", []) for v in raw.split(","))
    return {v for v in values if v}


def page_uri(request, page_number) -> str:
    query = [(k, v) for k, v in request.query.items() if k != "pageNumber"]
    query.append(("pageNumber", str(page_number)))
    return str(request.rel_url.with_query(query))


def paginate(request, items, default_size, max_size, with_total=True):
    size = int_param(request, "pageSize", default_size, 1, max_size)
    number = int_param(request, "pageNumber", 1, 1, 10 ** 6)
    page = items[(number - 1) * size: number * size]
    listing = {"pageSize": size, "pageNumber": number, "firstUri": page_uri(request, 1),
               "selfUri": page_uri(request, number)}
    if number * size < len(items):
        listing["nextUri"] = page_uri(request, number + 1)
    if number > 1:
        listing["previousUri"] = page_uri(request, number - 1)
    if with_total:
        page_count = max(1, math.ceil(len(items) / size))
        listing.update(total=len(items), pageCount=page_count, lastUri=page_uri(request, page_count))
    return page, listing


# ---- OAuth (login host) ----------------------------------------------------

def oauth_error(status, error, description) -> web.Response:
    return json_response({"error": error, "description": description,
                          "error_description": description}, status)


async def oauth_token(request: web.Request):
    emu = emu_of(request)
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        client_id = secret = None
    if scheme.lower() != "basic" or client_id is None:
        return oauth_error(401, "invalid_client", "client authentication (HTTP Basic) is required")
    if not (secrets.compare_digest(client_id, emu.client_id)
            and secrets.compare_digest(secret, emu.client_secret)):
        return oauth_error(401, "invalid_client", "client credentials are invalid")
    if not require_media_type(request, "application/x-www-form-urlencoded"):
        emu.stats["unsupported_media_type"] += 1
        return oauth_error(415, "invalid_request",
                           "the token request must be application/x-www-form-urlencoded")
    form = await request.post()
    grant = form.get("grant_type")
    if not grant:
        return oauth_error(400, "invalid_request", "grant_type is required")
    if grant != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", f"grant type {grant!r} is not supported")
    token = emu.issue_token(client_id)
    return json_response({"access_token": token.value, "token_type": "bearer",
                          "expires_in": emu.config.token_expires})


# ---- organization ------------------------------------------------------------

async def get_organization(request):
    emu = emu_of(request)
    return json_response({"id": emu.org_id, "name": "gcmon Emulated Contact Centre",
                          "defaultLanguage": "en-us", "defaultCountryCode": "US",
                          "defaultSiteId": stable_id("site", "default"),
                          "thirdPartyOrgName": "gcmon-emulator", "domain": "gcmon-emulator",
                          "state": "active", "version": 1, "voicemailEnabled": False,
                          "selfUri": f"/api/v2/organizations/{emu.org_id}"})


# ---- users, presence, routing status -----------------------------------------

async def list_users(request):
    emu = emu_of(request)
    ids = [i for raw in request.query.getall("id", []) for i in raw.split(",") if i]
    if len(ids) > MAX_IDS_PER_USERS_QUERY:
        raise ApiError(400, f"A maximum of {MAX_IDS_PER_USERS_QUERY} user ids may be requested at once.")
    if ids:
        agents = [emu.agents[i] for i in dict.fromkeys(ids) if i in emu.agents]
    else:
        agents = sorted(emu.agents.values(), key=lambda a: a.name.lower())
    page, listing = paginate(request, agents, 25, 500)
    expand = expand_param(request)
    return json_response({"entities": [user_json(a, expand) for a in page], **listing})


async def get_user(request):
    agent = emu_of(request).get_agent(request.match_info["user_id"])
    return json_response(user_json(agent, expand_param(request)))


def presence_source(request):
    if request.match_info["source"].lower() != "purecloud":
        raise ApiError(404, f"Presence source {request.match_info['source']} not found.")


async def get_user_presence(request):
    presence_source(request)
    agent = emu_of(request).get_agent(request.match_info["user_id"])
    return json_response(user_presence_json(agent))


async def patch_user_presence(request):
    presence_source(request)
    emu = emu_of(request)
    agent = emu.get_agent(request.match_info["user_id"])
    body = await json_body(request, dict)
    definition = None
    if body.get("presenceDefinition") is not None:
        pid = body["presenceDefinition"].get("id") if isinstance(body["presenceDefinition"], dict) else None
        definition = emu.presences.definitions.get(pid) if pid else None
        if definition is None or definition.deactivated:
            raise ApiError(400, f"Invalid presence definition id {pid!r}.", "bad.request")
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise ApiError(400, "message must be a string")
    if definition is None and message is None and body.get("primary") is not True:
        raise ApiError(400, "One of presenceDefinition, message or primary is required.")
    emu.apply_state(agent, presence=definition, message=message, force_presence=True, source="api")
    return json_response(user_presence_json(agent))


async def get_routing_status(request):
    agent = emu_of(request).get_agent(request.match_info["user_id"])
    return json_response(routing_status_json(agent))


async def put_routing_status(request):
    emu = emu_of(request)
    agent = emu.get_agent(request.match_info["user_id"])
    body = await json_body(request, dict)
    status = body.get("status")
    if status not in SETTABLE_ROUTING_STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(SETTABLE_ROUTING_STATUSES)}")
    emu.apply_state(agent, routing=status, source="api")
    return json_response(routing_status_json(agent))


async def list_presence_definitions(request):
    emu = emu_of(request)
    deactivated = request.query.get("deactivated", "false").lower() == "true"
    defs = [definition_json(d) for d in emu.presences.definitions.values() if d.deactivated == deactivated]
    return json_response({"entities": defs, "total": len(defs)})


async def get_presence_definition(request):
    d = emu_of(request).presences.definitions.get(request.match_info["definition_id"])
    if d is None:
        raise ApiError(404, "Presence definition not found.")
    return json_response(definition_json(d))


# ---- routing: queues, members, skills ------------------------------------------

async def list_queues(request):
    emu = emu_of(request)
    name = request.query.get("name", "").lower().rstrip("*")
    queues = sorted((q for q in emu.queues.values() if q.name.lower().startswith(name)),
                    key=lambda q: q.name.lower())
    page, listing = paginate(request, queues, 25, 500)
    # a queue whose last PUT has not read back yet lists as it was (without using up a lagged GET)
    return json_response({"entities": [q.stale if q.stale is not None else queue_json(emu, q)
                                       for q in page], **listing})


async def get_queue(request):
    emu = emu_of(request)
    queue = emu.get_queue(request.match_info["queue_id"])
    if queue.stale is not None:              # scripted read-back lag: the queue before its last PUT
        body = queue.stale
        queue.stale_gets -= 1
        if queue.stale_gets <= 0:
            queue.stale, queue.stale_gets = None, 0
        emu.stats["queue_stale_reads"] += 1
        return json_response(body)
    return json_response(queue_json(emu, queue))


QUEUE_READ_ONLY = {"id", "version", "dateCreated", "dateModified", "modifiedBy", "createdBy",
                   "state", "memberCount", "userMemberCount", "joinedMemberCount", "selfUri"}
QUEUE_ENUMS = {"skillEvaluationMethod": ("NONE", "BEST", "ALL"),
               "scoringMethod": ("TimestampAndPriority", "PriorityOnly"),
               "lastAgentRoutingMode": ("Disabled", "QueueMembersOnly", "AnyAgent")}


async def put_queue(request):
    emu = emu_of(request)
    queue = emu.get_queue(request.match_info["queue_id"])
    body = await json_body(request, dict)
    if not body.get("name"):
        raise ApiError(400, "The queue name is required.")
    if "version" not in body:
        raise ApiError(400, "The queue version is required.")
    for key, allowed in QUEUE_ENUMS.items():
        if key in body and body[key] not in allowed:
            raise ApiError(400, f"{key} must be one of {', '.join(allowed)}")
    if body["version"] != queue.version:
        raise ApiError(409, f"The version supplied ({body['version']}) does not match the current "
                            f"version of the queue ({queue.version}).")
    snapshot, before = queue_json(emu, queue), {"name": queue.name, **queue.body}
    queue.name = body["name"]
    queue.body = {k: v for k, v in body.items() if k not in QUEUE_READ_ONLY and k != "name"}
    queue.version += 1
    queue.modified = now()
    emu.audit_queue_put(queue, before, {"name": queue.name, **queue.body}, request["token"].client_id)
    if queue.readback_lag > 0:
        if queue.stale is None:              # readers keep seeing what they saw before the PUT
            queue.stale = snapshot
        queue.stale_gets = queue.readback_lag
    return json_response(queue_json(emu, queue))


def member_matches(emu: Emulator, agent: Agent, member: Member, request) -> bool:
    q = request.query
    skills = [s.strip() for raw in q.getall("skills", []) for s in raw.split(",") if s.strip()]
    for wanted in skills:
        if not any(wanted in (sid, emu.skills.get(sid)) and s["state"] == "active"
                   for sid, s in agent.skills.items()):
            return False
    if "joined" in q and str(member.joined).lower() != q["joined"].lower():
        return False
    if "name" in q and q["name"].lower() not in agent.name.lower():
        return False
    if "routingStatus" in q and agent.routing_status not in q["routingStatus"].upper().split(","):
        return False
    if "presence" in q and squash(agent.presence.system) not in \
            {squash(p) for p in q["presence"].split(",")}:
        return False
    if q.get("memberBy", "user") != "user":
        return False
    return True


async def list_queue_members(request):
    emu = emu_of(request)
    queue = emu.get_queue(request.match_info["queue_id"])
    rows = [(emu.agents[m.user_id], m) for m in queue.members.values() if m.user_id in emu.agents]
    rows = [r for r in rows if member_matches(emu, r[0], r[1], request)]
    rows.sort(key=lambda r: r[0].name.lower(), reverse=request.query.get("sortOrder") == "desc")
    page, listing = paginate(request, rows, 25, 100, with_total=False)  # QueueMemberEntityListing: no total
    expand = expand_param(request)
    entities = [{"id": a.id, "name": a.name, "user": user_json(a, expand), "ringNumber": m.ring_number,
                 "joined": m.joined, "memberBy": "user", "routingStatus": routing_status_json(a),
                 "selfUri": f"/api/v2/routing/queues/{queue.id}/members/{a.id}"} for a, m in page]
    return json_response({"entities": entities, **listing})


async def list_user_skills(request):
    emu = emu_of(request)
    agent = emu.get_agent(request.match_info["user_id"])
    ids = sorted(agent.skills, key=lambda sid: emu.skills.get(sid, sid).lower())
    page, listing = paginate(request, ids, 25, 100)
    return json_response({"entities": [skill_json(emu, agent, sid) for sid in page], **listing})


async def put_user_skill(request):
    emu = emu_of(request)
    agent = emu.get_agent(request.match_info["user_id"])
    skill_id = request.match_info["skill_id"]
    if skill_id not in emu.skills:
        raise ApiError(404, f"The routing skill {skill_id} could not be found.")
    body = await json_body(request, dict)
    if body.get("id") not in (None, skill_id):
        raise ApiError(400, "The skill id in the body does not match the path.")
    proficiency = body.get("proficiency", agent.skills.get(skill_id, {}).get("proficiency", 0.0))
    if isinstance(proficiency, bool) or not isinstance(proficiency, (int, float)) \
            or not 0 <= proficiency <= 5:
        raise ApiError(400, "proficiency must be a number between 0.0 and 5.0")
    state = body.get("state", "active")
    if state not in ("active", "inactive", "deleted"):
        raise ApiError(400, "state must be active, inactive or deleted")
    agent.skills[skill_id] = {"proficiency": float(proficiency), "state": state}
    return json_response(skill_json(emu, agent, skill_id))


async def delete_user_skill(request):
    emu = emu_of(request)
    agent = emu.get_agent(request.match_info["user_id"])
    skill_id = request.match_info["skill_id"]
    if agent.skills.pop(skill_id, None) is None:
        raise ApiError(404, f"The user has no routing skill {skill_id}.")
    return web.Response(status=204)


# ---- analytics ------------------------------------------------------------------

def predicate_values(flt: dict, dimension: str) -> List[str]:
    values = [p.get("value") for p in flt.get("predicates", []) or []
              if isinstance(p, dict) and p.get("dimension") == dimension and p.get("value")]
    for clause in flt.get("clauses", []) or []:
        if isinstance(clause, dict):
            values += predicate_values(clause, dimension)
    return values


async def queue_observations(request):
    emu = emu_of(request)
    body = await json_body(request, dict)
    flt = body.get("filter")
    if not isinstance(flt, dict) or flt.get("type") not in ("and", "or"):
        raise ApiError(400, "filter with type 'and' or 'or' is required")
    queue_ids = list(dict.fromkeys(predicate_values(flt, "queueId")))
    if not queue_ids:
        raise ApiError(400, "at least one queueId predicate is required")
    metrics = body.get("metrics") or list(OBSERVATION_METRICS)
    unknown = [m for m in metrics if m not in OBSERVATION_METRICS]
    if unknown:
        raise ApiError(400, f"Unsupported metrics: {', '.join(map(str, unknown))}")
    results = [{"group": {"queueId": qid},
                "data": [{"metric": m, "stats": {"count": emu.observe_queue(emu.queues.get(qid), m)}}
                         for m in metrics]} for qid in queue_ids]
    return json_response({"results": results})


async def conversation_aggregates(request):
    """`POST /api/v2/analytics/conversations/aggregates/query` over the scripted buckets."""
    emu = emu_of(request)
    body = await json_body(request, dict)
    emu.stats["aggregate_queries"] += 1
    start, end = parse_interval(body.get("interval"))
    if body.get("granularity"):
        raise ApiError(400, "granularity is not supported by the emulator: one interval per query")
    group_by = body.get("groupBy") or []
    if not isinstance(group_by, list) or any(g not in AGGREGATE_GROUP_BY for g in group_by):
        raise ApiError(400, f"groupBy may hold only {', '.join(AGGREGATE_GROUP_BY)} in the emulator")
    metrics = body.get("metrics") or list(AGGREGATE_METRICS)
    if not isinstance(metrics, list):
        raise ApiError(400, "metrics must be a list")
    unknown = [m for m in metrics if m not in AGGREGATE_METRICS]
    if unknown:
        raise ApiError(400, f"Unsupported metrics: {', '.join(map(str, unknown))}")
    flt = body.get("filter")
    if flt is not None and (not isinstance(flt, dict) or flt.get("type") not in ("and", "or")):
        raise ApiError(400, "filter needs type 'and' or 'or'")
    queue_ids = list(dict.fromkeys(predicate_values(flt or {}, "queueId"))) or sorted(emu.aggregates)
    media = set(predicate_values(flt or {}, "mediaType"))
    groups: Dict[tuple, dict] = {}
    for qid in queue_ids:
        for bucket in emu.aggregates.get(qid, []):
            if bucket["at"] is not None and not start <= bucket["at"] < end:
                continue
            if media and bucket["media_type"] not in media:
                continue
            dims = {"queueId": qid, "mediaType": bucket["media_type"]}
            merged = groups.setdefault(tuple(dims[g] for g in group_by), {})
            for name, stats in bucket["metrics"].items():
                if name in metrics:
                    merged[name] = merge_stats(merged[name], stats) if name in merged else dict(stats)
    interval = f"{iso(start)}/{iso(end)}"
    results = [{"group": dict(zip(group_by, key)),
                "data": [{"interval": interval,
                          "metrics": [{"metric": m, "stats": merged[m]} for m in metrics if m in merged]}]}
               for key, merged in groups.items() if merged]
    return json_response({"results": results} if results else {})   # no data: `{}`, as upstream


# ---- audits ------------------------------------------------------------------------

def audit_status_json(query: AuditQuery) -> dict:
    return {"id": query.id, "state": query.state, "startDate": iso(query.created), **query.request}


def audit_entry_json(entry: dict, expand_user: bool) -> dict:
    out = {k: v for k, v in entry.items() if not k.startswith("_")}
    if "user" in out and not expand_user:
        out["user"] = {"id": out["user"]["id"]}
    return out


async def create_audit_query(request):
    emu = emu_of(request)
    body = await json_body(request, dict)
    start, end = parse_interval(body.get("interval"))
    service = body.get("serviceName")
    if not isinstance(service, str) or not service:
        raise ApiError(400, "serviceName is required")
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise ApiError(400, "filters must be a list")
    wanted: Dict[str, set] = {}
    for f in filters:
        if not isinstance(f, dict) or f.get("property") not in AUDIT_FILTER_PROPERTIES:
            raise ApiError(400, f"filter property must be one of {', '.join(AUDIT_FILTER_PROPERTIES)}")
        if not isinstance(f.get("value"), str) or not f["value"]:
            raise ApiError(400, "each filter needs a string value")
        wanted.setdefault(f["property"], set()).add(f["value"])
    sort = body.get("sort") or []
    descending = True
    if not isinstance(sort, list) or any(not isinstance(x, dict) or x.get("name") != "Timestamp"
                                         or str(x.get("sortOrder", "descending")).lower()
                                         not in ("ascending", "descending") for x in sort):
        raise ApiError(400, "sort entries must be {\"name\":\"Timestamp\",\"sortOrder\":"
                            "\"ascending\"|\"descending\"}")
    if sort:
        descending = str(sort[0].get("sortOrder", "descending")).lower() == "descending"
    entries = [e for e in emu.audit_entries
               if start <= e["_ts"] < end and e["serviceName"] == service
               and all(AUDIT_FILTER_PROPERTIES[p](e) in values for p, values in wanted.items())]
    entries.sort(key=lambda e: e["_ts"], reverse=descending)
    echo = {"interval": body["interval"], "serviceName": service, "filters": filters}
    if sort:
        echo["sort"] = sort
    query = AuditQuery(new_id(), echo, entries, emu.audit_behaviour["running_polls"],
                       emu.audit_behaviour["fail"], now())
    emu.audit_queries[query.id] = query
    emu.stats["audit_queries"] += 1
    return json_response(audit_status_json(query))


def audit_query_of(request) -> AuditQuery:
    query = emu_of(request).audit_queries.get(request.match_info["transaction_id"])
    if query is None:
        raise ApiError(404, f"The audit query {request.match_info['transaction_id']} could not be found.")
    return query


async def get_audit_query(request):
    query = audit_query_of(request)
    query.polls += 1
    emu_of(request).stats["audit_polls"] += 1
    return json_response(audit_status_json(query))


async def get_audit_results(request):
    emu, query = emu_of(request), audit_query_of(request)
    if query.state != "Succeeded":
        raise ApiError(400, f"The audit query is {query.state}; results exist only once it has Succeeded.")
    size = int_param(request, "pageSize", AUDIT_PAGE_DEFAULT, 1, AUDIT_PAGE_MAX)
    offset = 0
    cursor = request.query.get("cursor")
    if cursor:
        try:
            qid, _, raw = base64.urlsafe_b64decode(cursor.encode()).decode().rpartition(":")
            offset = int(raw)
        except (ValueError, UnicodeDecodeError):
            qid = None
        if qid != query.id or not 0 <= offset <= len(query.entries):
            raise ApiError(400, "The cursor is not valid for this audit query.")
    expand_user = "user" in expand_param(request)
    page = query.entries[offset:offset + size]
    emu.stats["audit_result_pages"] += 1
    out = {"id": query.id, "pageSize": size, "entities": [audit_entry_json(e, expand_user) for e in page]}
    if offset + size < len(query.entries):
        out["cursor"] = base64.urlsafe_b64encode(f"{query.id}:{offset + size}".encode()).decode()
    return json_response(out)


# ---- architect: historical flow execution data ------------------------------------

FLOW_QUERY_KEYS = {            # criteria key -> FlowInstance attribute
    "id": "id", "flowInstanceId": "id", "flowId": "flow_id", "flowName": "flow_name",
    "flowType": "flow_type", "flowVersion": "flow_version", "conversationId": "conversation_id",
    "divisionId": "division_id", "startDateTime": "start", "endDateTime": "end",
    "flowErrorReason": "error_reason", "flowWarningReason": "warning_reason",
}
FLOW_QUERY_MAX_PAGE = 200


def criterion_matches(instance: FlowInstance, criterion) -> bool:
    if not isinstance(criterion, dict):
        raise ApiError(400, "Each criteria entry must be an object.")
    key, operator = criterion.get("key"), criterion.get("operator", "equal")
    values = criterion.get("values")
    if key not in FLOW_QUERY_KEYS:
        raise ApiError(400, f"Unsupported criteria key {key!r}.", "invalid.value")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ApiError(400, f"Criteria {key}: values must be a non-empty list of strings.")
    actual = getattr(instance, FLOW_QUERY_KEYS[key])
    if actual is None:
        return operator in ("notEqual", "notContainsAll", "notContainsAny")
    fold = (lambda v: v.lower()) if criterion.get("shouldIgnoreCase") else (lambda v: v)
    actual, wanted = fold(str(actual)), [fold(v) for v in values]
    if key in ("startDateTime", "endDateTime") and operator in (
            "greaterThan", "greaterThanOrEqual", "lessThan", "lessThanOrEqual"):
        try:
            a, w = parse_iso(actual), parse_iso(wanted[0])
        except ValueError:
            raise ApiError(400, f"Criteria {key}: values must be ISO 8601 timestamps.")
        return {"greaterThan": a > w, "greaterThanOrEqual": a >= w,
                "lessThan": a < w, "lessThanOrEqual": a <= w}[operator]
    ops = {
        "equal": lambda: actual in wanted, "containsAny": lambda: actual in wanted,
        "notEqual": lambda: actual not in wanted, "notContainsAny": lambda: actual not in wanted,
        "startsWith": lambda: any(actual.startswith(v) for v in wanted),
        "endsWith": lambda: any(actual.endswith(v) for v in wanted),
    }
    if operator not in ops:
        raise ApiError(400, f"Unsupported criteria operator {operator!r}.", "invalid.value")
    return ops[operator]()


def group_matches(instance: FlowInstance, group) -> bool:
    """A CriteriaGroup: `criteria` (one criteria object, or a list: all must hold), `and`
    (all groups hold), `or` (one does), `not` (none does)."""
    if not isinstance(group, dict) or not any(k in group for k in ("criteria", "and", "or", "not")):
        raise ApiError(400, "Each query entry needs criteria, and, or or not.")
    criteria = group.get("criteria")
    if criteria is not None:
        for criterion in criteria if isinstance(criteria, list) else [criteria]:
            if not criterion_matches(instance, criterion):
                return False
    for op in ("and", "or", "not"):
        groups = group.get(op)
        if groups is None:
            continue
        if not isinstance(groups, list):
            raise ApiError(400, f"{op} must be a list of criteria groups.")
        results = [group_matches(instance, g) for g in groups]
        if (op == "and" and not all(results)) or (op == "or" and not any(results)) \
                or (op == "not" and any(results)):
            return False
    return True


def flow_result_json(instance: FlowInstance, index_only=False) -> dict:
    if index_only:
        return {"id": instance.id}
    body = {"id": instance.id, "flowId": instance.flow_id, "flowName": instance.flow_name,
            "flowType": instance.flow_type, "flowVersion": instance.flow_version,
            "conversationId": instance.conversation_id}
    for key, value in (("startDateTime", instance.start), ("endDateTime", instance.end),
                       ("flowErrorReason", instance.error_reason),
                       ("flowWarningReason", instance.warning_reason)):
        if value is not None:
            body[key] = value
    return body


async def query_flow_instances(request):
    emu = emu_of(request)
    index_only = request.query.get("indexOnly", "false").lower()
    if index_only not in ("true", "false"):
        raise ApiError(400, "indexOnly must be true or false")
    body = await json_body(request, dict)
    query = body.get("query")
    if not isinstance(query, list) or not query:
        raise ApiError(400, "query must be a non-empty list of criteria groups.")
    matches = [i for i in emu.flow_instances.values() if all(group_matches(i, g) for g in query)]
    # newest first; instances without a start last
    matches.sort(key=lambda i: (i.start is not None, parse_iso(i.start) if i.start else 0, i.id),
                 reverse=True)
    page, listing = paginate(request, matches, 50, FLOW_QUERY_MAX_PAGE)
    emu.stats["flow_queries"] += 1
    return json_response({"entities": [flow_result_json(i, index_only == "true") for i in page],
                          **listing})


def flow_job_json(emu: Emulator, job: FlowJob, request) -> dict:
    body = {"id": job.id, "name": f"flow execution data {job.id[:8]}", "jobState": job.state,
            "entities": [], "selfUri": f"/api/v2/flows/instances/jobs/{job.id}"}
    if job.state == "Success":
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if sockname else request.url.port
        body["entities"] = emu.flow_job_entities(job, f"http://127.0.0.1:{port}")
    elif job.state == "Failed":
        body["errorMessage"] = job.fails
    return body


async def create_flow_job(request):
    emu = emu_of(request)
    body = await json_body(request, dict)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ApiError(400, "ids must be a non-empty list of flow instance ids.")
    job = emu.create_flow_job(list(dict.fromkeys(ids)))
    return json_response(flow_job_json(emu, job, request))


async def get_flow_instance(request):
    """The single-instance shortcut: starts a job for that one instance."""
    emu = emu_of(request)
    if request.match_info["instance_id"] in ("jobs", "query", "settings", "querycapabilities"):
        raise ApiError(405, "Method not allowed.")
    job = emu.create_flow_job([request.match_info["instance_id"]])
    return json_response(flow_job_json(emu, job, request))


async def get_flow_job(request):
    emu = emu_of(request)
    job = emu.flow_jobs.get(request.match_info["job_id"])
    if job is None:
        raise ApiError(404, f"The flow execution data job {request.match_info['job_id']} could not be found.")
    job.polls += 1
    emu.stats["flow_job_polls"] += 1
    return json_response(flow_job_json(emu, job, request))


def storage_error(status: int, code: str, message: str, extra: str = "") -> web.Response:
    """An S3-style XML error, as the storage service behind a pre-signed link answers."""
    request_id = secrets.token_hex(8).upper()
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
           f"<RequestId>{request_id}</RequestId><HostId>gcmon-emulator</HostId></Error>")
    return web.Response(text=xml, status=status, content_type="application/xml",
                        headers={"x-amz-request-id": request_id})


async def download_execution_data(request):
    """GET on a downloadUri: no bearer token; sending one is the storage service's 400."""
    emu = emu_of(request)
    if "Authorization" in request.headers:
        return storage_error(400, "InvalidArgument",
                             "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                             "parameter, Signature query string parameter or the Authorization "
                             "header should be specified",
                             "<ArgumentName>Authorization</ArgumentName>")
    download = emu.downloads.get(request.match_info["token"])
    instance = emu.flow_instances.get(download.instance_id) if download else None
    if instance is None:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")
    if time.monotonic() >= download.expires_at:
        return storage_error(403, "AccessDenied", "Request has expired")
    emu.stats["flow_downloads"] += 1
    return json_response(emu.flow_document(instance))


# =============================================================================
# 7. Notifications: channels, subscriptions, WebSockets
# =============================================================================

USER_TOPIC = re.compile(r"^v2\.users\.([^.]+)\.(activity|presence|routingStatus)$")
CLOSE = object()      # outbox sentinel: close the socket


@dataclass
class Channel:
    id: str
    client_id: str
    token: str
    connect_uri: str
    expires: float
    topics: Dict[str, None] = field(default_factory=dict)     # ordered set
    socket: Optional["Socket"] = None
    last_used: float = field(default_factory=time.monotonic)  # created, subscribed, connected

    def json(self) -> dict:
        return {"connectUri": self.connect_uri, "id": self.id, "expires": iso(self.expires)}


class Socket:
    """One WebSocket attached to a channel. All sends go through `outbox` (one writer)."""

    def __init__(self, ws: web.WebSocketResponse, transport, channel: Channel):
        self.ws, self.transport, self.channel = ws, transport, channel
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.heartbeats = True
        self.answer_pings = True
        self.close_reason = (1000, "")

    def send(self, message):
        self.outbox.put_nowait(message if isinstance(message, str) else dumps(message))

    def close(self, code=1000, reason=""):
        self.close_reason = (code, reason)
        self.outbox.put_nowait(CLOSE)

    def drop(self):
        if self.transport is not None:
            self.transport.abort()

    async def writer(self, stats):
        while True:
            message = await self.outbox.get()
            if message is CLOSE:
                code, reason = self.close_reason
                await self.ws.close(code=code, message=reason.encode())
                return
            await self.ws.send_str(message)
            stats["ws_messages_sent"] += 1

    async def heartbeat_loop(self, emu: Emulator):
        last = time.monotonic()
        while True:
            interval = emu.config.heartbeat
            await asyncio.sleep(min(0.25, interval / 4) if interval > 0 else 0.25)
            if interval > 0 and time.monotonic() - last >= interval:
                last = time.monotonic()
                if self.heartbeats:
                    self.send({"topicName": "channel.metadata",
                               "eventBody": {"message": "WebSocket Heartbeat"}})


class Notifier:
    def __init__(self, emu: Emulator):
        self.emu = emu
        self.channels: Dict[str, Channel] = {}

    def reset(self):
        for channel in self.channels.values():
            if channel.socket:
                channel.socket.close(1001, "emulator reset")
        self.channels = {}
        # every socket attach/detach and channel expiry, oldest first (GET /__emulator/ws/log)
        self.socket_log: collections.deque = collections.deque(maxlen=REQUEST_LOG_MAX)

    def log_socket(self, event: str, channel: Channel, **extra):
        self.socket_log.append({"event": event, "channel": channel.id, "at": time.time(),
                                "expires": channel.expires, **extra})

    # ---- channels
    def live(self) -> List[Channel]:
        """Channels not yet expired (expired ones are forgotten and their sockets closed)."""
        wall = time.time()
        for channel in [c for c in self.channels.values() if c.expires <= wall]:
            self.log_socket("expired", channel, connected=channel.socket is not None)
            if channel.socket:
                channel.socket.close(1000, "channel expired")
            del self.channels[channel.id]
        return list(self.channels.values())

    def get(self, channel_id: str) -> Optional[Channel]:
        return next((c for c in self.live() if c.id == channel_id), None)

    def require(self, channel_id: str) -> Channel:
        channel = self.get(channel_id)
        if channel is None:
            raise ApiError(404, f"Channel {channel_id} not found.")
        return channel

    def create(self, token: Token, host: str, scheme: str = "ws") -> Channel:
        owned = [c for c in self.live() if c.client_id == token.client_id]
        if len(owned) >= MAX_CHANNELS_PER_CLIENT:
            # As Genesys Cloud: "Creating a 21st channel will remove the channel with
            # oldest last used date. Channels without an active connection will be
            # removed first."
            victim = min(owned, key=lambda c: (c.socket is not None, c.last_used))
            if victim.socket is not None:
                victim.socket.close(1000, "channel removed: channel limit reached")
            del self.channels[victim.id]
            self.emu.stats["channels_removed"] += 1
        channel_id = "streaming-0-" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                              for _ in range(26))
        base = self.emu.connect_base or f"{scheme}://{host}"
        channel = Channel(channel_id, token.client_id, token.value, f"{base}/channels/{channel_id}",
                          time.time() + self.emu.config.channel_ttl)
        self.channels[channel_id] = channel
        self.emu.stats["channels_created"] += 1
        return channel

    def extend(self, channel: Channel):
        channel.expires = time.time() + self.emu.config.channel_ttl

    # ---- subscriptions
    def check_topic(self, topic: str) -> Optional[str]:
        """None when the topic is permitted, else the rejection reason."""
        match = USER_TOPIC.match(topic)
        if not match:
            return (f"Topic {topic} is not supported "
                    "(supported: v2.users.{id}.activity|presence|routingStatus)")
        if match.group(1) not in self.emu.agents:
            return f"User {match.group(1)} not found"
        return None

    def subscribe(self, channel: Channel, body, replace: bool) -> dict:
        if not isinstance(body, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), str)
                                                 for t in body):
            raise ApiError(400, 'The body must be an array of {"id": "<topic>"} objects.')
        channel.last_used = time.monotonic()
        requested = list(dict.fromkeys(t["id"] for t in body))
        combined = requested if replace else list(dict.fromkeys(list(channel.topics) + requested))
        if len(combined) > MAX_TOPICS_PER_CHANNEL:
            raise ApiError(400, f"Subscription failed: a channel may have at most {MAX_TOPICS_PER_CHANNEL} "
                                f"topics ({len(combined)} requested).")
        rejected = {t: self.check_topic(t) for t in requested}
        rejected = {t: reason for t, reason in rejected.items() if reason}
        kept = [t for t in combined if t not in rejected]
        channel.topics = dict.fromkeys(kept)
        self.extend(channel)
        entities = [self.topic_json(channel, t) for t in kept]
        entities += [{**self.topic_json(channel, t), "state": "Rejected", "rejectionReason": reason}
                     for t, reason in rejected.items()]
        return {"entities": entities}

    @staticmethod
    def topic_json(channel: Channel, topic: str) -> dict:
        return {"id": topic, "state": "Permitted",
                "selfUri": f"/api/v2/notifications/channels/{channel.id}/subscriptions"}

    # ---- sockets
    def attach(self, channel: Channel, socket: Socket):
        """One socket per channel: a second connection displaces the first."""
        if channel.socket is not None:
            channel.socket.close(1000, "Another WebSocket connected to this channel")
            self.emu.stats["ws_displaced"] += 1
        channel.socket = socket
        channel.last_used = time.monotonic()
        self.emu.stats["ws_connections"] += 1
        self.log_socket("open", channel)

    def detach(self, channel: Channel, socket: Socket):
        self.log_socket("close", channel, current=channel.socket is socket)
        if channel.socket is socket:
            channel.socket = None

    def sockets(self, channel_id=None) -> List[Socket]:
        return [c.socket for c in self.live() if c.socket and channel_id in (None, c.id)]

    # ---- events
    def activity_body(self, agent: Agent) -> dict:
        routing = {"status": agent.routing_status, "startTime": iso(agent.routing_start)}
        definition = {"id": agent.presence.id, "systemPresence": agent.presence.event_system}
        return {"id": agent.id, "routingStatus": routing,
                "presence": {"presenceDefinition": definition,
                             "presenceMessage": agent.presence_message,
                             "modifiedDate": iso(agent.presence_modified)},
                "outOfOffice": {"active": False, "modifiedDate": iso(agent.created)},
                "activeQueueIds": self.emu.queues_of(agent),
                "dateActiveQueuesChanged": iso(agent.created)}

    def push_activity(self, agent: Agent, channel_id=None) -> int:
        """The agent's activity event on connected sockets, subscribed or not (what a
        stranger who subscribed the channel to that agent would cause)."""
        sockets = self.sockets(channel_id)
        for sock in sockets:
            sock.send({"topicName": f"v2.users.{agent.id}.activity", "version": "2",
                       "eventBody": self.activity_body(agent),
                       "metadata": {"CorrelationId": new_id()}})
            self.emu.stats["notifications_sent"] += 1
        return len(sockets)

    def publish_user(self, agent: Agent, presence_changed: bool, routing_changed: bool):
        correlation = new_id()
        routing = {"status": agent.routing_status, "startTime": iso(agent.routing_start)}
        definition = {"id": agent.presence.id, "systemPresence": agent.presence.event_system}
        bodies = {"activity": self.activity_body(agent)}
        if presence_changed:
            bodies["presence"] = {"source": "PURECLOUD", "presenceDefinition": definition,
                                  "primary": True, "message": agent.presence_message,
                                  "modifiedDate": iso(agent.presence_modified)}
        if routing_changed:
            bodies["routingStatus"] = {"id": agent.id, "routingStatus": routing}
        for channel in self.live():
            if channel.socket is None:
                continue                          # no durability: nobody listening, event lost
            for kind, body in bodies.items():
                topic = f"v2.users.{agent.id}.{kind}"
                if topic in channel.topics:
                    channel.socket.send({"topicName": topic, "version": "2", "eventBody": body,
                                         "metadata": {"CorrelationId": correlation}})
                    self.emu.stats["notifications_sent"] += 1

    def system_message(self, channel: Channel, kind: str, reason: str, message: str) -> dict:
        return {"topicName": f"v2.system.{kind}.{channel.id}", "version": "2",
                "eventBody": {"channelId": channel.id, "systemTopicType": kind, "reason": reason,
                              "correlationId": new_id(), "organizationId": self.emu.org_id,
                              "oauthClientId": channel.client_id, "message": message},
                "metadata": {"CorrelationId": new_id()}}

    def apply_fault(self, action: str, channel_id=None, grace=None) -> int:
        sockets = self.sockets(channel_id)
        for sock in sockets:
            channel = sock.channel
            if action == "drop":
                sock.drop()
            elif action == "stop_heartbeats":
                sock.heartbeats = False
            elif action == "ignore_pings":
                sock.answer_pings = False
            elif action == "socket_closing":
                sock.send({"topicName": "v2.system.socket_closing", "version": "2",
                           "eventBody": {"channelId": channel.id,
                                         "message": "This WebSocket is closing for maintenance; "
                                                    "connect a new one within one minute"},
                           "metadata": {"CorrelationId": new_id()}})
                delay = self.emu.config.socket_closing_grace if grace is None else float(grace)
                asyncio.get_running_loop().call_later(delay, self._close_if_current, channel, sock)
            elif action == "no_longer_subscribed":
                sock.send(self.system_message(channel, "no_longer_subscribed", "another_channel_subscribed",
                                              "Channel no longer subscribed"))
                channel.topics = {}
            elif action == "token_revoked":
                sock.send(self.system_message(channel, "token_revoked", "user_tokens_revoked",
                                              "The token used to create this channel was revoked"))
                channel.topics = {}
                token = self.emu.tokens.get(channel.token)
                if token:
                    token.revoked = True
            elif action == "malformed":
                sock.send("this is not JSON {")
                sock.send({"unexpected": True, "topic": 42, "eventBody": "not an object"})
        return len(sockets)

    @staticmethod
    def _close_if_current(channel: Channel, sock: Socket):
        if channel.socket is sock:
            sock.close(1001, "socket closing for maintenance")


WS_FAULTS = ("drop", "stop_heartbeats", "ignore_pings", "socket_closing", "no_longer_subscribed",
             "token_revoked", "malformed")


async def create_channel(request):
    channel = emu_of(request).notifier.create(request["token"], request.host,
                                              "wss" if request.secure else "ws")
    return json_response(channel.json())


async def list_channels(request):
    emu, token = emu_of(request), request["token"]
    scope = request.query.get("includechannels", "token").lower()
    channels = [c.json() for c in emu.notifier.live()
                if c.client_id == token.client_id and (scope == "oauthclient" or c.token == token.value)]
    return json_response({"entities": channels})


async def head_channel(request):
    emu_of(request).notifier.require(request.match_info["channel_id"])
    return web.Response(status=200)


async def get_subscriptions(request):
    notifier = emu_of(request).notifier
    channel = notifier.require(request.match_info["channel_id"])
    return json_response({"entities": [notifier.topic_json(channel, t) for t in channel.topics]})


async def put_subscriptions(request):
    notifier = emu_of(request).notifier
    channel = notifier.require(request.match_info["channel_id"])
    return json_response(notifier.subscribe(channel, await json_body(request), replace=True))


async def post_subscriptions(request):
    notifier = emu_of(request).notifier
    channel = notifier.require(request.match_info["channel_id"])
    return json_response(notifier.subscribe(channel, await json_body(request), replace=False))


async def delete_subscriptions(request):
    channel = emu_of(request).notifier.require(request.match_info["channel_id"])
    channel.topics = {}
    return web.Response(status=204)


async def channel_websocket(request):
    """The streaming host: ws://host/channels/{id}. The channel id is the credential."""
    emu = emu_of(request)
    channel = emu.notifier.get(request.match_info["channel_id"])
    if channel is None:
        raise ApiError(404, "Channel not found.")
    ws = web.WebSocketResponse(autoping=True)
    ws.headers[CORRELATION_HEADER] = request["correlation_id"]
    await ws.prepare(request)
    sock = Socket(ws, request.transport, channel)
    emu.notifier.attach(channel, sock)
    writer = asyncio.create_task(sock.writer(emu.stats))
    tasks = [writer, asyncio.create_task(sock.heartbeat_loop(emu))]

    def writer_done(_task):              # the writer failed or closed the socket: end the reader too
        if not ws.closed:
            asyncio.ensure_future(ws.close())
    writer.add_done_callback(writer_done)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("message") == "ping" and sock.answer_pings:
                sock.send({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})
    finally:
        for task in tasks:
            task.cancel()
        emu.notifier.detach(channel, sock)
    return ws


# =============================================================================
# 8. Control API (/__emulator/...)
# =============================================================================

async def control_body(request, kind=None):
    try:
        body = json.loads(await request.text() or "null")
    except ValueError:
        raise ControlError(400, "body is not valid JSON")
    if kind is list and isinstance(body, dict):
        body = [body]
    if kind is not None and not isinstance(body, kind):
        raise ControlError(400, f"body must be a JSON {'array' if kind is list else 'object'}")
    return body


def agent_view(emu: Emulator, agent: Agent, timeline=True) -> dict:
    view = {"id": agent.id, "name": agent.name, "email": agent.email,
            "presence": agent.presence.system, "presence_id": agent.presence.id,
            "presence_label": agent.presence.label, "presence_message": agent.presence_message,
            "presence_modified": iso(agent.presence_modified), "routing_status": agent.routing_status,
            "routing_start": iso(agent.routing_start), "state": agent.state,
            "queues": emu.queues_of(agent, joined_only=False),
            "skills": [{"id": sid, "name": emu.skills.get(sid), **s} for sid, s in agent.skills.items()],
            "simulated": agent.simulated}
    if timeline:
        view["timeline"] = list(agent.timeline)
    return view


def queue_view(emu: Emulator, queue: Queue) -> dict:
    return {"id": queue.id, "name": queue.name, "waiting": queue.waiting, "version": queue.version,
            "skill_evaluation_method": queue.body.get("skillEvaluationMethod"),
            "members": [{"id": m.user_id, "ring_number": m.ring_number, "joined": m.joined}
                        for m in queue.members.values()],
            "observations": dict(queue.observed), "readback_lag": queue.readback_lag,
            "readback_pending": queue.stale_gets if queue.stale is not None else 0}


async def ctl_reset(request):
    emu_of(request).reset()
    return json_response({"ok": True})


async def ctl_add_agents(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    return json_response([agent_view(emu, emu.create_agent(s)) for s in specs])


async def ctl_list_agents(request):
    emu = emu_of(request)
    timeline = request.query.get("timeline", "1") not in ("0", "false")
    return json_response([agent_view(emu, a, timeline) for a in emu.agents.values()])


def ctl_agent(request) -> Agent:
    emu = emu_of(request)
    agent = emu.agents.get(request.match_info["user_id"])
    if agent is None:
        raise ControlError(404, f"unknown agent {request.match_info['user_id']}")
    return agent


async def ctl_get_agent(request):
    return json_response(agent_view(emu_of(request), ctl_agent(request)))


async def ctl_set_state(request):
    emu, agent = emu_of(request), ctl_agent(request)
    body = await control_body(request, dict)
    presence = emu.resolve_presence(body["presence"]) if body.get("presence") else None
    routing = emu.resolve_routing(body["routing_status"]) if body.get("routing_status") else None
    try:
        at = parse_iso(body["at"]) if body.get("at") else None
    except ValueError:
        raise ControlError(400, "at must be an ISO 8601 timestamp")
    force = bool(body.get("force"))
    changed = emu.apply_state(agent, presence, routing, at, body.get("message"),
                              force_presence=force and presence is not None,
                              force_routing=force and routing is not None, source="control")
    return json_response({**agent_view(emu, agent, timeline=False), "changed": changed})


async def ctl_add_skills(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    return json_response([{"id": (sid := emu.register_skill(s.get("id"), s.get("name"))),
                           "name": emu.skills[sid]} for s in specs])


async def ctl_add_queues(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    return json_response([queue_view(emu, emu.create_queue(s)) for s in specs])


async def ctl_list_queues(request):
    emu = emu_of(request)
    return json_response([queue_view(emu, q) for q in emu.queues.values()])


async def ctl_set_members(request):
    emu = emu_of(request)
    queue = emu.queues.get(request.match_info["queue_id"])
    if queue is None:
        raise ControlError(404, f"unknown queue {request.match_info['queue_id']}")
    emu.set_members(queue, await control_body(request, list))
    return json_response(queue_view(emu, queue))


def ctl_queue(request) -> Queue:
    queue = emu_of(request).queues.get(request.match_info["queue_id"])
    if queue is None:
        raise ControlError(404, f"unknown queue {request.match_info['queue_id']}")
    return queue


async def ctl_queue_observations(request):
    emu, queue = emu_of(request), ctl_queue(request)
    emu.script_observations(queue, await control_body(request, dict))
    return json_response(queue_view(emu, queue))


async def ctl_queue_readback_lag(request):
    emu, queue = emu_of(request), ctl_queue(request)
    gets = (await control_body(request, dict)).get("gets")
    if isinstance(gets, bool) or not isinstance(gets, int) or not 0 <= gets <= 1000:
        raise ControlError(400, "gets must be an integer in [0, 1000]")
    queue.readback_lag = gets
    if gets == 0:                            # no lag any more: a pending PUT reads back at once
        queue.stale, queue.stale_gets = None, 0
    return json_response(queue_view(emu, queue))


async def ctl_queue_aggregates(request):
    """PUT replaces the queue's scripted aggregate buckets, POST appends to them."""
    emu = emu_of(request)
    queue_id = request.match_info["queue_id"]
    specs = await control_body(request, list)
    had, old = queue_id in emu.aggregates, list(emu.aggregates.get(queue_id, []))
    if request.method == "PUT":
        emu.aggregates[queue_id] = []
    try:
        for spec in specs:
            emu.add_aggregate_bucket(queue_id, spec)
    except ControlError:                     # all or nothing
        emu.aggregates[queue_id] = old
        if not had:
            del emu.aggregates[queue_id]
        raise
    return json_response(aggregates_view(emu, queue_id))


def aggregates_view(emu: Emulator, queue_id: str) -> list:
    return [{**b, "at": iso(b["at"]) if b["at"] is not None else None}
            for b in emu.aggregates.get(queue_id, [])]


async def ctl_list_aggregates(request):
    emu = emu_of(request)
    return json_response({qid: aggregates_view(emu, qid) for qid in emu.aggregates})


async def ctl_clear_aggregates(request):
    emu_of(request).aggregates.clear()
    return json_response({"ok": True})


async def ctl_add_audits(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    try:
        entries = [emu.make_audit_entry(s) for s in specs]          # all or nothing
    except (TypeError, ValueError) as e:
        raise ControlError(400, f"bad audit entry: {e}")
    emu.audit_entries += entries
    return json_response([audit_entry_json(e, True) for e in entries])


async def ctl_list_audits(request):
    return json_response([audit_entry_json(e, True) for e in emu_of(request).audit_entries])


async def ctl_clear_audits(request):
    emu_of(request).clear_audits()
    return json_response({"ok": True})


async def ctl_list_audit_queries(request):
    return json_response([{"id": q.id, "state": q.state, "polls": q.polls,
                           "running_polls": q.running_polls, "fails": q.fails,
                           "entries": len(q.entries), "created": iso(q.created), **q.request}
                          for q in emu_of(request).audit_queries.values()])


async def ctl_audit_config(request):
    """{"running_polls"?, "fail"?, "put_user"?}: how later audit queries behave, and the user
    recorded on the audit entries of queue PUTs (null: none, only the OAuth client)."""
    emu = emu_of(request)
    body = await control_body(request, dict) if request.method == "POST" else {}
    unknown = set(body) - set(emu.audit_behaviour)
    if unknown:
        raise ControlError(400, f"unknown audit config keys {sorted(unknown)}")
    polls = body.get("running_polls", emu.audit_behaviour["running_polls"])
    if isinstance(polls, bool) or not isinstance(polls, int) or not 0 <= polls <= 1000:
        raise ControlError(400, "running_polls must be an integer in [0, 1000]")
    fail = body.get("fail", emu.audit_behaviour["fail"])
    if fail is True:
        fail = "Audit query failed"
    if fail is not None and fail is not False and not isinstance(fail, str):
        raise ControlError(400, "fail must be true, false, null or a reason")
    user = body.get("put_user", emu.audit_behaviour["put_user"])
    if user is not None and (not isinstance(user, dict) or not user.get("id")):
        raise ControlError(400, "put_user must be {\"id\",\"name\"} or null")
    emu.audit_behaviour.update(running_polls=polls, fail=fail or None, put_user=user)
    return json_response(emu.audit_behaviour)


async def ctl_add_fault(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    for spec in specs:
        emu.add_fault(spec)
    return json_response({"faults": len(emu.faults)})


async def ctl_clear_faults(request):
    emu_of(request).faults.clear()
    return json_response({"faults": 0})


async def ctl_list_faults(request):
    return json_response([{"method": f.method, "path": f.path.pattern, "remaining": f.remaining,
                           "status": f.status, "retry_after": f.retry_after, "delay": f.delay,
                           "drop": f.drop, "skip": f.skip} for f in emu_of(request).faults])


def flow_instance_view(instance: FlowInstance) -> dict:
    return {"id": instance.id, "flow_id": instance.flow_id, "flow_name": instance.flow_name,
            "flow_type": instance.flow_type, "flow_version": instance.flow_version,
            "conversation_id": instance.conversation_id, "division_id": instance.division_id,
            "start": instance.start, "end": instance.end, "error_reason": instance.error_reason,
            "warning_reason": instance.warning_reason, "job_polls": instance.job_polls,
            "job_fails": instance.job_fails, "entity_fails": instance.entity_fails,
            "truncated": instance.truncated, "reported_items": instance.reported_items,
            "items": len(instance.execution)}


async def ctl_add_flow_instances(request):
    emu = emu_of(request)
    specs = await control_body(request, list)
    instances = [emu.add_flow_instance(spec) for spec in specs]
    return json_response([flow_instance_view(i) for i in instances])


async def ctl_list_flow_instances(request):
    return json_response([flow_instance_view(i) for i in emu_of(request).flow_instances.values()])


async def ctl_clear_flow_instances(request):
    emu_of(request).clear_flows()
    return json_response({"ok": True})


async def ctl_list_flow_jobs(request):
    emu = emu_of(request)
    return json_response([{"id": j.id, "ids": j.ids, "state": j.state, "polls": j.polls,
                           "job_polls": j.job_polls, "fails": j.fails, "created": iso(j.created),
                           "downloads": [{"token": t, "instance_id": emu.downloads[t].instance_id,
                                          "expires_in": round(emu.downloads[t].expires_at
                                                              - time.monotonic(), 3)}
                                         for t in j.downloads if t in emu.downloads]}
                          for j in emu.flow_jobs.values()])


async def ctl_expire_downloads(request):
    """Make every handed-out downloadUri expired (the next GET on one gets 403)."""
    emu = emu_of(request)
    mono = time.monotonic()
    for download in emu.downloads.values():
        download.expires_at = min(download.expires_at, mono)
    return json_response({"expired": len(emu.downloads)})


async def ctl_ws_fault(request):
    emu = emu_of(request)
    body = await control_body(request, dict)
    if body.get("action") not in WS_FAULTS:
        raise ControlError(400, f"action must be one of {', '.join(WS_FAULTS)}")
    if body.get("channel") and emu.notifier.get(body["channel"]) is None:
        raise ControlError(404, f"unknown channel {body['channel']}")
    count = emu.notifier.apply_fault(body["action"], body.get("channel"), body.get("grace"))
    return json_response({"sockets": count})


async def ctl_ws_push(request):
    emu = emu_of(request)
    body = await control_body(request, dict)
    agent = emu.agents.get(body.get("user"))
    if agent is None:
        raise ControlError(404, f"unknown agent {body.get('user')}")
    if body.get("channel") and emu.notifier.get(body["channel"]) is None:
        raise ControlError(404, f"unknown channel {body['channel']}")
    return json_response({"sockets": emu.notifier.push_activity(agent, body.get("channel"))})


async def ctl_requests(request):
    emu = emu_of(request)
    q = request.query
    try:
        since = int(q.get("since", 0))
        path = re.compile(q["path"]) if "path" in q else None
    except (ValueError, re.error) as e:
        raise ControlError(400, f"bad filter: {e}")
    method = q.get("method", "").upper()
    return json_response([e for e in emu.request_log if e["seq"] > since
                          and (path is None or path.search(e["path"]))
                          and (not method or e["method"] == method)])


async def ctl_clear_requests(request):
    emu_of(request).request_log.clear()
    return json_response({"ok": True, "seq": emu_of(request).request_seq})


async def ctl_stats(request):
    emu = emu_of(request)
    channels = emu.notifier.live()
    stats = {key: emu.stats.get(key, 0) for key in (
        "requests_total", "tokens_issued", "rate_limited", "faults_injected", "state_changes",
        "notifications_sent", "ws_messages_sent", "ws_connections", "ws_displaced", "channels_created",
        "channels_removed", "flow_queries", "flow_jobs_created", "flow_job_polls", "flow_downloads",
        "queue_stale_reads", "aggregate_queries", "audit_queries", "audit_polls", "audit_result_pages",
        "unsupported_media_type")}
    stats.update(requests_by_route=dict(emu.routes),
                 active_sockets=sum(c.socket is not None for c in channels),
                 channels=len(channels), topics=sum(len(c.topics) for c in channels),
                 agents=len(emu.agents), queues=len(emu.queues), faults_pending=len(emu.faults),
                 flow_instances=len(emu.flow_instances), flow_jobs=len(emu.flow_jobs),
                 audit_entries=len(emu.audit_entries),
                 last_seq=emu.request_seq, uptime=round(time.monotonic() - emu.started, 3),
                 simulation=emu.simulation.info() if emu.simulation else None)
    return json_response(stats)


async def ctl_channels(request):
    emu = emu_of(request)
    return json_response([{**c.json(), "client_id": c.client_id, "topics": list(c.topics),
                           "connected": c.socket is not None} for c in emu.notifier.live()])


async def ctl_ws_log(request):
    """The socket log: open/close of every WebSocket and every channel expiry, oldest first."""
    return json_response(list(emu_of(request).notifier.socket_log))


async def ctl_revoke_tokens(request):
    emu = emu_of(request)
    for token in emu.tokens.values():
        token.revoked = True
    return json_response({"revoked": len(emu.tokens)})


async def ctl_get_config(request):
    return json_response(emu_of(request).config.as_dict())


async def ctl_set_config(request):
    emu = emu_of(request)
    emu.config.update(await control_body(request, dict))
    return json_response(emu.config.as_dict())


async def ctl_start_simulation(request):
    emu = emu_of(request)
    body = await control_body(request, dict) if request.can_read_body else {}
    body = body or {}
    try:
        agents, queues = int(body.get("agents", 50)), int(body.get("queues", 3))
        churn = float(body.get("churn", 2.0))
    except (TypeError, ValueError):
        raise ControlError(400, "agents, queues and churn must be numbers")
    if not (1 <= agents <= 100000 and 1 <= queues <= 1000 and 0 <= churn <= 10000):
        raise ControlError(400, "agents 1..100000, queues 1..1000, churn 0..10000")
    return json_response(start_simulation(emu, agents, queues, churn))


async def ctl_stop_simulation(request):
    emu = emu_of(request)
    if emu.simulation:
        emu.simulation.stop()
        emu.simulation = None
    return json_response({"running": False})


# =============================================================================
# 9. Simulation: a contact centre with realistic churn
# =============================================================================

FIRST_NAMES = ["Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Isabella",
               "Mateo", "Mia", "Lucas", "Charlotte", "Levi", "Harper", "Ethan", "Evelyn", "Aiden",
               "Priya", "Kenji", "Fatima", "Diego", "Chloe", "Arjun", "Zoe", "Omar", "Lena", "Tomasz",
               "Aisha", "Hugo", "Ingrid", "Malik", "Sofia", "Ravi", "Nora", "Jonas", "Yuki", "Camila",
               "Samuel", "Grace", "Felix", "Leila", "Marco", "Hannah", "Andre", "Elena", "Kwame"]
LAST_NAMES = ["Smith", "Johnson", "Garcia", "Müller", "Brown", "Nguyen", "Martinez", "Kowalski",
              "Silva", "Okafor", "Tanaka", "Patel", "Rossi", "Dubois", "Jensen", "O'Brien", "Kim",
              "Hernandez", "Andersson", "Novak", "Cohen", "Fischer", "Lopez", "Singh", "Walker",
              "Costa", "Ivanova", "Haddad", "Murphy", "Bauer", "Sato", "Mensah", "Larsen", "Moreau",
              "Wright", "Schmidt", "Ali", "Reyes", "Chen", "Young", "Ortiz", "Berg", "Clarke"]
QUEUE_NAMES = ["Sales", "Support", "Billing", "Retention", "Technical Support", "Claims",
               "Returns", "VIP Care", "Onboarding", "Collections"]

# gcmon state -> [(weight, target)], target is ("presence", name) or ("routing", status).
TRANSITIONS = {
    "IDLE": [(60, ("routing", "INTERACTING")), (6, ("routing", "NOT_RESPONDING")),
             (8, ("presence", "Break")), (4, ("presence", "Meal")), (2, ("presence", "Lunch Walk")),
             (5, ("presence", "Away")), (5, ("presence", "Available")), (4, ("presence", "Busy")),
             (3, ("presence", "Meeting")), (2, ("presence", "Training")), (1, ("presence", "Offline"))],
    "INTERACTING": [(75, ("routing", "IDLE")), (20, ("routing", "COMMUNICATING")), (5, ("presence", "Busy"))],
    "COMMUNICATING": [(80, ("routing", "IDLE")), (20, ("routing", "INTERACTING"))],
    "NOT_RESPONDING": [(70, ("routing", "IDLE")), (30, ("presence", "Away"))],
    "OFF_QUEUE": [(90, ("presence", "OnQueue")), (10, ("presence", "Available"))],
    "Offline": [(50, ("presence", "Available")), (50, ("presence", "OnQueue"))],
    "Available": [(70, ("presence", "OnQueue")), (10, ("presence", "Busy")), (10, ("presence", "Break")),
                  (10, ("presence", "Away"))],
}
OFF_QUEUE_DEFAULT = [(80, ("presence", "OnQueue")), (15, ("presence", "Available")),
                     (5, ("presence", "Away"))]
INITIAL_STATES = [(25, ("OnQueue", "IDLE")), (30, ("OnQueue", "INTERACTING")),
                  (5, ("OnQueue", "COMMUNICATING")), (10, ("Available", None)), (8, ("Break", None)),
                  (5, ("Meal", None)), (5, ("Away", None)), (5, ("Busy", None)), (7, ("Offline", None))]


def weighted(rng: random.Random, options):
    return rng.choices([o for _, o in options], weights=[w for w, _ in options])[0]


def sim_agent_names(count: int) -> List[str]:
    """Stable, unique, realistic names (index i always gets the same name)."""
    combos = [f"{f} {l}" for f in FIRST_NAMES for l in LAST_NAMES]
    random.Random(20240115).shuffle(combos)
    return [combos[i] if i < len(combos) else f"{combos[i % len(combos)]} {i // len(combos) + 1}"
            for i in range(count)]


class Simulation:
    """Simulated agents and queues have stable ids (independent of --seed) so a demo database
    keeps its history across runs; --seed makes the churn itself reproducible."""

    def __init__(self, emu: Emulator, agents: int, queues: int, churn: float):
        self.emu, self.churn = emu, churn
        self.rng = random.Random(emu.seed)
        self.agent_ids: List[str] = []
        self.queue_ids: List[str] = []
        self.task: Optional[asyncio.Task] = None
        self.steps = 0
        self._populate(agents, queues)

    @staticmethod
    def queue_id(i: int) -> str:
        return stable_id("sim-queue", i)

    @staticmethod
    def agent_id(i: int) -> str:
        return stable_id("sim-agent", i)

    def _populate(self, n_agents: int, n_queues: int):
        emu, rng = self.emu, self.rng
        for i in range(n_queues):
            name = QUEUE_NAMES[i] if i < len(QUEUE_NAMES) else f"Queue {i + 1}"
            qid = self.queue_id(i)
            if qid not in emu.queues:
                emu.create_queue({"id": qid, "name": name, "waiting": rng.randint(0, 4)})
                emu.register_skill(stable_id("sim-skill", i), f"{name} Skill")
            self.queue_ids.append(qid)
        names = sim_agent_names(n_agents)
        for i in range(n_agents):
            aid = self.agent_id(i)
            self.agent_ids.append(aid)
            if aid in emu.agents:
                continue
            home = [i % n_queues] + ([rng.randrange(n_queues)] if n_queues > 1 and rng.random() < 0.3 else [])
            home = list(dict.fromkeys(home))
            presence, routing = weighted(rng, INITIAL_STATES)
            emu.create_agent({
                "id": aid, "name": names[i], "presence": presence, "routing_status": routing,
                "skills": [{"id": stable_id("sim-skill", q), "proficiency": round(rng.uniform(1, 5), 1)}
                           for q in home],
            }, simulated=True)
            for q in home:
                emu.queues[self.queue_id(q)].members[aid] = Member(aid, ring_number=1 + (rng.random() < 0.2))

    def step(self):
        emu, rng = self.emu, self.rng
        agent = emu.agents.get(rng.choice(self.agent_ids))
        if agent is not None:
            kind, target = weighted(rng, TRANSITIONS.get(agent.state, OFF_QUEUE_DEFAULT))
            if kind == "routing":
                emu.apply_state(agent, routing=target, source="simulation")
            else:
                emu.apply_state(agent, presence=emu.resolve_presence(target), source="simulation")
        if rng.random() < 0.3:
            queue = emu.queues.get(rng.choice(self.queue_ids))
            if queue is not None:
                queue.waiting = max(0, min(25, queue.waiting + rng.choice((-1, -1, 0, 1, 1, 2))))
        self.steps += 1

    async def run(self):
        while True:
            await asyncio.sleep(self.rng.expovariate(self.churn) if self.churn > 0 else 3600)
            if self.churn > 0:
                self.step()

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self.run())

    def stop(self):
        if self.task:
            self.task.cancel()
            self.task = None

    def info(self) -> dict:
        return {"running": self.task is not None, "agents": len(self.agent_ids),
                "queues": [{"id": qid, "name": self.emu.queues[qid].name} for qid in self.queue_ids
                           if qid in self.emu.queues],
                "churn": self.churn, "steps": self.steps}


def start_simulation(emu: Emulator, agents: int, queues: int, churn: float) -> dict:
    if emu.simulation:
        emu.simulation.stop()
    emu.simulation = Simulation(emu, agents, queues, churn)
    emu.simulation.start()
    info = emu.simulation.info()
    log.info("simulation: %d agents, %.2f changes/s, queues %s", agents, churn,
             ", ".join(f"{q['name']}={q['id']}" for q in info["queues"]))
    return {**info, "agent_ids": list(emu.simulation.agent_ids)}


# =============================================================================
# 10. App factory and CLI
# =============================================================================

def build_app(emu: Emulator) -> web.Application:
    app = web.Application(middlewares=[correlation_and_log, inject_faults, errors_as_json, authenticate],
                          client_max_size=16 * 1024 * 1024)
    app["emu"] = emu
    r = app.router
    # login host
    r.add_post("/oauth/token", oauth_token)
    # API host
    r.add_get("/api/v2/organizations/me", get_organization)
    r.add_get("/api/v2/users", list_users)
    r.add_get("/api/v2/users/{user_id}", get_user)
    r.add_get("/api/v2/users/{user_id}/presences/{source}", get_user_presence)
    r.add_patch("/api/v2/users/{user_id}/presences/{source}", patch_user_presence)
    r.add_get("/api/v2/users/{user_id}/routingstatus", get_routing_status)
    r.add_put("/api/v2/users/{user_id}/routingstatus", put_routing_status)
    r.add_get("/api/v2/users/{user_id}/routingskills", list_user_skills)
    r.add_put("/api/v2/users/{user_id}/routingskills/{skill_id}", put_user_skill)
    r.add_delete("/api/v2/users/{user_id}/routingskills/{skill_id}", delete_user_skill)
    r.add_get("/api/v2/presence/definitions", list_presence_definitions)
    r.add_get("/api/v2/presence/definitions/{definition_id}", get_presence_definition)
    r.add_get("/api/v2/routing/queues", list_queues)
    r.add_get("/api/v2/routing/queues/{queue_id}", get_queue)
    r.add_put("/api/v2/routing/queues/{queue_id}", put_queue)
    r.add_get("/api/v2/routing/queues/{queue_id}/members", list_queue_members)
    r.add_post("/api/v2/analytics/queues/observations/query", queue_observations)
    r.add_post("/api/v2/analytics/conversations/aggregates/query", conversation_aggregates)
    r.add_post("/api/v2/audits/query", create_audit_query)
    r.add_get("/api/v2/audits/query/{transaction_id}", get_audit_query)
    r.add_get("/api/v2/audits/query/{transaction_id}/results", get_audit_results)
    r.add_post("/api/v2/flows/instances/query", query_flow_instances)
    r.add_post("/api/v2/flows/instances/jobs", create_flow_job)
    r.add_get("/api/v2/flows/instances/jobs/{job_id}", get_flow_job)
    r.add_get("/api/v2/flows/instances/{instance_id}", get_flow_instance)
    r.add_post("/api/v2/notifications/channels", create_channel)
    r.add_get("/api/v2/notifications/channels", list_channels, allow_head=False)
    r.add_route("HEAD", "/api/v2/notifications/channels/{channel_id}", head_channel)
    sub = "/api/v2/notifications/channels/{channel_id}/subscriptions"
    r.add_get(sub, get_subscriptions)
    r.add_put(sub, put_subscriptions)
    r.add_post(sub, post_subscriptions)
    r.add_delete(sub, delete_subscriptions)
    # streaming host
    r.add_get("/channels/{channel_id}", channel_websocket)
    # storage host: pre-signed flow execution data links (no bearer token)
    r.add_get("/downloads/{token}", download_execution_data)
    # control API
    c = "/__emulator"
    r.add_post(f"{c}/reset", ctl_reset)
    r.add_post(f"{c}/agents", ctl_add_agents)
    r.add_get(f"{c}/agents", ctl_list_agents)
    r.add_get(f"{c}/agents/{{user_id}}", ctl_get_agent)
    r.add_post(f"{c}/agents/{{user_id}}/state", ctl_set_state)
    r.add_post(f"{c}/skills", ctl_add_skills)
    r.add_post(f"{c}/queues", ctl_add_queues)
    r.add_get(f"{c}/queues", ctl_list_queues)
    r.add_put(f"{c}/queues/{{queue_id}}/members", ctl_set_members)
    r.add_post(f"{c}/queues/{{queue_id}}/observations", ctl_queue_observations)
    r.add_post(f"{c}/queues/{{queue_id}}/readback_lag", ctl_queue_readback_lag)
    r.add_put(f"{c}/queues/{{queue_id}}/aggregates", ctl_queue_aggregates)
    r.add_post(f"{c}/queues/{{queue_id}}/aggregates", ctl_queue_aggregates)
    r.add_get(f"{c}/aggregates", ctl_list_aggregates)
    r.add_delete(f"{c}/aggregates", ctl_clear_aggregates)
    r.add_post(f"{c}/audits", ctl_add_audits)
    r.add_get(f"{c}/audits", ctl_list_audits)
    r.add_delete(f"{c}/audits", ctl_clear_audits)
    r.add_get(f"{c}/audits/queries", ctl_list_audit_queries)
    r.add_get(f"{c}/audits/config", ctl_audit_config)
    r.add_post(f"{c}/audits/config", ctl_audit_config)
    r.add_post(f"{c}/faults", ctl_add_fault)
    r.add_get(f"{c}/faults", ctl_list_faults)
    r.add_delete(f"{c}/faults", ctl_clear_faults)
    r.add_post(f"{c}/flows/instances", ctl_add_flow_instances)
    r.add_get(f"{c}/flows/instances", ctl_list_flow_instances)
    r.add_delete(f"{c}/flows/instances", ctl_clear_flow_instances)
    r.add_get(f"{c}/flows/jobs", ctl_list_flow_jobs)
    r.add_post(f"{c}/flows/downloads/expire", ctl_expire_downloads)
    r.add_post(f"{c}/ws/faults", ctl_ws_fault)
    r.add_post(f"{c}/ws/push", ctl_ws_push)
    r.add_get(f"{c}/requests", ctl_requests)
    r.add_delete(f"{c}/requests", ctl_clear_requests)
    r.add_get(f"{c}/stats", ctl_stats)
    r.add_get(f"{c}/channels", ctl_channels)
    r.add_get(f"{c}/ws/log", ctl_ws_log)
    r.add_delete(f"{c}/tokens", ctl_revoke_tokens)
    r.add_get(f"{c}/config", ctl_get_config)
    r.add_post(f"{c}/config", ctl_set_config)
    r.add_post(f"{c}/simulate", ctl_start_simulation)
    r.add_delete(f"{c}/simulate", ctl_stop_simulation)

    async def close_sockets(_app):
        """Close frames to every client; whoever has not answered within 1 s is cut off."""
        sockets = [c.socket for c in emu.notifier.channels.values() if c.socket is not None]
        closes = [asyncio.ensure_future(s.ws.close(code=1001, message=b"emulator shutting down"))
                  for s in sockets]
        if closes:
            await asyncio.wait(closes, timeout=1.0)
        for sock in sockets:
            sock.drop()
    app.on_shutdown.append(close_sockets)
    return app


def write_port_file(path: str, port: int):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


async def serve(args) -> None:
    config = Config(token_expires=args.token_expires, heartbeat=args.heartbeat, rate_limit=args.rate_limit,
                    client_rate_limit=args.client_rate_limit)
    emu = Emulator(args.client_id, args.client_secret, config, seed=args.seed)
    runner = web.AppRunner(build_app(emu), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, shutdown_timeout=2.0)
    await site.start()
    port = runner.addresses[0][1]
    tls_ports = []
    for spec in args.tls or ():
        # The same app again over TLS, one site per certificate (tests/integration/test_tls.py).
        cert, key = spec.split(",", 1)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx, shutdown_timeout=2.0)
        await tls_site.start()
        tls_ports.append(tls_site._server.sockets[0].getsockname()[1])
    if args.ws_tls is not None:
        emu.connect_base = f"wss://127.0.0.1:{tls_ports[args.ws_tls]}"
    if args.tls_port_file:
        tmp = f"{args.tls_port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("".join(f"{p}\n" for p in tls_ports))
        os.replace(tmp, args.tls_port_file)
    if args.simulate:
        start_simulation(emu, args.agents, args.queues, args.churn)
    if args.port_file:
        write_port_file(args.port_file, port)
    log.info("Genesys Cloud emulator listening on http://127.0.0.1:%d (client id %s)", port, args.client_id)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    if emu.simulation:
        emu.simulation.stop()
    await runner.cleanup()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Genesys Cloud Platform API v2 emulator (gcmon tests)")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--port-file", help="write the chosen port here once listening (atomically)")
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--token-expires", type=int, default=86400, help="expires_in of issued tokens (s)")
    p.add_argument("--heartbeat", type=float, default=30.0, help="WebSocket heartbeat interval (s)")
    p.add_argument("--rate-limit", type=int, default=0, help="API requests per token per 60 s (0 = off)")
    p.add_argument("--client-rate-limit", type=int, default=0,
                   help="API requests per OAuth client (all its tokens) per 60 s (0 = off)")
    p.add_argument("--simulate", action="store_true", help="start the contact-centre simulation")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--queues", type=int, default=3)
    p.add_argument("--churn", type=float, default=2.0, help="simulated state changes per second")
    p.add_argument("--seed", type=int, default=None, help="seed for the simulation's randomness")
    p.add_argument("--verbose", action="store_true", help="also log control API requests")
    p.add_argument("--tls", action="append", metavar="CERT,KEY",
                   help="also serve everything over TLS with this certificate and key on a port "
                        "of its own (repeatable; the plain port stays for the control API)")
    p.add_argument("--ws-tls", type=int, metavar="INDEX",
                   help="channels' connectUri on the TLS site of this --tls entry (0-based), "
                        "whichever site created them")
    p.add_argument("--tls-port-file", help="write the TLS ports here, one a line, in --tls order")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s.%(msecs)03d gc-emulator %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # A parent may have blocked these (tests/demo.py does); we must still be stoppable.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    main()
