#include "common/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

static const char NPY_MAGIC[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

#define FAIL(code, ...) do { snprintf(err, errcap, __VA_ARGS__); return (code); } while (0)

/* ---- header dict: a Python literal such as
 *      {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }      ---- */

typedef struct {
    const char *p, *end;
} lex_t;

static void skip_ws(lex_t *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r')) l->p++;
}

static int eat(lex_t *l, char c) {
    skip_ws(l);
    if (l->p < l->end && *l->p == c) { l->p++; return 1; }
    return 0;
}

/* A quoted string (no escapes: numpy never writes them here) into out. */
static int lex_string(lex_t *l, char *out, size_t cap) {
    skip_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return -1;
    char q = *l->p++;
    const char *s = l->p;
    while (l->p < l->end && *l->p != q) l->p++;
    if (l->p >= l->end) return -1;
    size_t n = (size_t)(l->p - s);
    l->p++;
    if (n >= cap) return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

static int lex_word(lex_t *l, const char *w) {
    skip_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) >= n && memcmp(l->p, w, n) == 0) { l->p += n; return 1; }
    return 0;
}

static int parse_shape(lex_t *l, me_npy_t *a, char *err, size_t errcap) {
    if (!eat(l, '(')) FAIL(ME_EINVAL, "bad .npy header: 'shape' is not a tuple");
    a->ndim = 0;
    for (;;) {
        if (eat(l, ')')) break;
        skip_ws(l);
        if (l->p >= l->end || *l->p < '0' || *l->p > '9')
            FAIL(ME_EINVAL, "bad .npy header: 'shape' must hold non-negative integers");
        uint64_t v = 0;
        while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
            if (v > (UINT64_MAX - 9) / 10) FAIL(ME_EINVAL, "bad .npy header: a dimension in 'shape' overflows");
            v = v * 10 + (uint64_t)(*l->p++ - '0');
        }
        if (l->p < l->end && *l->p == 'L') l->p++;  /* Python 2 longs */
        if (a->ndim == ME_NPY_MAX_DIMS) FAIL(ME_EINVAL, "bad .npy header: more than %d dimensions", ME_NPY_MAX_DIMS);
        a->shape[a->ndim++] = v;
        if (eat(l, ',')) continue;
        if (eat(l, ')')) break;
        FAIL(ME_EINVAL, "bad .npy header: malformed 'shape' tuple");
    }
    return 0;
}

static int parse_dict(me_npy_t *a, const char *hdr, size_t len, char *err, size_t errcap) {
    lex_t l = { hdr, hdr + len };
    char key[32], descr[64];
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    if (!eat(&l, '{')) FAIL(ME_EINVAL, "bad .npy header: does not start with a '{' dictionary");
    for (;;) {
        if (eat(&l, '}')) break;
        if (lex_string(&l, key, sizeof key) != 0) FAIL(ME_EINVAL, "bad .npy header: expected a quoted key");
        if (!eat(&l, ':')) FAIL(ME_EINVAL, "bad .npy header: expected ':' after '%s'", key);
        if (!strcmp(key, "descr")) {
            skip_ws(&l);
            if (l.p < l.end && *l.p == '[')
                FAIL(ME_EINVAL, "unsupported dtype: a structured (record) dtype; only '<f4' (float32) and "
                                "'<f2' (float16) are supported");
            if (lex_string(&l, descr, sizeof descr) != 0) FAIL(ME_EINVAL, "bad .npy header: 'descr' is not a string");
            have_descr++;
        } else if (!strcmp(key, "fortran_order")) {
            if (lex_word(&l, "True")) fortran = 1;
            else if (lex_word(&l, "False")) fortran = 0;
            else FAIL(ME_EINVAL, "bad .npy header: 'fortran_order' is not True or False");
            have_fortran++;
        } else if (!strcmp(key, "shape")) {
            int rc = parse_shape(&l, a, err, errcap);
            if (rc) return rc;
            have_shape++;
        } else {
            FAIL(ME_EINVAL, "bad .npy header: unexpected key '%s'", key);
        }
        if (eat(&l, ',')) continue;
        if (eat(&l, '}')) break;
        FAIL(ME_EINVAL, "bad .npy header: expected ',' or '}' after '%s'", key);
    }
    skip_ws(&l);
    if (l.p != l.end) FAIL(ME_EINVAL, "bad .npy header: text after the closing '}'");
    if (have_descr != 1 || have_fortran != 1 || have_shape != 1)
        FAIL(ME_EINVAL, "bad .npy header: needs each of 'descr', 'fortran_order' and 'shape' exactly once");

    if (!strcmp(descr, "<f4")) a->dtype = ME_DTYPE_F32;
    else if (!strcmp(descr, "<f2")) a->dtype = ME_DTYPE_F16;
    else if (descr[0] == '>')
        FAIL(ME_EINVAL, "unsupported dtype '%s': big-endian; save little-endian '<f4' or '<f2' "
                        "(arr.astype('<f4'))", descr);
    else
        FAIL(ME_EINVAL, "unsupported dtype '%s': only float32 '<f4' and float16 '<f2' are supported "
                        "(convert with arr.astype(np.float32))", descr);
    if (fortran)
        FAIL(ME_EINVAL, "fortran_order is True (column-major data): save a C-order array instead "
                        "(np.save(path, np.ascontiguousarray(arr)))");
    return 0;
}

const char *me_npy_shape_str(const me_npy_t *a, char *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < a->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "", (unsigned long long)a->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, a->ndim == 1 ? ",)" : ")");
    return buf;
}

int me_npy_parse(me_npy_t *a, const void *buf, size_t len, char *err, size_t errcap) {
    const unsigned char *b = buf;
    memset(a, 0, sizeof *a);
    if (memcmp(b, NPY_MAGIC, len < sizeof NPY_MAGIC ? len : sizeof NPY_MAGIC) != 0)
        FAIL(ME_EINVAL, "not a .npy file: bad magic (expected \\x93NUMPY; save with numpy.save)");
    if (len < 8) FAIL(ME_ECORRUPT, "file is truncated: %zu bytes, too short for a .npy header", len);
    int major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        FAIL(ME_EINVAL, "unsupported .npy format version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor);
    size_t prefix = major == 1 ? 10 : 12;
    if (len < prefix) FAIL(ME_ECORRUPT, "file is truncated: %zu bytes, too short for a .npy header", len);
    size_t hlen = major == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                             : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > ME_NPY_MAX_HEADER)
        FAIL(ME_EINVAL, "bad .npy header: header length %zu is too long (limit %u bytes)", hlen,
             (unsigned)ME_NPY_MAX_HEADER);
    if (len - prefix < hlen)
        FAIL(ME_ECORRUPT, "file is truncated: the header says it is %zu bytes, but only %zu bytes follow", hlen,
             len - prefix);
    int rc = parse_dict(a, (const char *)b + prefix, hlen, err, errcap);
    if (rc) return rc;

    size_t esz = me_dtype_size(a->dtype);
    uint64_t count = 1;
    char shp[256];
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] && count > (uint64_t)SIZE_MAX / esz / a->shape[i])
            FAIL(ME_EINVAL, "bad .npy header: shape %s is too large", me_npy_shape_str(a, shp, sizeof shp));
        count *= a->shape[i];
    }
    a->count = count;
    a->version = major;
    a->data_offset = prefix + hlen;
    a->data_bytes = (size_t)count * esz;
    size_t have = len - a->data_offset;
    if (have != a->data_bytes) {
        me_npy_shape_str(a, shp, sizeof shp);
        if (have < a->data_bytes)
            FAIL(ME_ECORRUPT, "file is truncated: shape %s of %s needs %zu data bytes, but only %zu are present",
                 shp, a->dtype == ME_DTYPE_F32 ? "float32" : "float16", a->data_bytes, have);
        FAIL(ME_ECORRUPT, "file length does not match the header: shape %s of %s needs %zu data bytes, "
                          "but %zu are present", shp, a->dtype == ME_DTYPE_F32 ? "float32" : "float16",
             a->data_bytes, have);
    }
    a->data = b + a->data_offset;
    return 0;
}

int me_npy_open(me_npy_t *a, const char *path, char *err, size_t errcap) {
    memset(a, 0, sizeof *a);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) FAIL(ME_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        FAIL(ME_EIO, "%s is not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        FAIL(ME_ECORRUPT, "%s is empty (0 bytes), not a .npy file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (map == MAP_FAILED) FAIL(ME_EIO, "cannot map %s: %s", path, strerror(saved));
    madvise(map, len, MADV_SEQUENTIAL);
    char sub[384];
    int rc = me_npy_parse(a, map, len, sub, sizeof sub);
    if (rc) {
        munmap(map, len);
        memset(a, 0, sizeof *a);
        FAIL(rc, "%s: %s", path, sub);
    }
    a->map_ = map;
    a->map_len_ = len;
    return 0;
}

void me_npy_close(me_npy_t *a) {
    if (!a) return;
    if (a->map_) munmap(a->map_, a->map_len_);
    memset(a, 0, sizeof *a);
}

size_t me_npy_format_header(char *buf, size_t cap, me_dtype_t dtype, const uint64_t *shape, int ndim,
                            int version) {
    if ((dtype != ME_DTYPE_F32 && dtype != ME_DTYPE_F16) || ndim < 0 || ndim > ME_NPY_MAX_DIMS ||
        version < 0 || version > 3)
        return 0;
    char dict[ME_NPY_MAX_DIMS * 24 + 96];
    size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                dtype == ME_DTYPE_F32 ? "<f4" : "<f2");
    for (int i = 0; i < ndim; i++)
        n += (size_t)snprintf(dict + n, sizeof dict - n, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", ndim == 1 ? "," : "");
    if (version == 0) version = 1;  /* our dict is < 1 KiB: always fits 1.0 */
    size_t prefix = version == 1 ? 10 : 12;
    size_t total = (prefix + n + 1 + 63) / 64 * 64;  /* data starts 64-byte aligned */
    size_t hlen = total - prefix;
    if (version == 1 && hlen > 65535) return 0;
    if (total > cap) return 0;
    memcpy(buf, NPY_MAGIC, sizeof NPY_MAGIC);
    buf[6] = (char)version;
    buf[7] = 0;
    for (size_t i = 0; i < prefix - 8; i++) buf[8 + i] = (char)((hlen >> (8 * i)) & 0xff);
    memcpy(buf + prefix, dict, n);
    memset(buf + prefix + n, ' ', hlen - n - 1);
    buf[total - 1] = '\n';
    return total;
}

int me_npy_write(const char *path, me_dtype_t dtype, const uint64_t *shape, int ndim, const void *data,
                 int version, char *err, size_t errcap) {
    char hdr[4096];
    size_t hn = me_npy_format_header(hdr, sizeof hdr, dtype, shape, ndim, version);
    if (!hn) FAIL(ME_EINVAL, "cannot write %s: bad dtype, rank or version", path);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) count *= shape[i];
    size_t bytes = (size_t)count * me_dtype_size(dtype);
    FILE *f = fopen(path, "wb");
    if (!f) FAIL(ME_EIO, "cannot create %s: %s", path, strerror(errno));
    int ok = fwrite(hdr, 1, hn, f) == hn && (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
    int saved = errno;
    if (fclose(f) != 0 && ok) { ok = 0; saved = errno; }
    if (!ok) FAIL(ME_EIO, "cannot write %s: %s", path, strerror(saved));
    return 0;
}

void me_npy_read_f32(const me_npy_t *a, uint64_t first, size_t n, float *out) {
    const unsigned char *p = (const unsigned char *)a->data + first * me_dtype_size(a->dtype);
    if (a->dtype == ME_DTYPE_F32) {
        memcpy(out, p, n * sizeof *out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = me_f16_to_f32(h);
    }
}
