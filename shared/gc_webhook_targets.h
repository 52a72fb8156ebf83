/* The outbound webhook targets, from one list. Everything that names a target
 * derives from it: the URL fields of gc_webhook_conf_t, the URL directives of
 * mod_gcmon_stream (command table, GCM2008, GCM2009), the outbox's lookups
 * (URL, X-Genesys-Event, "… is not configured"), whether a background holder
 * runs, and the `target` label values of gcmon_webhook_deliveries_total. A new
 * target is one entry here plus its directive's documentation
 * (docs/architecture.md, "How to add a webhook target"). */
#ifndef GC_WEBHOOK_TARGETS_H
#define GC_WEBHOOK_TARGETS_H

/* X(name, directive, member, slack, event, label, help):
 * - name: the outbox row's target and the metrics label value;
 * - directive: the directive that sets its URL;
 * - member: the URL's field in gc_webhook_conf_t;
 * - slack: 1 for a Slack incoming webhook (Slack Block Kit bodies; its URL is
 *   a credential by design, so a literal value in the configuration warns);
 * - event: the X-Genesys-Event header its deliveries carry, or NULL;
 * - label: how GCM2008 names it;
 * - help: the directive's description (mod_info). */
/* clang-format off */
#define GC_WEBHOOK_TARGET_LIST(X)                                                           \
    X(slack, "GcmonSlackWebhook", slack_url, 1, NULL, "Slack",                              \
      "Slack incoming-webhook URL for idle alerts: file:/path, env:NAME or a literal")     \
    X(status, "GcmonStatusWebhook", status_url, 0, "state_change", "status",                \
      "Receives every status change made through the admin API")                            \
    X(trace, "GcmonTraceWebhook", trace_url, 0, NULL, "trace",                              \
      "Receives a summary of every completed trace")                                        \
    X(wfm, "GcmonWfmWebhook", wfm_url, 0, NULL, "WFM",                                      \
      "Receives weight distributions and strategy changes")
/* clang-format on */

typedef enum {
#define GC_WEBHOOK_TARGET_ENUM(name, directive, member, slack, event, label, help) \
    GC_WEBHOOK_##name,
    GC_WEBHOOK_TARGET_LIST(GC_WEBHOOK_TARGET_ENUM)
#undef GC_WEBHOOK_TARGET_ENUM
        GC_WEBHOOK__COUNT
} gc_webhook_target_e;

#endif
