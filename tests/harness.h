/* A small test harness: tests register themselves (TEST(name) { ... }),
 * typed asserts report file:line and abort only the failing test, and the
 * runner ends with one line "N passed, N failed". Also the helpers that
 * integration tests share: temp dirs, free loopback ports, child daemons. */
#ifndef ME_TESTS_HARNESS_H
#define ME_TESTS_HARNESS_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

typedef void (*me_test_fn)(void);
void me_test_register(const char *name, me_test_fn fn);

#define TEST(name)                                                           \
    static void test_##name(void);                                           \
    __attribute__((constructor)) static void test_register_##name(void) {    \
        me_test_register(#name, test_##name);                                \
    }                                                                        \
    static void test_##name(void)

/* The runner's main: [--suite NAME] [--list] [substring ...] runs the tests
 * whose name contains any substring (all when none), one line each, then
 * "NAME: N passed, N failed". Returns non-zero when a test failed. */
int me_test_main(int argc, char **argv);

/* Records the failure and leaves the current test. */
_Noreturn void me_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ASSERT_TRUE(c)                                                        \
    do { if (!(c)) me_test_fail(__FILE__, __LINE__, "expected: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                       \
    do { long long a_ = (long long)(a), b_ = (long long)(b);                  \
         if (a_ != b_) me_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", \
                                    #a, #b, a_, b_); } while (0)
#define ASSERT_OK(e)                                                          \
    do { long long r_ = (long long)(e);                                       \
         if (r_ != 0) me_test_fail(__FILE__, __LINE__, "%s returned %lld", #e, r_); } while (0)
#define ASSERT_NEAR(a, b, tol)                                                \
    do { double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);       \
         if (!(a_ - b_ <= t_ && b_ - a_ <= t_))                               \
             me_test_fail(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %.3g)", \
                          #a, #b, a_, b_, t_); } while (0)
#define ASSERT_STREQ(a, b)                                                    \
    do { const char *a_ = (a), *b_ = (b);                                     \
         if (!a_ || !b_ || strcmp(a_, b_) != 0)                               \
             me_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"",   \
                          #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

/* Deterministic random numbers for tests and benches (splitmix64). */
typedef struct { uint64_t s; } me_rng_t;
uint64_t me_rng_next(me_rng_t *r);
double me_rng_uniform(me_rng_t *r);  /* [0, 1) */
double me_rng_normal(me_rng_t *r);
/* rows random unit vectors of dim floats into out (row-major). */
void me_rng_unit_rows(me_rng_t *r, float *out, int rows, int dim);

/* ---- integration helpers ---- */
/* A fresh directory under $TMPDIR (or /tmp); removed by me_test_rmdir. */
char *me_test_tmpdir(const char *tag);
void me_test_rmdir(const char *path);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int me_test_free_port(void);
/* A base port P below the kernel's ephemeral range (so no client socket
 * takes one meanwhile) with P..P+n-1 and P+off..P+off+n-1 all free now. */
int me_test_free_port_block(int n, int off);
/* Path of a binary built next to the tests ($ME_BIN or the runner's dir). */
const char *me_test_bin(const char *name, char *buf, size_t cap);
/* Starts argv[0] with the given args; stdout/stderr go to log_path. */
pid_t me_test_spawn(char *const argv[], const char *log_path);
/* Runs argv to completion, stdin from /dev/null, stdout and stderr into the
 * given files (NULL: /dev/null); returns the exit code, 128 + the signal
 * when it was killed, -1 when it could not run. */
int me_test_run(char *const argv[], const char *out_path, const char *err_path);
/* me_test_run with stdout and stderr kept in DIR/TAG.out and .err and
 * returned in *out and *err (malloc'd); a failure's stderr is printed. */
int me_test_run_capture(char *const argv[], const char *dir, const char *tag, char **out, char **err);
/* Reads a whole file (malloc'd, NUL-terminated); NULL when unreadable. */
char *me_test_slurp(const char *path);
/* Waits for a spawned child to exit by itself; returns the wait status. */
int me_test_wait(pid_t pid);
/* SIGTERM (or SIGKILL when kill9), then waitpid; returns the exit status. */
int me_test_stop(pid_t pid, int kill9);
/* p-th percentile (0..100) of v[0..n), sorting v in place; 0 when n == 0. */
double me_percentile(double *v, int n, double p);

/* GET http://127.0.0.1:port/path: the status code (or -1) and the body
 * (malloc'd, NUL-terminated) in *body when body != NULL. */
int me_test_http_get(int port, const char *path, char **body);
/* Any method, with a body (data NULL: none); the status, or -1. */
int me_test_http(int port, const char *method, const char *path, const void *data, size_t len,
                 const char *content_type, char **body);
/* The same with extra header lines (each ending "\r\n"; NULL: none). */
int me_test_http_with(int port, const char *method, const char *path, const char *headers, const void *data,
                      size_t len, const char *content_type, char **body);

/* Milliseconds on a monotonic clock. */
double me_test_now_ms(void);

/* ---- bench helpers ---- */
/* One bench option: "NAME VALUE" into an int, a double or a string, or a
 * bare "NAME" flag that sets an int to 1. */
typedef enum { ME_OPT_INT, ME_OPT_DOUBLE, ME_OPT_STR, ME_OPT_FLAG } me_opt_kind_t;
typedef struct {
    const char *name;
    me_opt_kind_t kind;
    void *dst;
} me_opt_t;
/* Parses argv[1..] against opts (ended by a NULL name). -1 when every
 * argument was one of them; otherwise prints usage on stdout and returns
 * main's exit code: 0 for --help, 2 for anything else. */
int me_bench_options(int argc, char **argv, const me_opt_t *opts, const char *usage);
/* The benches' reference: GFLOP/s of single-thread OpenBLAS sgemm
 * (M x K) * (K x N), the median of reps, each repeating the call for at
 * least 20 ms. */
double me_bench_sgemm_gflops(int M, int N, int K, int reps);
/* malloc for benches: n bytes (at least 1), or exit(1) with the program's
 * name and the size on stderr. */
void *me_bench_alloc(size_t n);
/* The python that has Debian's python3-faiss: $ME_PYTHON, else
 * /usr/bin/python3 (a venv or pyenv may come first on PATH). */
const char *me_bench_python(void);
/* A FAISS side script, tests/bench/NAME, ready to run with
 * me_bench_python(): $ME_BENCH_SCRIPTS/NAME, else the source tree above
 * this binary (build/<variant>/bin/), else ./tests/bench/NAME. NULL, with
 * why the FAISS rows are skipped in why[whycap], when that python cannot
 * import faiss or no script is readable. buf: PATH_MAX + 64 bytes. */
const char *me_bench_faiss_script(const char *name, char *buf, size_t cap, char *why, size_t whycap);
/* A (rows, cols) int32 .npy (common/npy.h writes floats only). 0 or -1. */
int me_bench_write_npy_i32(const char *path, const int32_t *v, size_t rows, size_t cols);

#endif
