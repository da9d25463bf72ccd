/*
 * faults.c — fault injection points (see faults.h).
 */
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const point_names[] = {
    "wal_append", "wal_write",    "wal_ack", "weights_publish", "ckpt_write",
    "train_step", "rollout_generate", "reward_score", "mb_send",
};

typedef struct entry {
    char point[32];
    sl_fault_action action;
    uint64_t at;     /* fire at this pass (1-based) */
    uint64_t times;  /* at most this many firings in the run */
    atomic_uint_fast64_t passes;
    atomic_uint_fast64_t fired_here;
} entry;

static entry table[SL_FAULTS_MAX];
static atomic_int n_armed;
static char marker_dir[512];
static char actor_name[64];
static atomic_uint_fast64_t n_fired;
static atomic_int pending_drop, pending_corrupt;

static bool point_known(const char *p) {
    for (size_t i = 0; i < SL_ARRAY_LEN(point_names); i++)
        if (strcmp(point_names[i], p) == 0) return true;
    return false;
}

/* Parse a decimal in [1, 1e12]; END receives the first byte after it. */
static bool parse_num(const char *s, const char **end, uint64_t *out) {
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > 1000000000000ull) return false;
        p++;
    }
    if (p == s || v == 0) return false;
    *end = p;
    *out = v;
    return true;
}

typedef struct parsed {
    char actor[64];
    char point[32];
    sl_fault_action action;
    uint64_t at;
    bool random;
    uint64_t times;
} parsed;

/* One entry "[ACTOR:]POINT=ACTION[@N|@rN][xK]" (NUL-terminated E). */
static bool parse_entry(const char *e, parsed *out, char *err, size_t cap) {
    memset(out, 0, sizeof *out);
    out->at = 1;
    out->times = 1;
    const char *eq = strchr(e, '=');
    if (!eq) {
        snprintf(err, cap, "entry '%.80s': expected [ACTOR:]POINT=ACTION[@N|@rN][xK]", e);
        return false;
    }
    const char *colon = memchr(e, ':', (size_t)(eq - e));
    const char *pt = e;
    if (colon) {
        size_t al = (size_t)(colon - e);
        if (al == 0 || al >= sizeof out->actor) {
            snprintf(err, cap, "entry '%.80s': bad actor name", e);
            return false;
        }
        memcpy(out->actor, e, al);
        pt = colon + 1;
    }
    size_t pl = (size_t)(eq - pt);
    if (pl == 0 || pl >= sizeof out->point) {
        snprintf(err, cap, "entry '%.80s': bad point name", e);
        return false;
    }
    memcpy(out->point, pt, pl);
    if (!point_known(out->point)) {
        snprintf(err, cap, "entry '%.80s': unknown point '%s' (points: wal_append, wal_write, wal_ack, "
                           "weights_publish, ckpt_write, train_step, rollout_generate, reward_score, mb_send)",
                 e, out->point);
        return false;
    }
    const char *a = eq + 1;
    size_t alen = strcspn(a, "@x");
    if (alen == 4 && strncmp(a, "kill", 4) == 0) out->action = SL_FAULT_KILL;
    else if (alen == 4 && strncmp(a, "drop", 4) == 0) out->action = SL_FAULT_DROP;
    else if (alen == 7 && strncmp(a, "corrupt", 7) == 0) out->action = SL_FAULT_CORRUPT;
    else {
        snprintf(err, cap, "entry '%.80s': action must be kill, drop or corrupt", e);
        return false;
    }
    if (out->action != SL_FAULT_KILL && strcmp(out->point, "mb_send") != 0) {
        snprintf(err, cap, "entry '%.80s': drop and corrupt apply to point mb_send only", e);
        return false;
    }
    const char *p = a + alen;
    if (*p == '@') {
        p++;
        if (*p == 'r') {
            out->random = true;
            p++;
        }
        if (!parse_num(p, &p, &out->at)) {
            snprintf(err, cap, "entry '%.80s': @ needs a pass number >= 1", e);
            return false;
        }
    }
    if (*p == 'x') {
        p++;
        if (!parse_num(p, &p, &out->times) || out->times > 1000000) {
            snprintf(err, cap, "entry '%.80s': x needs a count 1..1000000", e);
            return false;
        }
    }
    if (*p) {
        snprintf(err, cap, "entry '%.80s': unexpected '%.20s'", e, p);
        return false;
    }
    return true;
}

/* Walk SPEC's entries; FN(entry, user) for each; stops at a parse error. */
static int each_entry(const char *spec, char *err, size_t cap,
                      bool (*fn)(const parsed *, void *), void *user) {
    if (!spec) return 0;
    char buf[128];
    const char *s = spec;
    int n = 0;
    while (*s) {
        size_t skip = strspn(s, ", \t\n");
        s += skip;
        if (!*s) break;
        size_t l = strcspn(s, ", \t\n");
        if (l >= sizeof buf) {
            snprintf(err, cap, "entry '%.40s...': too long", s);
            return -1;
        }
        memcpy(buf, s, l);
        buf[l] = 0;
        s += l;
        parsed pe;
        if (!parse_entry(buf, &pe, err, cap)) return -1;
        if (fn && !fn(&pe, user)) {
            snprintf(err, cap, "more than %d fault entries", SL_FAULTS_MAX);
            return -1;
        }
        n++;
    }
    return n;
}

sl_err sl_faults_check(const char *spec, char *err, size_t cap) {
    char dummy[8];
    if (!err) err = dummy, cap = sizeof dummy;
    if (err && cap) err[0] = 0;
    return each_entry(spec, err, cap, NULL, NULL) < 0 ? SL_EINVAL : SL_OK;
}

typedef struct arm_ctx {
    const char *actor;
    uint64_t seed;
} arm_ctx;

static bool actor_matches(const char *want, const char *actor) {
    if (!want[0]) return true;
    if (strcmp(want, actor) == 0) return true;
    size_t l = strlen(want); /* a group: "rollout" matches "rollout.3" */
    return strncmp(want, actor, l) == 0 && actor[l] == '.';
}

static bool arm_one(const parsed *pe, void *user) {
    arm_ctx *c = user;
    if (!actor_matches(pe->actor, c->actor)) return true;
    int i = atomic_load(&n_armed);
    if (i >= SL_FAULTS_MAX) return false;
    entry *t = &table[i];
    memset(t->point, 0, sizeof t->point);
    strcpy(t->point, pe->point);
    t->action = pe->action;
    t->times = pe->times;
    t->at = pe->at;
    if (pe->random) {
        char key[160];
        int kl = snprintf(key, sizeof key, "%s/%s/%llu", c->actor, pe->point, (unsigned long long)c->seed);
        t->at = 1 + sl_hash64(key, (size_t)kl) % pe->at;
    }
    atomic_store(&t->passes, 0);
    atomic_store(&t->fired_here, 0);
    atomic_store(&n_armed, i + 1);
    return true;
}

int sl_faults_arm(const char *spec, const char *actor, const char *run_dir, uint64_t seed) {
    const char *env = getenv("SL_FAULTS");
    if (env && *env) spec = env;
    if (!spec || !*spec) return 0;
    snprintf(actor_name, sizeof actor_name, "%s", actor ? actor : "?");
    if (run_dir) snprintf(marker_dir, sizeof marker_dir, "%s/faults", run_dir);
    else marker_dir[0] = 0;
    char err[256];
    arm_ctx c = {actor_name, seed};
    int before = atomic_load(&n_armed);
    if (each_entry(spec, err, sizeof err, arm_one, &c) < 0) {
        sl_error("faults: %s", err);
        return -1;
    }
    int n = atomic_load(&n_armed) - before;
    for (int i = before; i < before + n; i++)
        sl_warn("faults: armed %s=%s at pass %llu, at most %llu time(s) in the run", table[i].point,
                table[i].action == SL_FAULT_KILL ? "kill" : table[i].action == SL_FAULT_DROP ? "drop" : "corrupt",
                (unsigned long long)table[i].at, (unsigned long long)table[i].times);
    return n;
}

void sl_faults_reset(void) {
    atomic_store(&n_armed, 0);
    atomic_store(&pending_drop, 0);
    atomic_store(&pending_corrupt, 0);
    atomic_store(&n_fired, 0);
}

/* Claim one of the run's K firings of entry T: create the next free
 * marker RUN_DIR/faults/ACTOR.POINT.I (I < K). False when all are taken.
 * Without a run directory the firings of this process are counted. */
static bool claim(entry *t) {
    if (!marker_dir[0]) return atomic_fetch_add(&t->fired_here, 1) < t->times;
    if (mkdir(marker_dir, 0700) != 0 && errno != EEXIST) return false;
    for (uint64_t i = 0; i < t->times; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s.%s.%llu", marker_dir, actor_name, t->point, (unsigned long long)i);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
            return true;
        }
        if (errno != EEXIST) return false;
    }
    return false;
}

sl_fault_action sl_fault_point(const char *point) {
    int n = atomic_load_explicit(&n_armed, memory_order_acquire);
    if (n == 0) return SL_FAULT_NONE;
    for (int i = 0; i < n; i++) {
        entry *t = &table[i];
        if (strcmp(t->point, point) != 0) continue;
        uint64_t pass = atomic_fetch_add(&t->passes, 1) + 1;
        bool due = t->action == SL_FAULT_KILL ? pass == t->at : pass % t->at == 0;
        if (!due || !claim(t)) continue;
        if (t->action == SL_FAULT_KILL) {
            sl_warn("faults: %s: kill at pass %llu", point, (unsigned long long)pass);
            raise(SIGKILL);
            _exit(137); /* not reached */
        }
        atomic_fetch_add(&n_fired, 1);
        sl_warn("faults: %s: %s at pass %llu", point, t->action == SL_FAULT_DROP ? "drop" : "corrupt",
                (unsigned long long)pass);
        return t->action;
    }
    return SL_FAULT_NONE;
}

void sl_faults_request_net(sl_fault_action a) {
    if (a == SL_FAULT_DROP) atomic_fetch_add(&pending_drop, 1);
    else if (a == SL_FAULT_CORRUPT) atomic_fetch_add(&pending_corrupt, 1);
}

static bool take(atomic_int *c) {
    int v = atomic_load(c);
    while (v > 0)
        if (atomic_compare_exchange_weak(c, &v, v - 1)) return true;
    return false;
}

sl_fault_action sl_faults_net(void) {
    if (take(&pending_drop)) {
        atomic_fetch_add(&n_fired, 1);
        sl_warn("faults: mb_send: drop (requested)");
        return SL_FAULT_DROP;
    }
    if (take(&pending_corrupt)) {
        atomic_fetch_add(&n_fired, 1);
        sl_warn("faults: mb_send: corrupt (requested)");
        return SL_FAULT_CORRUPT;
    }
    return sl_fault_point("mb_send");
}

void sl_faults_corrupt(uint8_t *frame, size_t len) {
    if (!frame || !len) return;
    /* a payload byte when there is a payload (the payload checksum must
     * catch it), else a header byte (the header checksum must) */
    size_t at = len > 80 ? 80 + (len - 80) / 2 : len / 2;
    frame[at] ^= 0x5a;
}

uint64_t sl_faults_fired(void) { return atomic_load(&n_fired); }
