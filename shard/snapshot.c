#include "shard/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/error.h"
#include "common/log.h"
#include "common/validate.h"

#define MANIFEST "METAEMBED-SNAPSHOT"

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int snap_path(char *out, size_t cap, const char *data_dir, const char *id) {
    int n = id ? snprintf(out, cap, "%s.snapshots/%s", data_dir, id) : snprintf(out, cap, "%s.snapshots", data_dir);
    return n > 0 && (size_t)n < cap ? 0 : ME_ETOOBIG;
}

/* Bytes of the regular files in dir (one level: a checkpoint is flat). */
static uint64_t dir_bytes(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    char p[4400];
    struct stat st;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static int read_manifest(const char *dir, me_shard_snapshot_t *info) {
    char p[4400];
    snprintf(p, sizeof p, "%s/" MANIFEST, dir);
    FILE *f = fopen(p, "r");
    if (!f) return ME_ENOTFOUND;
    unsigned long long created = 0, docs = 0;
    int ok = fscanf(f, "created_ms %llu documents %llu", &created, &docs) == 2;
    fclose(f);
    if (!ok) return ME_ECORRUPT;
    info->created_ms = created;
    info->documents = docs;
    info->bytes = dir_bytes(dir);
    return 0;
}

int me_snapshot_create(me_shard_t *s, const char *id, me_shard_snapshot_t *out, char *err, size_t errcap) {
    if (me_check_snapshot_id(id, err, errcap) != 0) return ME_EINVAL;
    char root[4096], dir[4200];
    if (snap_path(root, sizeof root, s->opts.data_dir, NULL) || snap_path(dir, sizeof dir, s->opts.data_dir, id)) {
        snprintf(err, errcap, "the snapshot path is too long");
        return ME_ETOOBIG;
    }
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot make %s: %s", root, strerror(errno));
        return ME_EIO;
    }
    struct stat st;
    if (stat(dir, &st) == 0) {
        snprintf(err, errcap, "snapshot '%s' already exists on this shard", id);
        return ME_EEXIST;
    }
    uint64_t docs = atomic_load(&s->documents), t0 = wall_ms();
    int rc = me_storage_checkpoint(s->storage, dir, err, errcap);
    if (rc) return rc;
    char p[4700];
    snprintf(p, sizeof p, "%s/" MANIFEST, dir);
    FILE *f = fopen(p, "w");
    if (!f || fprintf(f, "created_ms %llu documents %llu\n", (unsigned long long)t0, (unsigned long long)docs) < 0 ||
        fclose(f) != 0) {
        snprintf(err, errcap, "cannot write %s: %s", p, strerror(errno));
        return ME_EIO;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    read_manifest(dir, out);
    me_info("snapshot %s: %llu documents, %llu bytes, in %llu ms", id, (unsigned long long)out->documents,
            (unsigned long long)out->bytes, (unsigned long long)(wall_ms() - t0));
    return 0;
}

static int cmp_info(const void *a, const void *b) {
    return strcmp(((const me_shard_snapshot_t *)a)->id, ((const me_shard_snapshot_t *)b)->id);
}

int me_snapshot_list(const char *data_dir, me_shard_snapshot_t **out, size_t *n, char *err, size_t errcap) {
    *out = NULL;
    *n = 0;
    char root[4096];
    if (snap_path(root, sizeof root, data_dir, NULL)) return ME_ETOOBIG;
    DIR *d = opendir(root);
    if (!d) return 0;  /* none yet */
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char sub[64];
        if (me_check_snapshot_id(e->d_name, sub, sizeof sub) != 0) continue;
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        me_shard_snapshot_t info = { 0 };
        snprintf(info.id, sizeof info.id, "%.64s", e->d_name);
        if (read_manifest(dir, &info) != 0) continue;  /* half made (a crash mid-create): not a snapshot */
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            me_shard_snapshot_t *ni = realloc(*out, cap * sizeof *ni);
            if (!ni) { rc = ME_ENOMEM; break; }
            *out = ni;
        }
        (*out)[(*n)++] = info;
    }
    closedir(d);
    if (rc) snprintf(err, errcap, "out of memory listing snapshots");
    else if (*n) qsort(*out, *n, sizeof **out, cmp_info);
    return rc;
}

/* Removes a flat directory (a checkpoint has no subdirectories). */
static int remove_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    char p[4700];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

int me_snapshot_delete(const char *data_dir, const char *id, char *err, size_t errcap) {
    if (me_check_snapshot_id(id, err, errcap) != 0) return ME_EINVAL;
    char dir[4400];
    if (snap_path(dir, sizeof dir, data_dir, id)) return ME_ETOOBIG;
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errcap, "snapshot '%s' does not exist on this shard (list them to see them)", id);
        return ME_ENOTFOUND;
    }
    if (remove_flat(dir) != 0) {
        snprintf(err, errcap, "cannot remove %s: %s", dir, strerror(errno));
        return ME_EIO;
    }
    return 0;
}

/* Every file of from into to: table files (immutable) as hard links, the
 * rest (CURRENT, MANIFEST, OPTIONS, logs: files a store appends to or
 * replaces) as copies, so the restored store never writes through a link
 * into the snapshot. */
static int link_all(const char *from, const char *to, char *err, size_t errcap) {
    DIR *d = opendir(from);
    if (!d) { snprintf(err, errcap, "cannot read %s: %s", from, strerror(errno)); return ME_EIO; }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, MANIFEST)) continue;
        char a[4700], b[4700];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        size_t nl = strlen(e->d_name);
        if (nl > 4 && !strcmp(e->d_name + nl - 4, ".sst") && link(a, b) == 0) continue;
        /* Copy (or the link failed: another file system). */
        int in = open(a, O_RDONLY), outfd = in >= 0 ? open(b, O_WRONLY | O_CREAT | O_EXCL, 0644) : -1;
        char buf[1 << 16];
        ssize_t got;
        while (outfd >= 0 && (got = read(in, buf, sizeof buf)) > 0)
            if (write(outfd, buf, (size_t)got) != got) { got = -1; break; }
        if (in < 0 || outfd < 0 || fsync(outfd) != 0) {
            snprintf(err, errcap, "cannot copy %s to %s: %s", a, b, strerror(errno));
            rc = ME_EIO;
        }
        if (in >= 0) close(in);
        if (outfd >= 0) close(outfd);
    }
    closedir(d);
    return rc;
}

int me_snapshot_restore(const char *data_dir, const char *id, char *err, size_t errcap) {
    if (me_check_snapshot_id(id, err, errcap) != 0) return ME_EINVAL;
    char dir[4400], aside[4300];
    if (snap_path(dir, sizeof dir, data_dir, id)) return ME_ETOOBIG;
    me_shard_snapshot_t info;
    if (read_manifest(dir, &info) != 0) {
        snprintf(err, errcap, "no snapshot '%s' in %s.snapshots (list them with 'metaembed snapshot list')", id,
                 data_dir);
        return ME_ENOTFOUND;
    }
    struct stat st;
    if (stat(data_dir, &st) == 0) {
        snprintf(aside, sizeof aside, "%s.before-%s-%llu", data_dir, id, (unsigned long long)wall_ms());
        if (rename(data_dir, aside) != 0) {
            snprintf(err, errcap, "cannot move %s aside: %s", data_dir, strerror(errno));
            return ME_EIO;
        }
        me_info("restore: the data directory before it is kept as %s", aside);
    }
    if (mkdir(data_dir, 0755) != 0) {
        snprintf(err, errcap, "cannot make %s: %s", data_dir, strerror(errno));
        return ME_EIO;
    }
    int rc = link_all(dir, data_dir, err, errcap);
    if (rc == 0)
        me_info("restored snapshot %s (%llu documents, taken at %llu ms since the epoch)", id,
                (unsigned long long)info.documents, (unsigned long long)info.created_ms);
    return rc;
}

/* ---- export / import ---- */

#define CHECKSUMS "CHECKSUMS"

int me_snapshot_export(const char *data_dir, const char *id, const char *archive, char *err, size_t errcap) {
    if (me_check_snapshot_id(id, err, errcap) != 0) return ME_EINVAL;
    char dir[4400];
    me_shard_snapshot_t info;
    if (snap_path(dir, sizeof dir, data_dir, id) || read_manifest(dir, &info) != 0) {
        snprintf(err, errcap, "no snapshot '%s' in %s.snapshots", id, data_dir);
        return ME_ENOTFOUND;
    }
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, archive) != ARCHIVE_OK) {
        snprintf(err, errcap, "cannot write %s: %s", archive, archive_error_string(a));
        archive_write_free(a);
        return ME_EIO;
    }
    DIR *d = opendir(dir);
    char *sums = NULL;
    size_t sums_len = 0;
    FILE *sf = open_memstream(&sums, &sums_len);
    int rc = d && sf ? 0 : ME_ENOMEM;
    struct dirent *e;
    static char buf[1 << 16];
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[4700], name[400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%s/%.300s", id, e->d_name);
        struct stat st;
        int fd = open(p, O_RDONLY);
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            if (fd >= 0) close(fd);
            continue;
        }
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, name);
        archive_entry_set_size(ae, st.st_size);
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, 0644);
        if (archive_write_header(a, ae) != ARCHIVE_OK) rc = ME_EIO;
        archive_entry_free(ae);
        uLong crc = crc32(0L, Z_NULL, 0);
        ssize_t got;
        while (rc == 0 && (got = read(fd, buf, sizeof buf)) > 0) {
            crc = crc32(crc, (const Bytef *)buf, (uInt)got);
            if (archive_write_data(a, buf, (size_t)got) != got) rc = ME_EIO;
        }
        close(fd);
        fprintf(sf, "%08lx %lld %s\n", crc, (long long)st.st_size, e->d_name);
    }
    if (d) closedir(d);
    if (sf) fclose(sf);
    if (rc == 0) {
        /* Last, so an archive cut short has no checksum list and is refused. */
        char name[100];
        snprintf(name, sizeof name, "%s/" CHECKSUMS, id);
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, name);
        archive_entry_set_size(ae, (la_int64_t)sums_len);
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, 0644);
        if (archive_write_header(a, ae) != ARCHIVE_OK || archive_write_data(a, sums, sums_len) != (la_ssize_t)sums_len)
            rc = ME_EIO;
        archive_entry_free(ae);
    }
    if (rc == ME_EIO) snprintf(err, errcap, "writing %s: %s", archive, archive_error_string(a));
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0) {
        snprintf(err, errcap, "closing %s: %s", archive, archive_error_string(a));
        rc = ME_EIO;
    }
    archive_write_free(a);
    free(sums);
    if (rc == ME_ENOMEM) snprintf(err, errcap, "out of memory");
    return rc;
}

typedef struct {
    char name[300];
    long long size;
    unsigned long crc;
} sum_t;

int me_snapshot_import(const char *data_dir, const char *archive, char *id_out, size_t id_cap, char *err,
                       size_t errcap) {
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, archive, 1 << 16) != ARCHIVE_OK) {
        snprintf(err, errcap, "cannot read %s: %s", archive, archive_error_string(a));
        archive_read_free(a);
        return ME_EIO;
    }
    char root[4096], tmp[4400] = "", id[65] = "";
    snap_path(root, sizeof root, data_dir, NULL);
    mkdir(root, 0755);
    sum_t *got = NULL, *want = NULL;
    size_t ngot = 0, nwant = 0;
    int rc = 0, have_sums = 0;
    struct archive_entry *ae;
    static char buf[1 << 16];
    while (rc == 0) {
        int h = archive_read_next_header(a, &ae);
        if (h == ARCHIVE_EOF) break;
        if (h != ARCHIVE_OK) {
            snprintf(err, errcap, "%s is not a snapshot archive or is damaged: %s", archive, archive_error_string(a));
            rc = ME_ECORRUPT;
            break;
        }
        const char *path = archive_entry_pathname(ae), *slash = path ? strchr(path, '/') : NULL;
        char eid[65], sub[64];
        if (!slash || slash - path > 64 || archive_entry_filetype(ae) != AE_IFREG || have_sums) {
            snprintf(err, errcap, "%s: unexpected member '%.200s' (damaged, or not made by snapshot export)", archive,
                     path ? path : "");
            rc = ME_ECORRUPT;
            break;
        }
        snprintf(eid, sizeof eid, "%.*s", (int)(slash - path), path);
        const char *file = slash + 1;
        if (me_check_snapshot_id(eid, sub, sizeof sub) != 0 || (id[0] && strcmp(eid, id) != 0) || !file[0] ||
            strchr(file, '/') || file[0] == '.') {
            snprintf(err, errcap, "%s: unexpected member '%.200s'", archive, path);
            rc = ME_ECORRUPT;
            break;
        }
        if (!id[0]) {
            snprintf(id, sizeof id, "%s", eid);
            char final[4400];
            struct stat st;
            snap_path(final, sizeof final, data_dir, id);
            if (stat(final, &st) == 0) {
                snprintf(err, errcap, "snapshot '%s' already exists in %s; delete it first", id, root);
                rc = ME_EEXIST;
                break;
            }
            snprintf(tmp, sizeof tmp, "%s/.import-%s", root, id);
            remove_flat(tmp);
            if (mkdir(tmp, 0755) != 0) {
                snprintf(err, errcap, "cannot make %s: %s", tmp, strerror(errno));
                rc = ME_EIO;
                break;
            }
        }
        if (!strcmp(file, CHECKSUMS)) {
            /* The list: read it whole (it is small), then parse it. */
            la_int64_t sz = archive_entry_size(ae);
            char *text = sz >= 0 && sz < (1 << 20) ? malloc((size_t)sz + 1) : NULL;
            if (!text || archive_read_data(a, text, (size_t)sz) != (la_ssize_t)sz) {
                free(text);
                snprintf(err, errcap, "%s: the checksum list is damaged", archive);
                rc = ME_ECORRUPT;
                break;
            }
            text[sz] = 0;
            char *save = NULL;
            for (char *line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
                sum_t s;
                if (sscanf(line, "%lx %lld %299s", &s.crc, &s.size, s.name) != 3) {
                    snprintf(err, errcap, "%s: the checksum list is damaged", archive);
                    rc = ME_ECORRUPT;
                    break;
                }
                sum_t *nw = realloc(want, (nwant + 1) * sizeof *nw);
                if (!nw) { rc = ME_ENOMEM; break; }
                want = nw;
                want[nwant++] = s;
            }
            free(text);
            have_sums = 1;
            continue;
        }
        char p[4700];
        snprintf(p, sizeof p, "%s/%s", tmp, file);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) {
            snprintf(err, errcap, "cannot write %s: %s", p, strerror(errno));
            rc = ME_EIO;
            break;
        }
        uLong crc = crc32(0L, Z_NULL, 0);
        long long total = 0;
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
            crc = crc32(crc, (const Bytef *)buf, (uInt)n);
            total += n;
            if (write(fd, buf, (size_t)n) != n) { rc = ME_EIO; break; }
        }
        if (n < 0) {
            snprintf(err, errcap, "%s is damaged: %s", archive, archive_error_string(a));
            rc = ME_ECORRUPT;
        }
        if (fsync(fd) != 0 && rc == 0) rc = ME_EIO;
        close(fd);
        sum_t *ng = realloc(got, (ngot + 1) * sizeof *ng);
        if (!ng) { rc = ME_ENOMEM; break; }
        got = ng;
        snprintf(got[ngot].name, sizeof got[ngot].name, "%s", file);
        got[ngot].size = total;
        got[ngot++].crc = crc;
    }
    archive_read_free(a);
    /* Every file listed, every listed file there, sizes and CRCs equal. */
    if (rc == 0 && (!id[0] || !have_sums)) {
        snprintf(err, errcap, "%s has no checksum list: cut short, or not made by snapshot export", archive);
        rc = ME_ECORRUPT;
    }
    if (rc == 0 && nwant != ngot) {
        snprintf(err, errcap, "%s holds %zu files but its checksum list names %zu: damaged", archive, ngot, nwant);
        rc = ME_ECORRUPT;
    }
    for (size_t i = 0; rc == 0 && i < ngot; i++) {
        size_t k = 0;
        while (k < nwant && strcmp(want[k].name, got[i].name) != 0) k++;
        if (k == nwant || want[k].size != got[i].size || want[k].crc != got[i].crc) {
            snprintf(err, errcap, "%s: %s does not match its checksum: the archive is damaged; nothing was imported",
                     archive, got[i].name);
            rc = ME_ECORRUPT;
        }
    }
    if (rc == 0) {
        char final[4400];
        snap_path(final, sizeof final, data_dir, id);
        if (rename(tmp, final) != 0) {
            snprintf(err, errcap, "cannot move %s to %s: %s", tmp, final, strerror(errno));
            rc = ME_EIO;
        }
    }
    if (rc && tmp[0]) remove_flat(tmp);
    if (rc == 0 && id_out) snprintf(id_out, id_cap, "%s", id);
    if (rc == ME_ENOMEM) snprintf(err, errcap, "out of memory");
    free(got);
    free(want);
    return rc;
}
