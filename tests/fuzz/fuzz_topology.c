/*
 * fuzz_topology.c — libFuzzer target for the topology parser
 * (topology/topology.h: sl_topology_load_string, with --set overrides).
 *
 * Input: topology text. A line "%%set" splits it: each following line is
 * one `--set` override (at most 8). Properties: loading never crashes or
 * leaks; the error count is 0 exactly when a topology comes back; a loaded
 * topology's getters and actor lookups work, and writing it back
 * (sl_topology_write) gives text that loads again without error and has
 * the same actors.
 * What it is not: a test of what the supervisor does with a topology.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SETS 8

static FILE *devnull;

static void exercise(const sl_topology *t) {
    for (int i = 0; i < t->n_actors; i++) {
        const sl_actor_spec *a = &t->actors[i];
        FUZZ_CHECK(sl_topology_find_actor(t, a->name) == a);
        FUZZ_CHECK(a->count >= 1 && a->index >= 0 && a->index < a->count);
        (void)sl_topology_get_str(t, a->section, "kind");
    }
    for (int i = 0; i < t->n_entries; i++) {
        const sl_topology_entry *e = &t->entries[i];
        FUZZ_CHECK(sl_topology_is_set(t, e->section, e->key));
        (void)sl_topology_get_str(t, e->section, e->key);
    }
    (void)sl_topology_get_int(t, "rollout", "rollout_batch_size");
    (void)sl_topology_get_double(t, "rollout", "rollout_temperature");
    (void)sl_topology_get_bool(t, "data", "rollout_shuffle");
    (void)sl_topology_get_enum(t, "supervisor", "strategy");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0; /* the parser's own limit is 1 MiB; keep runs fast */
    if (!devnull) devnull = fopen("/dev/null", "w");
    char *text = fuzz_strdup(data, size);
    const char *sets[MAX_SETS];
    int n_sets = 0;
    char *mark = strstr(text, "%%set");
    if (mark) {
        *mark = 0;
        char *p = strchr(mark + 5, '\n');
        while (p && n_sets < MAX_SETS) {
            *p++ = 0;
            sets[n_sets++] = p;
            p = strchr(p, '\n');
        }
    }
    sl_topology *t = (sl_topology *)1;
    int nerr = sl_topology_load_string("fuzz.conf", text, n_sets ? sets : NULL, n_sets, &t, devnull);
    FUZZ_CHECK(nerr >= 0);
    FUZZ_CHECK((nerr == 0) == (t != NULL));
    if (t) {
        exercise(t);
        char *out = NULL;
        size_t out_len = 0;
        FILE *f = open_memstream(&out, &out_len);
        if (!f) abort();
        FUZZ_CHECK(sl_topology_write(t, f) == 0);
        fclose(f);
        sl_topology *t2 = NULL;
        int nerr2 = sl_topology_load_string("written.conf", out, NULL, 0, &t2, stderr);
        if (nerr2) fprintf(stderr, "--- written text ---\n%s\n---\n", out);
        FUZZ_CHECK(nerr2 == 0);
        FUZZ_CHECK(t2->n_actors == t->n_actors);
        for (int i = 0; i < t->n_actors; i++)
            FUZZ_CHECK(strcmp(t2->actors[i].name, t->actors[i].name) == 0);
        sl_topology_free(t2);
        free(out);
    }
    sl_topology_free(t);
    free(text);
    return 0;
}
