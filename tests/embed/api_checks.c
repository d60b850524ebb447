/* CTest embed_install, part 2: libpatchswarm's error paths, through the
 * installed header and library (built with plain cc and pkg-config).
 *   api_checks CONFIG BAD_TRUST_CONFIG MANIFEST OUT_DIR */
#define _POSIX_C_SOURCE 200809L
#include <patchswarm/patchswarm.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define EXPECT(cond)                                                                        \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "api_checks:%d: failed: %s (last error: %s)\n", __LINE__, #cond, \
                    ps_last_error());                                                       \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static ps_node* the_node;
static _Atomic ps_status from_callback = PS_OK;
static _Atomic int callbacks = 0;

static void on_progress(const ps_progress* p, void* user) {
    (void)p;
    (void)user;
    /* Waiting for the node's own thread from it is refused, not a deadlock. */
    if (callbacks == 0) from_callback = ps_node_stop(the_node);
    callbacks++;
}

int main(int argc, char** argv) {
    if (argc < 5) return 2;
    char out[1024], id[65], id2[65];
    snprintf(out, sizeof out, "%s/out.bin", argv[4]);

    ps_node* n = (ps_node*)1;
    EXPECT(ps_node_create(NULL, &n) == PS_ERR_ARGUMENT && n == NULL && *ps_last_error());
    EXPECT(ps_node_create("/nonexistent/patchswarm.toml", &n) == PS_ERR_CONFIG && n == NULL);
    EXPECT(strstr(ps_last_error(), "/nonexistent/patchswarm.toml") != NULL);
    EXPECT(ps_node_create(argv[2], &n) == PS_ERR_CONFIG && strstr(ps_last_error(), "node.trust") != NULL);
    EXPECT(strcmp(ps_status_name(PS_ERR_ROLLBACK), "PS_ERR_ROLLBACK") == 0);
    EXPECT(strcmp(ps_version(), "") != 0);

    EXPECT(ps_node_create(argv[1], &n) == PS_OK && n != NULL && *ps_last_error() == '\0');
    the_node = n;
    EXPECT(ps_node_add_manifest(n, argv[3], out, id) == PS_ERR_STATE);  /* not started */
    EXPECT(ps_node_stop(n) == PS_OK);                                   /* not running: nothing to do */
    EXPECT(ps_node_set_progress(n, on_progress, NULL, 50) == PS_OK);
    EXPECT(ps_node_start(n) == PS_OK);
    EXPECT(ps_node_start(n) == PS_ERR_STATE);
    EXPECT(ps_node_set_progress(n, NULL, NULL, 0) == PS_ERR_STATE);
    EXPECT(ps_node_add_manifest(n, NULL, out, id) == PS_ERR_ARGUMENT);
    EXPECT(ps_node_add_manifest(n, "/nonexistent.manifest", out, id) == PS_ERR_ADD);
    EXPECT(ps_node_add_manifest(n, argv[3], "relative.bin", id) == PS_ERR_ADD);
    EXPECT(strstr(ps_last_error(), "absolute") != NULL);
    EXPECT(ps_node_add_name(n, "Not A Name!", NULL, 1000, id) == PS_ERR_ADD);
    EXPECT(ps_node_add_manifest(n, argv[3], out, id) == PS_OK && strlen(id) == 64);
    EXPECT(ps_node_add_manifest(n, argv[3], out, id2) == PS_ERR_ALREADY);
    /* No swarm to ask (no bootstrap): the name lookup ends with no manifest or the time limit. */
    ps_status byname = ps_node_add_name(n, "nobody-has-this", NULL, 3000, id2);
    EXPECT(byname == PS_ERR_ADD || byname == PS_ERR_TIMEOUT);
    for (int i = 0; i < 500 && callbacks == 0; ++i) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    EXPECT(callbacks > 0 && from_callback == PS_ERR_STATE);
    EXPECT(ps_node_stop(n) == PS_OK);
    EXPECT(ps_node_stop(n) == PS_OK);
    EXPECT(ps_node_add_manifest(n, argv[3], out, id) == PS_ERR_STATE);  /* stopped */
    EXPECT(ps_node_start(n) == PS_ERR_STATE);                           /* started once */
    ps_node_free(n);
    ps_node_free(NULL);
    printf("api_checks: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
