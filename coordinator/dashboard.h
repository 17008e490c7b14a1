/* The coordinator's built-in dashboard (served at / on --metrics-addr): one
 * self-contained page, nothing loaded from other hosts, that polls /metrics
 * every two seconds and shows the cluster map, each replica's health and
 * document count, QPS and latency over the last minutes. */
#ifndef ME_DASHBOARD_H
#define ME_DASHBOARD_H

extern const char me_dashboard_html[];

#endif
