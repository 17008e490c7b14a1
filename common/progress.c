#include "common/progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 24
#define REDRAW_S 0.1

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void me_progress_init(me_progress_t *p, const char *label, const char *unit, uint64_t total, int tty) {
    memset(p, 0, sizeof *p);
    p->label = label ? label : "";
    p->unit = unit ? unit : "items";
    p->total = total;
    p->t0 = now_s();
    p->tty = tty < 0 ? isatty(STDERR_FILENO) : tty != 0;
}

double me_progress_elapsed(const me_progress_t *p) { return now_s() - p->t0; }

static void fmt_duration(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e8) { snprintf(buf, cap, "--:--"); return; }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%lu:%02lu", t / 60, t % 60);
}

void me_progress_format(const me_progress_t *p, double elapsed, char *buf, size_t cap) {
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (frac > 1) frac = 1;
    char bar[BAR_WIDTH + 1];
    int fill = (int)(frac * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[BAR_WIDTH] = 0;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char eta[32];
    if (p->done >= p->total) fmt_duration(eta, sizeof eta, 0);
    else if (rate > 0) fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    else snprintf(eta, sizeof eta, "--:--");
    snprintf(buf, cap, "%s [%s] %llu/%llu %s %3.0f%%  %.0f %s/s  ETA %s", p->label, bar,
             (unsigned long long)p->done, (unsigned long long)p->total, p->unit, frac * 100, rate, p->unit, eta);
}

void me_progress_update(me_progress_t *p, uint64_t done) {
    p->done = done;
    if (!p->tty) return;
    double t = now_s();
    if (p->drawn && t - p->last_draw < REDRAW_S && done < p->total) return;
    p->last_draw = t;
    char line[256];
    me_progress_format(p, t - p->t0, line, sizeof line);
    /* \r and erase-to-end-of-line: redraw in place. */
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = 1;
}

void me_progress_finish(me_progress_t *p) {
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}

void me_progress_summary(const me_progress_t *p, FILE *out, const char *verb) {
    double s = me_progress_elapsed(p);
    fprintf(out, "%s %llu %s in %.2f s (%.0f %s/s)\n", verb, (unsigned long long)p->done, p->unit, s,
            s > 0 ? (double)p->done / s : 0.0, p->unit);
}
