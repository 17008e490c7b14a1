/* The coordinator's flags (and config-file keys): one table drives parsing,
 * defaults and --help (common/config.h). */
#include <stddef.h>

#include "common/curve.h"
#include "coordinator/coordinator.h"

#define OPT(name, type, field, def, lo, hi, choices, help) \
    { name, type, offsetof(me_coord_opts_t, field), def, lo, hi, choices, help }

const me_cfg_opt_t me_coord_options[] = {
    OPT("listen", ME_CFG_STRING, listen, "tcp://127.0.0.1:7700", 0, 0, NULL, "ZeroMQ endpoint to bind (ROUTER)"),
    OPT("cluster", ME_CFG_STRING, cluster, "", 0, 0, NULL,
        "cluster map file: lines 'group NAME tcp://HOST:PORT [more replicas...]' (required)"),
    ME_CFG_LOG_LEVEL_OPTION(me_coord_opts_t),
    OPT("threads", ME_CFG_INT, threads, "4", 1, 256, NULL, "request worker threads"),
    OPT("write-quorum", ME_CFG_INT, write_quorum, "0", 0, 64, NULL,
        "replicas per group that must acknowledge a write; 0 = all of them"),
    OPT("heartbeat-ms", ME_CFG_INT, heartbeat_ms, "500", 10, 60000, NULL, "heartbeat interval per replica"),
    OPT("repair-ms", ME_CFG_INT, repair_ms, "5000", 0, 3600000, NULL,
        "interval of the anti-entropy pass that makes replicas converge (also run within 100 ms of a replica "
        "missing a write or coming back); 0 = only then"),
    OPT("liveness", ME_CFG_INT, liveness, "3", 1, 100, NULL, "heartbeats a replica may miss before it is marked down"),
    OPT("max-backoff-ms", ME_CFG_INT, max_backoff_ms, "4000", 10, 600000, NULL,
        "longest gap between heartbeats to a replica that is down"),
    ME_CFG_DEADLINE_OPTION(me_coord_opts_t, "5000"),
    ME_CFG_MAX_QUEUE_OPTION(me_coord_opts_t),
    ME_CFG_MAX_MESSAGE_OPTION(me_coord_opts_t, "64M"),
    OPT("max-batch", ME_CFG_INT, max_batch, "4096", 1, 1000000, NULL, "most documents or ids in one request"),
    ME_METRICS_CFG_OPTIONS(me_coord_opts_t, "127.0.0.1:9200"),
    ME_CURVE_CFG_OPTIONS(me_coord_opts_t),
    OPT("api-key", ME_CFG_STRING, api_key, "", 0, 0, NULL,
        "key the HTTP API (/v1/ on --metrics-addr) requires as 'Authorization: Bearer KEY'; "
        "visible to ps: prefer --api-key-file"),
    OPT("api-key-file", ME_CFG_STRING, api_key_file, "", 0, 0, NULL,
        "file whose first line is the HTTP API's key (keep it 0600); off loopback the API needs a key"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};
