/* dist.c - the processes of one loom job. Under mpirun (or another MPI launcher) every process
 * runs the same command: this file joins them (MPI_Init), says which one this is and how many
 * there are, and provides the few collective operations the data-parallel trainer and the
 * shared work queues need. A plain run (no launcher in the environment) is a world of one
 * process and makes no MPI call at all, so the binary runs anywhere without mpirun.
 *
 * Every collective is called from the main thread only (MPI_THREAD_FUNNELED), outside the
 * OpenMP regions. */
#include "core.h"

#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <unistd.h>

/* The message of a collective failure seen by the processes that did not fail themselves. */
static const char other_failed[] = "another process of the job failed (its message says why)";

static struct {
    bool is_mpi; /* MPI_Init ran */
    int rank, size, local_size;
    MPI_Win win;    /* the shared counter of the work queues (rank 0 holds it) */
    long *ctr;      /* rank 0's counter memory */
    bool has_win;   /* a queue is open */
    bool is_agreed; /* every process knows of the failure being reported */
    bool is_solo;   /* this process works alone for now (a unit of a shared queue) */
} g = {.size = 1, .local_size = 1};

/* True when a launcher started this process as one of a job. */
static bool is_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE") ||
           getenv("PMI_RANK");
}

loom_status loom_dist_init(int *argc, char ***argv, loom_error *err) {
    if (g.is_mpi || !is_launched())
        return LOOM_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return loom_error_set(err, LOOM_ERR_IO,
                              "MPI: the launcher's environment is set but MPI_Init failed: run "
                              "under the same MPI's mpirun, or without it");
    g.is_mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &g.local_size);
    MPI_Comm_free(&local);
    return LOOM_OK;
}

void loom_dist_finalize(void) {
    if (!g.is_mpi)
        return;
    loom_dist_queue_close();
    MPI_Finalize();
    g.is_mpi = false;
}

void loom_dist_abort(int code) {
    if (g.is_mpi && g.size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
}

int loom_dist_rank(void) { return g.is_solo ? 0 : g.rank; }
int loom_dist_size(void) { return g.is_solo ? 1 : g.size; }
int loom_dist_job_rank(void) { return g.rank; }
int loom_dist_job_size(void) { return g.size; }
void loom_dist_set_solo(bool on) { g.is_solo = on; }
void dist_mark_agreed(void) { g.is_agreed = true; }
bool loom_dist_is_agreed(void) { return g.is_agreed; }

int loom_dist_default_threads(void) {
    int procs = omp_get_num_procs(); /* the cores this process may run on */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    /* processes sharing a host without being bound to cores share its cores */
    if (g.local_size > 1 && procs >= online)
        procs /= g.local_size;
    return procs > 0 ? procs : 1;
}

void dist_sum_i64(int64_t *v, size_t n) {
    for (size_t done = 0; loom_dist_size() > 1 && done < n;) {
        int part = n - done > (1u << 28) ? 1 << 28 : (int)(n - done);
        MPI_Allreduce(MPI_IN_PLACE, v + done, part, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        done += (size_t)part;
    }
}

void dist_max_i32(int32_t *v, size_t n) {
    for (size_t done = 0; loom_dist_size() > 1 && done < n;) {
        int part = n - done > (1u << 28) ? 1 << 28 : (int)(n - done);
        MPI_Allreduce(MPI_IN_PLACE, v + done, part, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
        done += (size_t)part;
    }
}

void loom_dist_allgather(const void *mine, size_t bytes, void *all) {
    if (loom_dist_size() == 1) {
        memmove(all, mine, bytes);
        return;
    }
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

void dist_allgather_parts(void *all, size_t unit, long n) {
    int P = loom_dist_size();
    if (P == 1)
        return;
    int *counts = malloc(sizeof(int) * (size_t)P), *displs = malloc(sizeof(int) * (size_t)P);
    if (!counts || !displs || (double)n * unit > 2147483647.0)
        loom_dist_abort(1); /* the others are in the same call: the job cannot go on */
    for (int r = 0; r < P; r++) {
        long lo = n * r / P, hi = n * (r + 1) / P;
        counts[r] = (int)((size_t)(hi - lo) * unit);
        displs[r] = (int)((size_t)lo * unit);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, displs, MPI_BYTE,
                   MPI_COMM_WORLD);
    free(counts);
    free(displs);
}

void dist_bcast(void *buf, size_t bytes, int root) {
    for (size_t done = 0; loom_dist_size() > 1 && done < bytes;) {
        int part = bytes - done > (1u << 30) ? 1 << 30 : (int)(bytes - done);
        MPI_Bcast((char *)buf + done, part, MPI_BYTE, root, MPI_COMM_WORLD);
        done += (size_t)part;
    }
}

loom_status loom_dist_agree(loom_status st, loom_error *err) {
    if (loom_dist_size() == 1)
        return st;
    int32_t v = (int32_t)st;
    dist_max_i32(&v, 1);
    if (v != LOOM_OK)
        g.is_agreed = true;
    if (st == LOOM_OK && v != LOOM_OK)
        return loom_error_set(err, (loom_status)v, "%s", other_failed);
    return st;
}

bool loom_dist_is_other_failure(const loom_error *err) {
    return err && strcmp(err->msg, other_failed) == 0;
}

/* ---- the shared work queue: a counter on rank 0 that every process advances by one with an
 * atomic fetch-and-add (one-sided MPI), so a process takes the next unit as soon as it is free
 * and no process waits for a coordinator. ---- */

void loom_dist_queue_open(void) {
    if (g.size == 1 || g.has_win)
        return;
    MPI_Aint bytes = g.rank == 0 ? (MPI_Aint)sizeof(long) : 0;
    MPI_Win_allocate(bytes, sizeof(long), MPI_INFO_NULL, MPI_COMM_WORLD, &g.ctr, &g.win);
    if (g.rank == 0) {
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, g.win);
        *g.ctr = 0;
        MPI_Win_unlock(0, g.win);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    g.has_win = true;
}

long loom_dist_queue_next(long *local) {
    if (g.size == 1 || !g.has_win)
        return (*local)++;
    long one = 1, got = 0;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, g.win);
    MPI_Fetch_and_op(&one, &got, MPI_LONG, 0, 0, MPI_SUM, g.win);
    MPI_Win_unlock(0, g.win);
    return got;
}

void loom_dist_queue_close(void) {
    if (!g.has_win)
        return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Win_free(&g.win);
    g.has_win = false;
}

void loom_dist_barrier(void) {
    if (loom_dist_size() > 1)
        MPI_Barrier(MPI_COMM_WORLD);
}

/* ---- shared units of work ---- */

enum { TAG_DONE = 1 << 20 }; /* a worker's last message: how many results it sent */

/* Rank 0: receives one message (blocking when is_wait, else only when one has arrived); a
 * result is recorded, a worker's end counted. Returns false when nothing was received. */
static bool receive_one(const dist_share_job *j, bool is_wait, int *n_ended, long *n_expected,
                        long *n_got, loom_status *st, loom_error *err) {
    MPI_Status ms;
    int flag = 1;
    if (is_wait)
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &ms);
    else
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &ms);
    if (!flag)
        return false;
    if (ms.MPI_TAG == TAG_DONE) {
        long sent = 0;
        MPI_Recv(&sent, 1, MPI_LONG, ms.MPI_SOURCE, TAG_DONE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        *n_expected += sent;
        (*n_ended)++;
        return true;
    }
    int u = ms.MPI_TAG;
    char *out = (char *)j->outs + (size_t)u * j->out_bytes;
    MPI_Recv(out, (int)j->out_bytes, MPI_BYTE, ms.MPI_SOURCE, u, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    j->is_done[u] = true;
    (*n_got)++;
    if (*st == LOOM_OK && j->record)
        *st = j->record(j->ctx, u, out, err);
    return true;
}

loom_status dist_share(const dist_share_job *j, loom_error *err) {
    loom_status st = LOOM_OK;
    long local = 0;
    int size = g.size, rank = g.rank;
    bool is_job = g.is_mpi && size > 1 && !g.is_solo;
    if (is_job && j->n_units >= TAG_DONE)
        return loom_error_set(err, LOOM_ERR_ARG, "%d units of work: at most %d can be shared",
                              j->n_units, TAG_DONE - 1);
    if (is_job)
        loom_dist_queue_open();
    MPI_Request *reqs = is_job ? malloc(sizeof *reqs * (size_t)(j->n_units + 1)) : NULL;
    int n_reqs = 0;
    long n_sent = 0, n_expected = 0, n_got = 0;
    int n_ended = 0;
    bool is_stopped = false;
    if (is_job && !reqs)
        loom_dist_abort(1);
    for (;;) {
        long q = is_job ? loom_dist_queue_next(&local) : local++;
        if (q >= j->n_units || st != LOOM_OK || is_stopped)
            break;
        int u = j->order ? j->order[q] : (int)q;
        if (j->is_done[u])
            continue;
        if (is_job)
            g.is_solo = true;
        char *out = (char *)j->outs + (size_t)u * j->out_bytes;
        loom_status su = j->run(j->ctx, u, out, err);
        g.is_solo = false;
        if (su == LOOM_ERR_INTERRUPTED) {
            is_stopped = true;
            continue;
        }
        if (su) {
            st = su;
            break;
        }
        j->is_done[u] = true;
        if (!is_job || rank == 0) {
            if (j->record && (st = j->record(j->ctx, u, out, err)))
                break;
        } else {
            MPI_Isend(out, (int)j->out_bytes, MPI_BYTE, 0, u, MPI_COMM_WORLD, &reqs[n_reqs++]);
            n_sent++;
        }
        /* rank 0 records what the others finished meanwhile */
        while (is_job && rank == 0 &&
               receive_one(j, false, &n_ended, &n_expected, &n_got, &st, err))
            ;
    }
    if (is_job) {
        if (rank == 0) {
            while (n_ended < size - 1 || n_got < n_expected)
                receive_one(j, true, &n_ended, &n_expected, &n_got, &st, err);
        } else {
            MPI_Send(&n_sent, 1, MPI_LONG, 0, TAG_DONE, MPI_COMM_WORLD);
            MPI_Waitall(n_reqs, reqs, MPI_STATUSES_IGNORE);
        }
        free(reqs);
        loom_dist_queue_close();
        /* every process leaves with every result, and with the same verdict */
        dist_bcast(j->is_done, sizeof(bool) * (size_t)j->n_units, 0);
        for (int u = 0; u < j->n_units; u++)
            if (j->is_done[u])
                dist_bcast((char *)j->outs + (size_t)u * j->out_bytes, j->out_bytes, 0);
        /* a process that failed stopped taking units: it says why, the others that it did */
        int32_t flags[2] = {is_stopped, st != LOOM_OK};
        dist_max_i32(flags, 2);
        if (flags[0] || flags[1])
            g.is_agreed = true;
        if (flags[1] && st == LOOM_OK)
            st = loom_error_set(err, LOOM_ERR_IO, "%s", other_failed);
        else if (flags[0] && st == LOOM_OK)
            st = loom_error_set(err, LOOM_ERR_INTERRUPTED,
                                "interrupted: the work that finished is recorded");
    } else if (is_stopped && st == LOOM_OK) {
        st = LOOM_ERR_INTERRUPTED;
    }
    return st;
}
