/* libpatchswarm: a patchswarm node inside your program (docs/embedding.md).
 *
 * The node is the daemon `patchswarm node --config FILE` runs, from the same
 * TOML file: it joins the swarm, serves what it holds, downloads the patches it
 * is given (and, as configured, the mandatory ones announced), keeps them
 * across restarts, and answers on its control socket (so `patchswarm status
 * --socket ...` works on it too).
 *
 * Threads: the node runs its libuv loop on a thread the library starts in
 * ps_node_start and joins in ps_node_stop. The progress callback is called on
 * that thread, never on yours; it must return quickly and must not call
 * ps_node_add_* / ps_node_stop / ps_node_free (they return PS_ERR_STATE there).
 * Every other function may be called from any thread, one call at a time per
 * node.
 *
 * Errors: every function returns a ps_status; ps_last_error() says why the last
 * call on the calling thread failed. No C++ exception leaves the library.
 */
#ifndef PATCHSWARM_H
#define PATCHSWARM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PS_API __attribute__((visibility("default")))
#else
#define PS_API
#endif

typedef enum ps_status {
    PS_OK = 0,
    PS_ERR_ARGUMENT = 1, /* a NULL or empty argument where one is needed */
    PS_ERR_CONFIG = 2,   /* the config file cannot be read, a setting is wrong, or the operator key is missing */
    PS_ERR_START = 3,    /* the node did not start (data folder, ports, control socket in use, ...) */
    PS_ERR_STATE = 4,    /* not now: not started, started already, stopped, or called from the node's thread */
    PS_ERR_ADD = 5,      /* the patch was not added: the manifest does not verify, no manifest has that name,
                            the out path is wrong, the quota or a policy refuses it */
    PS_ERR_ALREADY = 6,  /* the patch is already on this node */
    PS_ERR_ROLLBACK = 7, /* older than (or conflicting with) a version this node accepted */
    PS_ERR_TIMEOUT = 8,  /* the node did not answer in time */
    PS_ERR_INTERNAL = 9  /* a bug or out of memory; the message says what */
} ps_status;

typedef enum ps_patch_state {
    PS_PATCH_DOWNLOADING = 0,
    PS_PATCH_PAUSED = 1,
    PS_PATCH_COMPLETE = 2, /* verified, written to out_path and durable */
    PS_PATCH_SERVING = 3,  /* served only (a published file), not downloaded here */
    PS_PATCH_FAILED = 4    /* see error */
} ps_patch_state;

/* One patch's progress. The strings are valid during the callback only. */
typedef struct ps_progress {
    const char* id;          /* manifest id, 64 hex digits */
    const char* name;        /* patch name */
    uint64_t version;
    uint64_t bytes_held;     /* verified bytes on disk */
    uint64_t bytes_total;    /* the patch's size */
    ps_patch_state state;
    const char* out_path;    /* where the verified file goes ("" for a super-node's cached copy) */
    const char* error;       /* why it failed; "" otherwise */
} ps_progress;

/* Called on the node's thread each time a patch's bytes held or state change
 * (checked every interval_ms), and once for each patch when it starts. */
typedef void (*ps_progress_fn)(const ps_progress* progress, void* user);

typedef struct ps_node ps_node;

/* "0.1.0" */
PS_API const char* ps_version(void);
/* "PS_ERR_CONFIG", ... */
PS_API const char* ps_status_name(ps_status status);
/* Why the last failed call on this thread failed ("" when none did). */
PS_API const char* ps_last_error(void);

/* Reads and checks the config file (the daemon's TOML); the node does not run
 * yet. On success *out is a node to free with ps_node_free; on failure NULL. */
PS_API ps_status ps_node_create(const char* config_path, ps_node** out);
/* The progress callback (NULL: none), before ps_node_start; interval_ms 0 = 500. */
PS_API ps_status ps_node_set_progress(ps_node* node, ps_progress_fn fn, void* user, uint32_t interval_ms);
/* Starts the node's thread and returns once the node runs (or failed to start). */
PS_API ps_status ps_node_start(ps_node* node);
/* Downloads the patch of a signed manifest file. out_path: absolute path of the
 * verified file, or NULL for the config's patches folder (NAME-vVERSION). If
 * id_out is not NULL, the manifest id (64 hex digits and a NUL) goes there. */
PS_API ps_status ps_node_add_manifest(ps_node* node, const char* manifest_path, const char* out_path, char id_out[65]);
/* The same for the newest manifest announced under a patch name (gossip or the
 * DHT); waits for the lookup, up to timeout_ms (0 = 60 s). */
PS_API ps_status ps_node_add_name(ps_node* node, const char* name, const char* out_path, uint32_t timeout_ms,
                                  char id_out[65]);
/* Stops the node cleanly (withdraws its DHT records, flushes its stores) and
 * joins its thread; downloads resume at the next start. Stopping a node that
 * is not running does nothing. */
PS_API ps_status ps_node_stop(ps_node* node);
/* Stops the node if it runs, then frees it. NULL is allowed. */
PS_API void ps_node_free(ps_node* node);

#ifdef __cplusplus
}
#endif

#endif /* PATCHSWARM_H */
