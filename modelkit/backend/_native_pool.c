/* One set of worker threads for numpy's OpenBLAS and for the element-wise kernels of
   _native.c (see modelkit/backend/blas_pool.py).

   OpenBLAS (0.3.27+) hands its multithreaded work to a caller's threads once a callback is
   registered with openblas_set_threads_callback_function: `modelkit_pool_blas_callback`
   runs job 0 of each call on the calling thread and the others on this pool's workers.
   The same workers then run the kernels' parts (`modelkit_pool_for`): right after a GEMM
   they are awake, so splitting a 2.6 MB SGD update across them costs a few microseconds
   instead of the 100+ us a sleeping thread takes to wake (a kernel never wakes one: it runs
   on the awake workers only), and no second set of threads spins beside OpenBLAS's.

   A worker waits for its ticket (one futex word each) to change: spinning (pause, then
   sched_yield so that other runnable threads get the core) for `spin_ns`, then asleep in
   the kernel. OpenBLAS's level-3 jobs wait for each other, so every job of a call must
   run at once: the pool runs one call at a time (a mutex) and, called from one of its own
   workers or for more jobs than it can hold, starts threads for that call alone. A forked
   child starts with no workers and makes its own. */

#if defined(__linux__) && defined(__GNUC__)
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define POOL_MAX_WORKERS 63
#define PAUSE_NS 20000L             /* spin with pause this long, then with sched_yield */

typedef void (*blas_job_fn)(int thread_num, void *job, int job_data);
typedef void (*range_fn)(const void *args, int64_t lo, int64_t hi);
typedef int (*count_fn)(void);

typedef struct {
    _Atomic uint32_t ticket;        /* bumped once per part handed to this worker */
    _Atomic int sleeping;
    int part;                       /* the part of the current call it runs */
    pthread_t thread;
    char pad[64];
} worker_t;

static struct {
    pthread_mutex_t lock;           /* one call at a time */
    int started;                    /* workers running */
    worker_t workers[POOL_MAX_WORKERS];
    _Atomic int pending;            /* parts of the current call still running */
    /* the current call: OpenBLAS's jobs, or a range split in parts */
    blas_job_fn job;
    char *job_data;
    size_t job_size;
    int job_extra;
    range_fn range;
    const void *range_args;
    int64_t range_n, range_align;
    int parts;
    int64_t dispatches;             /* calls split across the workers (tests) */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long spin_ns = 2000000L;     /* a worker's wait before it sleeps */
static count_fn blas_threads;       /* OpenBLAS's thread count, once installed */
static __thread int in_worker;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void part_bounds(int64_t n, int64_t align, int part, int parts, int64_t *lo,
                        int64_t *hi) {
    const int64_t blocks = (n + align - 1) / align;
    *lo = blocks * part / parts * align;
    *hi = part == parts - 1 ? n : blocks * (part + 1) / parts * align;
    if (*hi > n) *hi = n;
    if (*lo > *hi) *lo = *hi;
}

static void run_part(int part) {
    if (pool.job) {
        pool.job(part, pool.job_data + (size_t)part * pool.job_size, pool.job_extra);
    } else {
        int64_t lo, hi;
        part_bounds(pool.range_n, pool.range_align, part, pool.parts, &lo, &hi);
        if (lo < hi) pool.range(pool.range_args, lo, hi);
    }
}

static void wait_for_ticket(worker_t *w, uint32_t seen) {
    const long start = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(&w->ticket, memory_order_acquire) == seen) {
        if (++spins % 64) {
            CPU_RELAX();
            continue;
        }
        const long waited = now_ns() - start;
        if (waited < PAUSE_NS) continue;
        if (waited < spin_ns) {
            sched_yield();
            continue;
        }
        atomic_store(&w->sleeping, 1);
        if (atomic_load(&w->ticket) == seen)
            syscall(SYS_futex, &w->ticket, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        atomic_store(&w->sleeping, 0);
        return;                     /* the caller checks the ticket again */
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    uint32_t seen = 0;              /* its ticket when made: the first part may come first */
    in_worker = 1;
    for (;;) {
        while (atomic_load_explicit(&w->ticket, memory_order_acquire) == seen)
            wait_for_ticket(w, seen);
        seen++;
        run_part(w->part);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
    return NULL;
}

/* Workers 0 .. n-1 running (pool.lock held); returns how many are. */
static int ensure_workers(int n) {
    if (n > POOL_MAX_WORKERS) n = POOL_MAX_WORKERS;
    while (pool.started < n) {
        worker_t *w = &pool.workers[pool.started];
        atomic_store(&w->ticket, 0);
        atomic_store(&w->sleeping, 0);
        pthread_attr_t attr;
        sigset_t all, before;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        sigfillset(&all);           /* signals go to the program's threads, not the workers */
        pthread_sigmask(SIG_SETMASK, &all, &before);
        const int failed = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &before, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break;
        pthread_setname_np(w->thread, "modelkit-pool");
        pool.started++;
    }
    return pool.started;
}

/* The current call's parts 1 .. parts-1 on the workers, part 0 here (pool.lock held). */
static void dispatch(void) {
    atomic_store(&pool.pending, pool.parts - 1);
    for (int i = 0; i < pool.parts - 1; i++) {
        worker_t *w = &pool.workers[i];
        w->part = i + 1;
        atomic_fetch_add(&w->ticket, 1);          /* sequentially consistent: see below */
        if (atomic_load(&w->sleeping))
            syscall(SYS_futex, &w->ticket, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    run_part(0);
    const long start = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
        if (++spins % 64 || now_ns() - start < PAUSE_NS) CPU_RELAX();
        else sched_yield();          /* more threads than cores: let a worker run */
    }
    pool.dispatches++;
}

/* A call's jobs on threads of their own (a nested call, or more jobs than the pool holds). */
typedef struct { blas_job_fn job; char *data; size_t size; int extra, index; } solo_t;

static void *solo_main(void *arg) {
    solo_t *s = arg;
    s->job(s->index, s->data + (size_t)s->index * s->size, s->extra);
    return NULL;
}

static void run_on_new_threads(blas_job_fn job, int n, size_t size, char *data, int extra) {
    solo_t solos[POOL_MAX_WORKERS + 1];
    pthread_t threads[POOL_MAX_WORKERS + 1];
    int made = 0;
    for (int i = 1; i < n && i <= POOL_MAX_WORKERS; i++) {
        solos[i] = (solo_t){job, data, size, extra, i};
        if (pthread_create(&threads[i], NULL, solo_main, &solos[i]) == 0) made = i;
        else break;
    }
    for (int i = made + 1; i < n; i++)            /* no thread could be made: run here */
        job(i, data + (size_t)i * size, extra);
    job(0, data, extra);
    for (int i = 1; i <= made; i++) pthread_join(threads[i], NULL);
}

/* OpenBLAS's threads callback: run jobs 0 .. numjobs-1 of `data` at once; back when done. */
void modelkit_pool_blas_callback(int sync, blas_job_fn job, int numjobs, size_t size,
                                 void *data, int extra) {
    (void)sync;                     /* OpenBLAS always waits (exec_blas passes 1) */
    if (numjobs <= 1) {
        if (numjobs == 1) job(0, data, extra);
        return;
    }
    if (in_worker || numjobs - 1 > POOL_MAX_WORKERS) {
        run_on_new_threads(job, numjobs, size, data, extra);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    if (ensure_workers(numjobs - 1) < numjobs - 1) {
        pthread_mutex_unlock(&pool.lock);
        run_on_new_threads(job, numjobs, size, data, extra);
        return;
    }
    pool.job = job;
    pool.job_data = data;
    pool.job_size = size;
    pool.job_extra = extra;
    pool.parts = numjobs;
    dispatch();
    pool.job = NULL;
    pthread_mutex_unlock(&pool.lock);
}

/* fn(args, lo, hi) over [0, n) in parts of whole `align` blocks, on as many threads as
   OpenBLAS runs and are awake (one part each, at least `grain` values a part); on this
   thread alone where the pool is not installed, busy or asleep, or n is small. */
void modelkit_pool_for(range_fn fn, const void *args, int64_t n, int64_t align,
                       int64_t grain) {
    int parts = blas_threads && !in_worker ? blas_threads() : 1;
    if (grain < 1) grain = 1;
    if (parts > n / grain) parts = (int)(n / grain);
    if (parts > POOL_MAX_WORKERS + 1) parts = POOL_MAX_WORKERS + 1;
    if (parts <= 1 || pthread_mutex_trylock(&pool.lock) != 0) {
        if (n > 0) fn(args, 0, n);
        return;
    }
    /* only workers that are awake (after a GEMM): waking a sleeping one costs more than
       its part saves, and it would spin beside the program's other threads afterwards */
    int awake = 0;
    while (awake < parts - 1 && awake < pool.started &&
           !atomic_load(&pool.workers[awake].sleeping))
        awake++;
    parts = awake + 1;
    if (parts <= 1) {
        pthread_mutex_unlock(&pool.lock);
        fn(args, 0, n);
        return;
    }
    pool.job = NULL;
    pool.range = fn;
    pool.range_args = args;
    pool.range_n = n;
    pool.range_align = align > 0 ? align : 1;
    pool.parts = parts;
    dispatch();
    pthread_mutex_unlock(&pool.lock);
}

static void forget_workers(void) {  /* a forked child: the workers stayed in the parent */
    pthread_mutex_init(&pool.lock, NULL);
    pool.started = 0;
    in_worker = 0;
}

/* Use `threads` (OpenBLAS's get_num_threads; NULL: one thread) for the kernels' thread
   count; workers wait `spin_us` microseconds awake before they sleep (negative: unchanged).
   Returns 0. */
int modelkit_pool_install(count_fn threads, int64_t spin_us) {
    static int registered;
    if (!registered) {
        pthread_atfork(NULL, NULL, forget_workers);
        registered = 1;
    }
    if (spin_us >= 0) spin_ns = (long)spin_us * 1000L;
    blas_threads = threads;
    return 0;
}

/* A worker's wait before it sleeps, in microseconds (tests keep the workers awake). */
void modelkit_pool_set_spin(int64_t spin_us) {
    if (spin_us >= 0) spin_ns = (long)spin_us * 1000L;
}

/* The number of workers running, and of calls split across them (tests). */
int modelkit_pool_workers(void) { return pool.started; }

int64_t modelkit_pool_dispatches(void) {
    pthread_mutex_lock(&pool.lock);
    const int64_t n = pool.dispatches;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

#else   /* no pthreads and futexes: every kernel on the calling thread */

#include <stddef.h>
#include <stdint.h>

typedef void (*range_fn)(const void *args, int64_t lo, int64_t hi);

void modelkit_pool_for(range_fn fn, const void *args, int64_t n, int64_t align,
                       int64_t grain) {
    (void)align; (void)grain;
    if (n > 0) fn(args, 0, n);
}

int modelkit_pool_install(void *threads, int64_t spin_us) {
    (void)threads; (void)spin_us;
    return -1;
}

int modelkit_pool_workers(void) { return 0; }

void modelkit_pool_set_spin(int64_t spin_us) { (void)spin_us; }

int64_t modelkit_pool_dispatches(void) { return 0; }

#endif
