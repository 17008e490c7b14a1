#include "tests/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "common/hash.h"

#define ME_TEST_MAX 512

static struct { const char *name; me_test_fn fn; } g_tests[ME_TEST_MAX];
static int g_ntests;
static jmp_buf g_jmp;
/* Children started with me_test_spawn and not stopped yet: a failing test
 * leaves through longjmp, so the runner kills what it left running. */
static pid_t g_children[256];
static int g_nchildren;

static void forget_child(pid_t pid) {
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] == pid) { g_children[i] = g_children[--g_nchildren]; return; }
}

static void kill_children(void) {
    for (int i = 0; i < g_nchildren; i++) {
        kill(g_children[i], SIGKILL);
        waitpid(g_children[i], NULL, 0);
    }
    g_nchildren = 0;
}
static char g_self_dir[4096];

void me_test_register(const char *name, me_test_fn fn) {
    if (g_ntests < ME_TEST_MAX) {
        g_tests[g_ntests].name = name;
        g_tests[g_ntests].fn = fn;
        g_ntests++;
    }
}

void me_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    longjmp(g_jmp, 1);
}

double me_test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int me_test_main(int argc, char **argv) {
    /* static: these live across setjmp/longjmp. */
    static const char *suite = "tests";
    static const char *filters[64];
    static int nfilters, passed, failed, t;
    static double t0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--suite") == 0 && i + 1 < argc) suite = argv[++i];
        else if (strcmp(argv[i], "--list") == 0) {
            for (int j = 0; j < g_ntests; j++) printf("%s\n", g_tests[j].name);
            return 0;
        } else if (nfilters < 64) filters[nfilters++] = argv[i];
    }
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(g_self_dir, sizeof g_self_dir, "%.*s", (int)(slash - argv[0]), argv[0]);
    else snprintf(g_self_dir, sizeof g_self_dir, ".");
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (t = 0; t < g_ntests; t++) {
        int match = nfilters == 0;
        for (int f = 0; f < nfilters && !match; f++)
            match = strstr(g_tests[t].name, filters[f]) != NULL;
        if (!match) continue;
        t0 = me_test_now_ms();
        if (setjmp(g_jmp) == 0) {
            g_tests[t].fn();
            kill_children();
            printf("ok   %-44s %8.0f ms\n", g_tests[t].name, me_test_now_ms() - t0);
            passed++;
        } else {
            kill_children();
            printf("FAIL %-44s %8.0f ms\n", g_tests[t].name, me_test_now_ms() - t0);
            failed++;
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}

uint64_t me_rng_next(me_rng_t *r) {
    return me_splitmix64(&r->s);
}

double me_rng_uniform(me_rng_t *r) { return (me_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double me_rng_normal(me_rng_t *r) {
    double u1 = me_rng_uniform(r), u2 = me_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void me_rng_unit_rows(me_rng_t *r, float *out, int rows, int dim) {
    for (int row = 0; row < rows; row++) {
        float *v = out + (size_t)row * dim;
        double n2 = 0;
        for (int j = 0; j < dim; j++) {
            v[j] = (float)me_rng_normal(r);
            n2 += (double)v[j] * v[j];
        }
        float inv = (float)(1.0 / sqrt(n2 > 0 ? n2 : 1));
        for (int j = 0; j < dim; j++) v[j] *= inv;
    }
}

char *me_test_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/metaembed-%s-XXXXXX", base, tag);
    char *dir = mkdtemp(tmpl);
    return dir ? strdup(dir) : NULL;
}

void me_test_rmdir(const char *path) {
    DIR *d = opendir(path);
    if (!d) { unlink(path); return; }
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) me_test_rmdir(sub);
        else unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

static int port_free(int port);

/* Ports handed out by this process, so two calls never give the same one. */
static int g_ports[256], g_nports;

static int handed_out(int port) {
    for (int i = 0; i < g_nports; i++)
        if (g_ports[i] == port) return 1;
    return 0;
}

/* Below the kernel's ephemeral range (32768+ here): a client that keeps
 * reconnecting to a port in that range while nothing listens can be given
 * that very port as its own and connect to itself (TCP simultaneous open),
 * and the daemon restarted there then cannot bind it. */
int me_test_free_port(void) {
    static me_rng_t r;
    if (!r.s) r.s = (uint64_t)getpid() * 104729 + (uint64_t)me_test_now_ms();
    for (int tries = 0; tries < 1000; tries++) {
        int port = 20000 + (int)(me_rng_next(&r) % 10000);
        if (handed_out(port) || !port_free(port)) continue;
        if (g_nports < (int)(sizeof g_ports / sizeof g_ports[0])) g_ports[g_nports++] = port;
        return port;
    }
    return -1;
}

static int port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int me_test_free_port_block(int n, int off) {
    me_rng_t r = { (uint64_t)getpid() * 7919 + (uint64_t)me_test_now_ms() };
    for (int tries = 0; tries < 200; tries++) {
        int base = 20000 + (int)(me_rng_next(&r) % 9000);
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = !handed_out(base + i) && !handed_out(base + off + i) && port_free(base + i) && port_free(base + off + i);
        if (ok) return base;
    }
    return -1;
}

const char *me_test_bin(const char *name, char *buf, size_t cap) {
    const char *dir = getenv("ME_BIN");
    snprintf(buf, cap, "%s/%s", dir && *dir ? dir : g_self_dir, name);
    return buf;
}

pid_t me_test_spawn(char *const argv[], const char *log_path) {
    pid_t pid = fork();
    if (pid > 0 && g_nchildren < (int)(sizeof g_children / sizeof g_children[0])) g_children[g_nchildren++] = pid;
    if (pid != 0) return pid;
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
    }
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int me_test_run(char *const argv[], const char *out_path, const char *err_path) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int me_test_run_capture(char *const argv[], const char *dir, const char *tag, char **out, char **err) {
    char o[700], e[700];
    snprintf(o, sizeof o, "%s/%s.out", dir, tag);
    snprintf(e, sizeof e, "%s/%s.err", dir, tag);
    int code = me_test_run(argv, o, e);
    *out = me_test_slurp(o);
    *err = me_test_slurp(e);
    if (code) fprintf(stderr, "    %s exit %d: %s\n", tag, code, *err ? *err : "");
    return code;
}

char *me_test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = buf ? fread(buf, 1, (size_t)(n > 0 ? n : 0), f) : 0;
    if (buf) buf[got] = 0;
    fclose(f);
    return buf;
}

int me_test_wait(pid_t pid) {
    int status = 0;
    forget_child(pid);
    if (waitpid(pid, &status, 0) != pid) return -1;
    return status;
}

int me_test_stop(pid_t pid, int kill9) {
    if (pid <= 0) return -1;
    forget_child(pid);
    kill(pid, kill9 ? SIGKILL : SIGTERM);
    int status = 0;
    for (int i = 0; i < 3000; i++) {  /* up to 30 s, then force */
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) return -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double me_percentile(double *v, int n, double p) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double pos = p / 100.0 * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

int me_test_http_get(int port, const char *path, char **body) {
    return me_test_http(port, "GET", path, NULL, 0, NULL, body);
}

int me_test_http(int port, const char *method, const char *path, const void *data, size_t len_in,
                 const char *content_type, char **body) {
    return me_test_http_with(port, method, path, NULL, data, len_in, content_type, body);
}

int me_test_http_with(int port, const char *method, const char *path, const char *headers, const void *data,
                      size_t len_in, const char *content_type, char **body) {
    if (body) *body = NULL;
    if (!headers) headers = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    char req[4096];
    int n = data ? snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: %s\r\n"
                                             "Content-Length: %zu\r\n\r\n", method, path, headers,
                            content_type ? content_type : "application/octet-stream", len_in)
                 : snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", method, path, headers);
    if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) { close(fd); return -1; }
    for (size_t off = 0; data && off < len_in;) {
        ssize_t wr = write(fd, (const char *)data + off, len_in - off);
        if (wr <= 0) break;  /* the server may refuse early (413) and close */
        off += (size_t)wr;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf) return -1;
    buf[len] = 0;
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *sep = strstr(buf, "\r\n\r\n");
    if (body) *body = strdup(sep ? sep + 4 : "");
    free(buf);
    return status;
}

int me_bench_options(int argc, char **argv, const me_opt_t *opts, const char *usage) {
    for (int i = 1; i < argc; i++) {
        const me_opt_t *o = opts;
        /* An option that takes a value and has none is not understood. */
        while (o->name && (strcmp(argv[i], o->name) != 0 || (o->kind != ME_OPT_FLAG && i + 1 >= argc))) o++;
        if (!o->name) {
            fputs(usage, stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
        switch (o->kind) {
        case ME_OPT_FLAG: *(int *)o->dst = 1; break;
        case ME_OPT_INT: *(int *)o->dst = atoi(argv[++i]); break;
        case ME_OPT_DOUBLE: *(double *)o->dst = atof(argv[++i]); break;
        case ME_OPT_STR: *(const char **)o->dst = argv[++i]; break;
        }
    }
    return -1;
}

double me_bench_sgemm_gflops(int M, int N, int K, int reps) {
    openblas_set_num_threads(1);
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)K * N, sizeof(float));
    float *c = calloc((size_t)M * N, sizeof(float));
    if (!a || !b || !c) abort();
    me_rng_t rng = { 11 };
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)me_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)me_rng_normal(&rng);
    double t[32];
    if (reps > 32) reps = 32;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    for (int r = 0; r < reps; r++) {
        double t0 = me_test_now_ms();
        int inner = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
            inner++;
        } while (me_test_now_ms() - t0 < 20);
        t[r] = (me_test_now_ms() - t0) / 1e3 / inner;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * (double)K / me_percentile(t, reps, 50) * 1e-9;
}

void *me_bench_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", program_invocation_short_name, n);
        exit(1);
    }
    return p;
}

const char *me_bench_python(void) {
    const char *env = getenv("ME_PYTHON");
    if (env && *env) return env;
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static const char *bench_script(const char *name, char *buf, size_t cap) {
    const char *dir = getenv("ME_BENCH_SCRIPTS");
    if (dir && *dir) {
        snprintf(buf, cap, "%s/%s", dir, name);
        return access(buf, R_OK) == 0 ? buf : NULL;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) *slash = 0;
        char rel[PATH_MAX + 64];
        snprintf(rel, sizeof rel, "%s/../../../tests/bench/%s", self, name);
        if (cap >= PATH_MAX && realpath(rel, buf) && access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, cap, "tests/bench/%s", name);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *me_bench_faiss_script(const char *name, char *buf, size_t cap, char *why, size_t whycap) {
    const char *py = me_bench_python();
    char *check[] = { (char *)py, "-c", "import faiss", NULL };
    if (py[0] != '/' || me_test_run(check, NULL, NULL) != 0) {
        snprintf(why, whycap,
                 "FAISS not found (%s cannot import faiss): install it with `apt-get install python3-faiss` "
                 "(deploy/install-deps.sh does); FAISS rows skipped", py);
        return NULL;
    }
    const char *script = bench_script(name, buf, cap);
    if (!script)
        snprintf(why, whycap, "tests/bench/%s not found (set ME_BENCH_SCRIPTS to its folder); FAISS rows skipped",
                 name);
    return script;
}

int me_bench_write_npy_i32(const char *path, const int32_t *v, size_t rows, size_t cols) {
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows,
                      cols);
    size_t hlen = ((size_t)10 + dl + 1 + 63) / 64 * 64 - 10;  /* magic+version+len, then dict + '\n' */
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                              (unsigned char)(hlen >> 8) };
    fwrite(pre, 1, sizeof pre, f);
    fputs(dict, f);
    for (size_t i = (size_t)dl; i + 1 < hlen; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(v, sizeof *v, rows * cols, f);
    return fclose(f) == 0 ? 0 : -1;
}
