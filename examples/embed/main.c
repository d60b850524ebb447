/* A program with a patchswarm node inside (libpatchswarm, docs/embedding.md):
 *
 *   embed_fetch CONFIG MANIFEST OUT [TIMEOUT_S]
 *
 * starts a node from the daemon's TOML config, has it download the patch of a
 * signed manifest to OUT (an absolute path), prints its progress as the node
 * reports it, and stops the node once the file is complete (exit 0), failed
 * (1) or late (3). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_cond_timedwait */
#include <patchswarm/patchswarm.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PATCHES 16

/* What the callbacks saw, per patch id; shared with the main thread. */
struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int count;
    char id[MAX_PATCHES][65];
    ps_patch_state state[MAX_PATCHES];
};

static const char* state_name(ps_patch_state s) {
    switch (s) {
        case PS_PATCH_DOWNLOADING: return "downloading";
        case PS_PATCH_PAUSED: return "paused";
        case PS_PATCH_COMPLETE: return "complete";
        case PS_PATCH_SERVING: return "serving";
        case PS_PATCH_FAILED: return "failed";
    }
    return "?";
}

/* Called on the node's thread: print, remember the state, wake main. */
static void on_progress(const ps_progress* p, void* user) {
    struct seen* s = user;
    printf("progress %s v%llu: %llu of %llu bytes, %s%s%s\n", p->name, (unsigned long long)p->version,
           (unsigned long long)p->bytes_held, (unsigned long long)p->bytes_total, state_name(p->state),
           *p->error ? ": " : "", p->error);
    fflush(stdout);
    pthread_mutex_lock(&s->mu);
    int i = 0;
    while (i < s->count && strcmp(s->id[i], p->id) != 0) ++i;
    if (i < MAX_PATCHES) {
        if (i == s->count) {
            snprintf(s->id[i], sizeof s->id[i], "%s", p->id);
            s->count++;
        }
        s->state[i] = p->state;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Waits until the patch `id` is complete (0), failed (1) or the deadline (3). */
static int wait_for(struct seen* s, const char* id, int timeout_s) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_s;
    int result = -1;
    pthread_mutex_lock(&s->mu);
    while (result < 0) {
        for (int i = 0; i < s->count; ++i) {
            if (strcmp(s->id[i], id) != 0) continue;
            if (s->state[i] == PS_PATCH_COMPLETE) result = 0;
            if (s->state[i] == PS_PATCH_FAILED) result = 1;
        }
        if (result < 0 && pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT) result = 3;
    }
    pthread_mutex_unlock(&s->mu);
    return result;
}

static int fail(const char* what, ps_status st) {
    fprintf(stderr, "embed_fetch: %s: %s: %s\n", what, ps_status_name(st), ps_last_error());
    return st == PS_ERR_CONFIG || st == PS_ERR_ARGUMENT ? 2 : 1;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: embed_fetch CONFIG MANIFEST OUT [TIMEOUT_S]\n");
        return 2;
    }
    int timeout_s = argc > 4 ? atoi(argv[4]) : 60;
    static struct seen seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {{0}}, {0}};
    printf("libpatchswarm %s\n", ps_version());

    ps_node* node = NULL;
    ps_status st = ps_node_create(argv[1], &node);
    if (st != PS_OK) return fail("create", st);
    if ((st = ps_node_set_progress(node, on_progress, &seen, 200)) != PS_OK || (st = ps_node_start(node)) != PS_OK) {
        int code = fail("start", st);
        ps_node_free(node);
        return code;
    }
    char id[65];
    st = ps_node_add_manifest(node, argv[2], argv[3], id);
    if (st != PS_OK) { /* PS_ERR_ALREADY too: this example starts from an empty data folder */
        int code = fail("add", st);
        ps_node_free(node);
        return code;
    }
    printf("added %s\n", id);
    int result = wait_for(&seen, id, timeout_s);
    if ((st = ps_node_stop(node)) != PS_OK) fail("stop", st);
    ps_node_free(node);
    printf("%s %s\n", result == 0 ? "complete" : result == 1 ? "failed" : "timed out", argv[3]);
    return result;
}
