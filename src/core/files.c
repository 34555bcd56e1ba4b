/* files.c - whole-file reads, atomic writes (temporary file, fsync, rename, fsync dir), mkdir -p.
 */
#define _POSIX_C_SOURCE 200809L
#include "core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

loom_status loom_mkdir_p(const char *dir, loom_error *err) {
    char p[4096];
    if (!dir || !*dir)
        return loom_error_set(err, LOOM_ERR_ARG, "an empty directory name");
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return loom_error_set(err, LOOM_ERR_ARG, "%.200s...: path too long", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create directory: %s", dir,
                              strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create directory: %s", dir,
                              strerror(ENOTDIR));
    return LOOM_OK;
}

/* The PID of a name ending in ".tmp.DIGITS", or 0. */
static long tmp_owner(const char *name) {
    const char *t = strstr(name, ".tmp.");
    while (t && strstr(t + 1, ".tmp."))
        t = strstr(t + 1, ".tmp.");
    if (!t || t == name || !t[5])
        return 0;
    long pid = 0;
    for (const char *c = t + 5; *c; c++) {
        if (*c < '0' || *c > '9' || pid > 1L << 40)
            return 0;
        pid = pid * 10 + (*c - '0');
    }
    return pid;
}

int loom_remove_stale_tmp(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth > 0)
                n += loom_remove_stale_tmp(p, depth - 1);
            continue;
        }
        long pid = tmp_owner(e->d_name);
        bool is_alive = pid == (long)getpid() || (pid > 0 && pid <= INT32_MAX &&
                                                  (kill((pid_t)pid, 0) == 0 || errno == EPERM));
        if (S_ISREG(st.st_mode) && pid > 0 && !is_alive && unlink(p) == 0)
            n++;
    }
    closedir(d);
    return n;
}

loom_status loom_file_write_atomic(const char *path, const void *data, size_t len,
                                   loom_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return loom_error_set(err, LOOM_ERR_IO, "%s: write failed: %s", path,
                                  strerror(w < 0 ? e : ENOSPC));
        }
        p += w;
        left -= (size_t)w;
    }
    int rc = fsync(fd), sync_errno = errno; /* close even when fsync fails: no fd leak */
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        sync_errno = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return loom_error_set(err, LOOM_ERR_IO, "%s: write failed: %s", path, strerror(sync_errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot rename into place: %s", path,
                              strerror(e));
    }
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return LOOM_OK;
}

loom_status loom_file_read_all(const char *path, char **out, size_t *len_out, loom_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return loom_error_set(err, LOOM_ERR_IO, "%s: is a directory, expected a file", path);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, f);
        len += r;
        if (r == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return loom_error_set(err, LOOM_ERR_IO, "%s: read failed", path);
    }
    buf[len] = '\0';
    *out = buf;
    if (len_out)
        *len_out = len;
    return LOOM_OK;
}
