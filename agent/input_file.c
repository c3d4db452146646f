/*
 * input_file.c - the file input: tail.c follows the globs of `paths`, each complete line
 * goes to agent_line(), and the read positions are saved in the state dir's
 * registry.NAME only at checkpoints (after the spool has the events of those lines), and
 * in registry.NAME.fast after each spool flush when the spool is fsynced on a timer
 * (agent.c explains why; pick_registry below decides which one a start uses).
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "tail.h"
#include "tm/tm_file.h"
#include "tm/tm_log.h"

struct file_state {
    struct tail *tail;
    char *globs_buf;
    const char *globs[AGENT_MAX_GLOBS];
    uint64_t truncated_seen;
};

static void line_cb(void *arg, const char *path, const char *line, size_t len,
                    const struct tail_pos *pos)
{
    struct line_origin origin = {pos->dev, pos->ino, pos->off};

    (void)path;
    agent_line(arg, line, len, &origin);
}

#define REGISTRY_MAX (4u * 1024 * 1024)

_Static_assert(TAIL_MARK_WORDS == AGENT_MARK_WORDS, "a checkpoint's stamp is the spool mark");

/*
 * The fast registry replaces the durable one when it is newer (its stamp is ahead of the
 * durable one's) and the spool reaches its stamp in every lane (nothing it stands for was
 * lost: true after a SIGKILL, maybe not after a power loss). The spool is fsynced first,
 * then the fast registry is written over the durable one, durably. Otherwise it is
 * removed. Returns 0, or -1 with err.
 */
static int pick_registry(struct input *in, const char *registry, const char *fast, char *err)
{
    uint64_t dm[TAIL_MARK_WORDS], fm[TAIL_MARK_WORDS], sm[AGENT_MARK_WORDS];
    bool older = false, ahead = false, newer, reached = true;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = tail_registry_mark(fast, fm, err)) == 0)
        return 0;
    if (rc < 0) {
        /* written without fsync: a power loss may leave it empty or torn */
        tm_log_warn("input '%s': ignoring the positions of the last spool flush: %s", in->cfg->name,
                    err);
        unlink(fast);
        return 0;
    }
    if (tail_registry_mark(registry, dm, err) < 0)
        return -1;
    agent_spool_mark(in->agent, sm);
    for (int i = 0; i < TAIL_MARK_WORDS; i++) {
        older = older || fm[i] < dm[i];
        ahead = ahead || fm[i] > dm[i];
        reached = reached && fm[i] <= sm[i];
    }
    newer = ahead && !older; /* stamps only grow: a fast one behind in a lane is stale */
    if (newer && reached) {
        if (agent_spool_sync(in->agent, err) != 0 ||
            tm_file_read(fast, REGISTRY_MAX, false, &data, &len, err) != 0 ||
            tm_file_write_atomic(registry, data, len, 0600, 0, err) != 0) {
            free(data);
            return -1;
        }
        free(data);
        tm_log_info("input '%s': resuming at the read positions of the last spool flush "
                    "(spool at %llu/%llu)",
                    in->cfg->name, (unsigned long long)fm[0], (unsigned long long)fm[1]);
    } else if (newer) {
        tm_log_warn("input '%s': the positions of the last spool flush are past what the "
                    "spool kept (%llu/%llu, spool at %llu/%llu: a power loss?); resuming at "
                    "the last synced positions, lines since then are read again",
                    in->cfg->name, (unsigned long long)fm[0], (unsigned long long)fm[1],
                    (unsigned long long)sm[0], (unsigned long long)sm[1]);
    }
    unlink(fast);
    return 0;
}

/* Temporary files of registry writes cut short by a crash (tm_file_write_atomic's). */
static void remove_strays(const char *registry)
{
    char pattern[AGENT_PATH_LEN + 80];
    glob_t g;

    snprintf(pattern, sizeof(pattern), "%s.tmp*", registry);
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
}

static int file_start(struct input *in, char *err)
{
    struct file_state *fs = calloc(1, sizeof(*fs));
    struct tail_config tc = {0};
    char registry[AGENT_PATH_LEN + 64], fast[AGENT_PATH_LEN + 64];
    char name[128];
    char *save = NULL;
    size_t n = 0;

    if (fs == NULL || (fs->globs_buf = strdup(in->cfg->paths)) == NULL) {
        free(fs);
        tm_err(err, "out of memory");
        return -1;
    }
    in->state = fs;
    for (char *g = strtok_r(fs->globs_buf, ",", &save); g != NULL; g = strtok_r(NULL, ",", &save)) {
        while (*g == ' ')
            g++;
        for (size_t k = strlen(g); k > 0 && g[k - 1] == ' '; k--)
            g[k - 1] = '\0';
        if (*g == '\0')
            continue;
        if (n == AGENT_MAX_GLOBS) {
            tm_err(err, "paths: more than %d globs", AGENT_MAX_GLOBS);
            return -1;
        }
        fs->globs[n++] = g;
    }
    if (n == 0) {
        tm_err(err, "paths: no glob");
        return -1;
    }
    snprintf(name, sizeof(name), "registry.%s", in->cfg->name);
    agent_state_path(in->agent, name, registry, sizeof(registry));
    snprintf(name, sizeof(name), "registry.%s.fast", in->cfg->name);
    agent_state_path(in->agent, name, fast, sizeof(fast));
    remove_strays(registry);
    remove_strays(fast);
    if (pick_registry(in, registry, fast, err) != 0)
        return -1;
    tc.globs = fs->globs;
    tc.n_globs = n;
    tc.registry_path = registry;
    tc.fast_registry_path = fast;
    tc.start = in->cfg->start == 1 ? TAIL_START_END : TAIL_START_BEGINNING;
    tc.max_line = (size_t)in->cfg->max_line;
    fs->tail = tail_create(agent_base(in->agent), &tc, line_cb, in, err);
    return fs->tail == NULL ? -1 : 0;
}

static int file_checkpoint(struct input *in, const uint64_t mark[AGENT_MARK_WORDS], bool fast,
                           char *err)
{
    struct file_state *fs = in->state;
    struct tail_stats st;

    if (fs == NULL || fs->tail == NULL)
        return 0;
    tail_get_stats(fs->tail, &st);
    tm_counter_add(in->truncated, st.truncated_lines - fs->truncated_seen);
    fs->truncated_seen = st.truncated_lines;
    tail_set_mark(fs->tail, mark);
    return fast ? tail_checkpoint_fast(fs->tail, err) : tail_checkpoint(fs->tail, err);
}

static void file_stop(struct input *in)
{
    struct file_state *fs = in->state;

    if (fs == NULL)
        return;
    tail_destroy(fs->tail);
    free(fs->globs_buf);
    free(fs);
    in->state = NULL;
}

const struct input_ops input_file_ops = {
    .type = "file",
    .start = file_start,
    .checkpoint = file_checkpoint,
    .finished = NULL, /* files never finish: more may be written */
    .stop = file_stop,
};
