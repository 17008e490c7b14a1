/* A progress bar for long work, drawn on stderr only when stderr is a
 * terminal: done/total, percent, rate and ETA, redrawn at most ~10 times a
 * second. Off a terminal it draws nothing; the caller prints one summary
 * line at the end (me_progress_summary). */
#ifndef ME_PROGRESS_H
#define ME_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *label;      /* e.g. "ingest" (not copied) */
    const char *unit;       /* e.g. "docs" (not copied) */
    uint64_t total, done;
    double t0, last_draw;   /* seconds, monotonic */
    int tty;                /* draw at all */
    int drawn;              /* a bar is on screen and must be cleared */
} me_progress_t;

/* tty: 1 draw, 0 never, -1 when stderr is a terminal. */
void me_progress_init(me_progress_t *p, const char *label, const char *unit, uint64_t total, int tty);
/* Records `done` items; redraws when 0.1 s passed since the last draw. */
void me_progress_update(me_progress_t *p, uint64_t done);
/* Clears the bar so later output starts on a clean line. */
void me_progress_finish(me_progress_t *p);
double me_progress_elapsed(const me_progress_t *p);
/* The bar's text for `done` at `elapsed` seconds (no terminal codes). */
void me_progress_format(const me_progress_t *p, double elapsed, char *buf, size_t cap);
/* "<verb> N <unit> in S s (R <unit>/s)" plus newline, e.g. for stdout. */
void me_progress_summary(const me_progress_t *p, FILE *out, const char *verb);

#endif
