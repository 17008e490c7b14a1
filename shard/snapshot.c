#include "shard/snapshot.h"

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
