/*
 * shm.c — shared-memory arenas: memfd control + data areas, slot state
 * machine on atomics in the shared control area, descriptors, consumer
 * views over /proc/PID/fd. See shm.h for the model and the choices.
 *
 * Slot state machine (all transitions by CAS in shared memory):
 *   FREE --acquire (producer)--> WRITING --publish--> PUBLISHED
 *   WRITING --cancel--> FREE
 *   PUBLISHED --last holder bit cleared (release or reclaim)--> FREE
 * The holders word is (low 32 bits of generation) << 32 | consumer mask, so
 * a compare-and-swap on it fails for a descriptor of an older generation.
 * Publish stores the state before the mask, so the mask can only become
 * empty (and free the slot) once the slot is published.
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ layout */

#define CTL_MAGIC 0x3152414d48534c53ull /* "SLSHMAR1" */
#define CTL_VERSION 1u
#define CTL_SLOTS_OFF 256u
#define SLOTS_MAX 65536u
#define ARENA_MAX_BYTES (1ull << 40)

enum { ST_FREE = 0, ST_WRITING = 1, ST_PUBLISHED = 2 };

/* Start of the control memfd. Written once by the producer before any
 * descriptor exists; consumers copy what they need at open and never
 * trust it again (the control area is writable by every consumer). */
typedef struct ctl_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t n_slots;
    uint64_t arena_id;
    uint64_t slot_bytes;
    uint64_t data_bytes;
    uint64_t ctl_bytes;
    uint32_t pid;
    uint32_t pad;
    char name[SL_SHM_NAME_MAX];
} ctl_hdr;

typedef struct slot_ctl {
    _Atomic uint64_t generation;
    _Atomic uint64_t holders; /* gen tag << 32 | consumer mask */
    _Atomic uint32_t state;
    uint32_t pad;
    _Atomic uint64_t offset;
    _Atomic uint64_t length;
    _Atomic uint64_t checksum;
    uint64_t pad2[2];
} slot_ctl;

_Static_assert(sizeof(ctl_hdr) <= CTL_SLOTS_OFF, "control header too large");
_Static_assert(sizeof(slot_ctl) == 64, "slot control is one cache line");

static inline uint64_t holders_make(uint64_t gen, uint32_t mask) {
    return ((gen & 0xffffffffull) << 32) | mask;
}
static inline uint32_t holders_tag(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint32_t holders_mask(uint64_t h) { return (uint32_t)h; }

struct sl_shm_arena {
    int ctl_fd, data_fd;
    uint8_t *ctl;  /* ctl_bytes, read-write */
    uint8_t *data; /* data_bytes, read-write */
    size_t ctl_bytes, data_bytes, slot_bytes;
    uint32_t n_slots;
    uint64_t arena_id;
    uint32_t pid;
    _Atomic uint32_t next; /* where the next acquire starts looking */
    char name[SL_SHM_NAME_MAX];
};

struct sl_shm_view {
    uint8_t *ctl;        /* read-write */
    const uint8_t *data; /* read-only */
    size_t ctl_bytes, data_bytes, slot_bytes;
    uint32_t n_slots;
    uint64_t arena_id;
    uint32_t pid, ctl_fd, data_fd;
    unsigned consumer_id;
};

static inline slot_ctl *slots_of(uint8_t *ctl) { return (slot_ctl *)(ctl + CTL_SLOTS_OFF); }

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

static int name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= SL_SHM_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static uint64_t random_id(void) {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    if (v == 0) v = sl_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    return v;
}

/* ---------------------------------------------------------- descriptor */

void sl_shm_desc_encode(const sl_shm_desc *d, uint8_t out[SL_SHM_DESC_SIZE]) {
    sl_put_u32(out + 0, SL_SHM_DESC_MAGIC);
    sl_put_u16(out + 4, SL_SHM_DESC_VERSION);
    sl_put_u16(out + 6, 0);
    sl_put_u64(out + 8, d->arena_id);
    sl_put_u32(out + 16, d->pid);
    sl_put_u32(out + 20, d->ctl_fd);
    sl_put_u32(out + 24, d->data_fd);
    sl_put_u32(out + 28, d->slot);
    sl_put_u64(out + 32, d->offset);
    sl_put_u64(out + 40, d->length);
    sl_put_u64(out + 48, d->generation);
    sl_put_u64(out + 56, d->checksum);
}

int sl_shm_desc_decode(const void *in, size_t len, sl_shm_desc *desc) {
    if (!in || !desc || len != SL_SHM_DESC_SIZE) return SL_EINVAL;
    const uint8_t *p = in;
    if (sl_get_u32(p) != SL_SHM_DESC_MAGIC || sl_get_u16(p + 4) != SL_SHM_DESC_VERSION)
        return SL_EPROTO;
    if (sl_get_u16(p + 6) != 0) return SL_EINVAL;
    sl_shm_desc d;
    d.arena_id = sl_get_u64(p + 8);
    d.pid = sl_get_u32(p + 16);
    d.ctl_fd = sl_get_u32(p + 20);
    d.data_fd = sl_get_u32(p + 24);
    d.slot = sl_get_u32(p + 28);
    d.offset = sl_get_u64(p + 32);
    d.length = sl_get_u64(p + 40);
    d.generation = sl_get_u64(p + 48);
    d.checksum = sl_get_u64(p + 56);
    if (d.pid == 0 || d.pid > INT_MAX || d.ctl_fd > INT_MAX || d.data_fd > INT_MAX)
        return SL_EINVAL;
    if (d.offset + d.length < d.offset) return SL_EINVAL;
    *desc = d;
    return SL_OK;
}

/* ------------------------------------------------------------ producer */

static int make_memfd(const char *label, size_t bytes) {
    int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        sl_error("shm: memfd_create(%s): %s", label, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)bytes) != 0) {
        sl_error("shm: ftruncate(%s, %zu): %s", label, bytes, strerror(errno));
        close(fd);
        return -1;
    }
    /* A consumer could otherwise shrink the file and make the producer (and
     * every other consumer) take SIGBUS. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        sl_error("shm: sealing %s: %s", label, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sl_shm_arena_create(const char *name, uint32_t n_slots, size_t slot_bytes,
                        sl_shm_arena **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!name_ok(name)) {
        sl_error("shm: bad arena name (1..%d bytes of [A-Za-z0-9._-])", SL_SHM_NAME_MAX - 1);
        return SL_EINVAL;
    }
    if (n_slots == 0 || n_slots > SLOTS_MAX || slot_bytes == 0 || slot_bytes > ARENA_MAX_BYTES) {
        sl_error("shm: arena %s: bad geometry (%u slots of %zu bytes)", name, n_slots, slot_bytes);
        return SL_EINVAL;
    }
    size_t pg = page_size();
    size_t sb = round_up(slot_bytes, pg);
    if ((uint64_t)sb * n_slots > ARENA_MAX_BYTES) {
        sl_error("shm: arena %s: %u slots of %zu bytes exceed 1 TiB", name, n_slots, sb);
        return SL_EINVAL;
    }
    sl_shm_arena *a = calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    a->ctl_fd = a->data_fd = -1;
    a->ctl = a->data = MAP_FAILED;
    a->slot_bytes = sb;
    a->n_slots = n_slots;
    a->ctl_bytes = round_up(CTL_SLOTS_OFF + (size_t)n_slots * sizeof(slot_ctl), pg);
    a->data_bytes = sb * n_slots;
    a->arena_id = random_id();
    a->pid = (uint32_t)getpid();
    snprintf(a->name, sizeof a->name, "%s", name);

    char label[SL_SHM_NAME_MAX + 16];
    int rc = SL_EIO;
    snprintf(label, sizeof label, "slime.%s", name);
    if ((a->ctl_fd = make_memfd(label, a->ctl_bytes)) < 0) goto fail;
    snprintf(label, sizeof label, "slime.%s.data", name);
    if ((a->data_fd = make_memfd(label, a->data_bytes)) < 0) goto fail;
    a->ctl = mmap(NULL, a->ctl_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, a->ctl_fd, 0);
    if (a->ctl == MAP_FAILED) {
        sl_error("shm: arena %s: mmap control: %s", name, strerror(errno));
        goto fail;
    }
    a->data = mmap(NULL, a->data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, a->data_fd, 0);
    if (a->data == MAP_FAILED) {
        sl_error("shm: arena %s: mmap %zu data bytes: %s", name, a->data_bytes, strerror(errno));
        goto fail;
    }
    /* The memfd is zero-filled: every slot starts FREE at generation 0. */
    slot_ctl *s = slots_of(a->ctl);
    for (uint32_t i = 0; i < n_slots; i++) {
        atomic_init(&s[i].generation, 0);
        atomic_init(&s[i].holders, 0);
        atomic_init(&s[i].state, ST_FREE);
    }
    ctl_hdr *h = (ctl_hdr *)a->ctl;
    h->version = CTL_VERSION;
    h->n_slots = n_slots;
    h->arena_id = a->arena_id;
    h->slot_bytes = sb;
    h->data_bytes = a->data_bytes;
    h->ctl_bytes = a->ctl_bytes;
    h->pid = a->pid;
    memcpy(h->name, a->name, sizeof h->name);
    atomic_thread_fence(memory_order_release);
    h->magic = CTL_MAGIC;
    sl_debug("shm: arena %s: %u slots of %zu bytes (id %016llx, fds %d/%d)", name, n_slots, sb,
             (unsigned long long)a->arena_id, a->ctl_fd, a->data_fd);
    *out = a;
    return SL_OK;
fail:
    sl_shm_arena_close(a);
    return rc;
}

void sl_shm_arena_close(sl_shm_arena *a) {
    if (!a) return;
    if (a->data != MAP_FAILED && a->data) munmap(a->data, a->data_bytes);
    if (a->ctl != MAP_FAILED && a->ctl) munmap(a->ctl, a->ctl_bytes);
    if (a->data_fd >= 0) close(a->data_fd);
    if (a->ctl_fd >= 0) close(a->ctl_fd);
    free(a);
}

uint64_t sl_shm_arena_id(const sl_shm_arena *a) { return a ? a->arena_id : 0; }

int sl_shm_slot_acquire(sl_shm_arena *a, void **ptr, uint32_t *slot) {
    if (!a || !ptr || !slot) return SL_EINVAL;
    slot_ctl *s = slots_of(a->ctl);
    uint32_t start = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed) % a->n_slots;
    for (uint32_t k = 0; k < a->n_slots; k++) {
        uint32_t i = (start + k) % a->n_slots;
        uint32_t expect = ST_FREE;
        if (!atomic_compare_exchange_strong_explicit(&s[i].state, &expect, ST_WRITING,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        uint64_t gen = atomic_load_explicit(&s[i].generation, memory_order_relaxed) + 1;
        atomic_store_explicit(&s[i].generation, gen, memory_order_release);
        atomic_store_explicit(&s[i].holders, holders_make(gen, 0), memory_order_release);
        *ptr = a->data + (size_t)i * a->slot_bytes;
        *slot = i;
        return SL_OK;
    }
    return SL_EFULL;
}

int sl_shm_slot_publish_mask(sl_shm_arena *a, uint32_t slot, size_t length, uint32_t mask,
                             sl_shm_desc *desc) {
    if (!a || !desc || slot >= a->n_slots || mask == 0) return SL_EINVAL;
    if (length > a->slot_bytes) return SL_ERANGE;
    slot_ctl *s = &slots_of(a->ctl)[slot];
    if (atomic_load_explicit(&s->state, memory_order_acquire) != ST_WRITING) return SL_EINVAL;
    uint64_t gen = atomic_load_explicit(&s->generation, memory_order_relaxed);
    uint64_t ck = sl_hash64(a->data + (size_t)slot * a->slot_bytes, length);
    atomic_store_explicit(&s->offset, 0, memory_order_relaxed);
    atomic_store_explicit(&s->length, length, memory_order_relaxed);
    atomic_store_explicit(&s->checksum, ck, memory_order_relaxed);
    /* State before mask: the mask can empty (and free the slot) only after
     * the slot is published. */
    uint32_t expect = ST_WRITING;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &expect, ST_PUBLISHED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return SL_EINVAL;
    atomic_store_explicit(&s->holders, holders_make(gen, mask), memory_order_release);
    *desc = (sl_shm_desc){.arena_id = a->arena_id,
                          .pid = a->pid,
                          .ctl_fd = (uint32_t)a->ctl_fd,
                          .data_fd = (uint32_t)a->data_fd,
                          .slot = slot,
                          .offset = 0,
                          .length = length,
                          .generation = gen,
                          .checksum = ck};
    return SL_OK;
}

int sl_shm_slot_publish(sl_shm_arena *a, uint32_t slot, size_t length, unsigned n_consumers,
                        sl_shm_desc *desc) {
    if (n_consumers == 0 || n_consumers > SL_SHM_CONSUMERS_MAX) return SL_EINVAL;
    uint32_t mask = n_consumers == 32 ? 0xffffffffu : ((1u << n_consumers) - 1);
    return sl_shm_slot_publish_mask(a, slot, length, mask, desc);
}

int sl_shm_slot_cancel(sl_shm_arena *a, uint32_t slot) {
    if (!a || slot >= a->n_slots) return SL_EINVAL;
    slot_ctl *s = &slots_of(a->ctl)[slot];
    uint32_t expect = ST_WRITING;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &expect, ST_FREE, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return SL_EINVAL;
    return SL_OK;
}

/* Clear BIT in S's holders if set and (when TAG_CHECK) the tag is TAG.
 * Frees the slot when this emptied the mask. Returns 1 when a bit was
 * cleared, 0 when there was nothing to clear. */
static int drop_holder(slot_ctl *s, uint32_t bit, int tag_check, uint32_t tag) {
    uint64_t h = atomic_load_explicit(&s->holders, memory_order_acquire);
    for (;;) {
        if (!(holders_mask(h) & bit)) return 0;
        if (tag_check && holders_tag(h) != tag) return 0;
        uint64_t nh = h & ~(uint64_t)bit;
        if (atomic_compare_exchange_weak_explicit(&s->holders, &h, nh, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (holders_mask(nh) == 0) {
                uint32_t expect = ST_PUBLISHED;
                atomic_compare_exchange_strong_explicit(&s->state, &expect, ST_FREE,
                                                        memory_order_acq_rel, memory_order_relaxed);
            }
            return 1;
        }
    }
}

int sl_shm_arena_reclaim(sl_shm_arena *a, unsigned consumer_id) {
    if (!a || consumer_id >= SL_SHM_CONSUMERS_MAX) return -SL_EINVAL;
    slot_ctl *s = slots_of(a->ctl);
    int n = 0;
    for (uint32_t i = 0; i < a->n_slots; i++) n += drop_holder(&s[i], 1u << consumer_id, 0, 0);
    if (n) sl_info("shm: arena %s: reclaimed %d slot reference(s) of consumer %u", a->name, n,
                   consumer_id);
    return n;
}

void sl_shm_arena_stats(const sl_shm_arena *a, sl_shm_stats *st) {
    if (!st) return;
    memset(st, 0, sizeof *st);
    if (!a) return;
    st->n_slots = a->n_slots;
    st->slot_bytes = a->slot_bytes;
    slot_ctl *s = slots_of(a->ctl);
    for (uint32_t i = 0; i < a->n_slots; i++) {
        switch (atomic_load_explicit(&s[i].state, memory_order_acquire)) {
        case ST_FREE: st->free++; break;
        case ST_WRITING: st->writing++; break;
        default: st->published++; break;
        }
    }
}

/* ------------------------------------------------------------ consumer */

/* Open /proc/PID/fd/FD, refusing anything that is not one of our memfds
 * (the producer died and its pid was reused). */
static int open_peer_fd(uint32_t pid, uint32_t fd, int flags, int *out) {
    char path[64], link[256];
    snprintf(path, sizeof path, "/proc/%u/fd/%u", pid, fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) {
        if (errno == ENOENT || errno == ESRCH) return SL_ECLOSED;
        sl_error("shm: readlink %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    link[n] = 0;
    if (strncmp(link, "/memfd:slime.", 13) != 0) {
        sl_warn("shm: %s is %s, not a slime arena (producer gone, pid reused?)", path, link);
        return SL_ECLOSED;
    }
    int f = open(path, flags | O_CLOEXEC);
    if (f < 0) {
        if (errno == ENOENT || errno == ESRCH) return SL_ECLOSED;
        sl_error("shm: open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    *out = f;
    return SL_OK;
}

static int fd_size(int fd, size_t *size) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) return SL_EIO;
    *size = (size_t)st.st_size;
    return SL_OK;
}

int sl_shm_arena_open(const sl_shm_desc *desc, unsigned consumer_id, sl_shm_view **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!desc || consumer_id >= SL_SHM_CONSUMERS_MAX || desc->pid == 0 || desc->pid > INT_MAX ||
        desc->ctl_fd > INT_MAX || desc->data_fd > INT_MAX)
        return SL_EINVAL;
    sl_shm_view *v = calloc(1, sizeof *v);
    if (!v) return SL_ENOMEM;
    int cfd = -1, dfd = -1, rc;
    size_t csize = 0, dsize = 0;
    v->ctl = MAP_FAILED;
    v->data = MAP_FAILED;
    if ((rc = open_peer_fd(desc->pid, desc->ctl_fd, O_RDWR, &cfd)) != SL_OK) goto fail;
    if ((rc = open_peer_fd(desc->pid, desc->data_fd, O_RDONLY, &dfd)) != SL_OK) goto fail;
    rc = SL_EPROTO;
    if (fd_size(cfd, &csize) != SL_OK || fd_size(dfd, &dsize) != SL_OK ||
        csize < CTL_SLOTS_OFF || csize % page_size()) {
        sl_warn("shm: arena of pid %u: control area has a bad size", desc->pid);
        goto fail;
    }
    v->ctl = mmap(NULL, csize, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (v->ctl == MAP_FAILED) {
        sl_error("shm: mmap control of pid %u: %s", desc->pid, strerror(errno));
        rc = SL_EIO;
        goto fail;
    }
    v->ctl_bytes = csize;
    /* Copy the header once; the shared copy is writable by any consumer. */
    ctl_hdr h;
    memcpy(&h, v->ctl, sizeof h);
    atomic_thread_fence(memory_order_acquire);
    if (h.magic != CTL_MAGIC || h.version != CTL_VERSION) {
        sl_warn("shm: arena of pid %u: bad control header", desc->pid);
        goto fail;
    }
    if (h.arena_id != desc->arena_id || h.pid != desc->pid) {
        sl_warn("shm: arena of pid %u is %016llx, not the descriptor's %016llx", desc->pid,
                (unsigned long long)h.arena_id, (unsigned long long)desc->arena_id);
        goto fail;
    }
    if (h.n_slots == 0 || h.n_slots > SLOTS_MAX || h.slot_bytes == 0 ||
        h.slot_bytes % page_size() || h.ctl_bytes != csize || h.data_bytes != dsize ||
        h.slot_bytes > ARENA_MAX_BYTES || h.slot_bytes * h.n_slots != h.data_bytes ||
        CTL_SLOTS_OFF + (uint64_t)h.n_slots * sizeof(slot_ctl) > csize) {
        sl_warn("shm: arena of pid %u: inconsistent geometry", desc->pid);
        goto fail;
    }
    v->data = mmap(NULL, dsize, PROT_READ, MAP_SHARED, dfd, 0);
    if (v->data == MAP_FAILED) {
        sl_error("shm: mmap %zu data bytes of pid %u: %s", dsize, desc->pid, strerror(errno));
        rc = SL_EIO;
        goto fail;
    }
    close(cfd);
    close(dfd);
    v->data_bytes = dsize;
    v->slot_bytes = h.slot_bytes;
    v->n_slots = h.n_slots;
    v->arena_id = h.arena_id;
    v->pid = desc->pid;
    v->ctl_fd = desc->ctl_fd;
    v->data_fd = desc->data_fd;
    v->consumer_id = consumer_id;
    *out = v;
    return SL_OK;
fail:
    if (cfd >= 0) close(cfd);
    if (dfd >= 0) close(dfd);
    if (v->data != MAP_FAILED) munmap((void *)v->data, dsize);
    if (v->ctl != MAP_FAILED) munmap(v->ctl, csize);
    free(v);
    return rc;
}

void sl_shm_view_close(sl_shm_view *v) {
    if (!v) return;
    munmap((void *)v->data, v->data_bytes);
    munmap(v->ctl, v->ctl_bytes);
    free(v);
}

int sl_shm_view_matches(const sl_shm_view *v, const sl_shm_desc *d) {
    return v && d && v->arena_id == d->arena_id && v->pid == d->pid && v->ctl_fd == d->ctl_fd &&
           v->data_fd == d->data_fd;
}

/* Everything that can be checked without touching the data. */
static int check_desc(sl_shm_view *v, const sl_shm_desc *d, slot_ctl **sp) {
    if (!sl_shm_view_matches(v, d)) return SL_EINVAL;
    if (d->slot >= v->n_slots) return SL_ERANGE;
    if (d->offset > v->slot_bytes || d->length > v->slot_bytes - d->offset) return SL_ERANGE;
    slot_ctl *s = &slots_of(v->ctl)[d->slot];
    uint64_t h = atomic_load_explicit(&s->holders, memory_order_acquire);
    uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    uint64_t gen = atomic_load_explicit(&s->generation, memory_order_acquire);
    if (gen != d->generation || st != ST_PUBLISHED || holders_tag(h) != (uint32_t)d->generation ||
        !(holders_mask(h) & (1u << v->consumer_id)))
        return SL_ESTALE;
    if (atomic_load_explicit(&s->offset, memory_order_relaxed) != d->offset ||
        atomic_load_explicit(&s->length, memory_order_relaxed) != d->length ||
        atomic_load_explicit(&s->checksum, memory_order_relaxed) != d->checksum)
        return SL_ECHECKSUM;
    *sp = s;
    return SL_OK;
}

int sl_shm_read(sl_shm_view *v, const sl_shm_desc *d, unsigned flags, const void **ptr,
                size_t *len) {
    if (!v || !d || !ptr || !len || (flags & ~SL_SHM_READ_TRUST_DATA)) return SL_EINVAL;
    slot_ctl *s;
    int rc = check_desc(v, d, &s);
    if (rc != SL_OK) return rc;
    const uint8_t *p = v->data + (size_t)d->slot * v->slot_bytes + d->offset;
    if (!(flags & SL_SHM_READ_TRUST_DATA) && sl_hash64(p, d->length) != d->checksum)
        return SL_ECHECKSUM;
    /* A reclaim during the hash could have freed and reused the slot. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->generation, memory_order_acquire) != d->generation)
        return SL_ESTALE;
    *ptr = p;
    *len = d->length;
    return SL_OK;
}

int sl_shm_release(sl_shm_view *v, const sl_shm_desc *d) {
    if (!v || !d || !sl_shm_view_matches(v, d)) return SL_EINVAL;
    if (d->slot >= v->n_slots) return SL_EINVAL;
    slot_ctl *s = &slots_of(v->ctl)[d->slot];
    if (atomic_load_explicit(&s->generation, memory_order_acquire) != d->generation)
        return SL_ESTALE;
    return drop_holder(s, 1u << v->consumer_id, 1, (uint32_t)d->generation) ? SL_OK : SL_ESTALE;
}
