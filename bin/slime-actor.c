/*
 * slime-actor — hosts one built-in actor kind in this process:
 *
 *   slime-actor --kind KIND --name NAME [--run-dir DIR] [--topology FILE] [--verbose]
 *
 * The supervisor starts it with SL_RUN_DIR, SL_ACTOR_NAME, SL_ACTOR_KIND and
 * SL_TOPOLOGY set; flags override them. The kinds are the registry in
 * actors/actor.c (sl_actor_kind_find); everything else is sl_actor_main.
 */
#include "actor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *kind = getenv(SL_ENV_ACTOR_KIND);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--kind") == 0) kind = argv[i + 1];
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: slime-actor --kind KIND --name NAME [--run-dir DIR] [--topology FILE] "
                   "[--verbose]\nkinds: %s\n", sl_actor_kind_list());
            return 0;
        }
    if (!kind || !*kind) {
        fprintf(stderr, "slime-actor: no kind (--kind KIND or SL_ACTOR_KIND); kinds: %s\n",
                sl_actor_kind_list());
        return 2;
    }
    const sl_actor_ops *ops = sl_actor_kind_find(kind);
    if (!ops) {
        fprintf(stderr, "slime-actor: unknown kind '%s' (kinds: %s)\n", kind, sl_actor_kind_list());
        return 2;
    }
    return sl_actor_main(ops, argc, argv);
}
