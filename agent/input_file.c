/*
 * input_file.c - the file input: tail.c follows the globs of `paths`, each complete line
 * goes to agent_line(), and the read positions are saved in the state dir's
 * registry.NAME only at checkpoints (after the spool has the events of those lines).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "tail.h"

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

static int file_start(struct input *in, char *err)
{
    struct file_state *fs = calloc(1, sizeof(*fs));
    struct tail_config tc = {0};
    char registry[AGENT_PATH_LEN + 64];
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
    tc.globs = fs->globs;
    tc.n_globs = n;
    tc.registry_path = registry;
    tc.start = in->cfg->start == 1 ? TAIL_START_END : TAIL_START_BEGINNING;
    tc.max_line = (size_t)in->cfg->max_line;
    fs->tail = tail_create(agent_base(in->agent), &tc, line_cb, in, err);
    return fs->tail == NULL ? -1 : 0;
}

static int file_checkpoint(struct input *in, char *err)
{
    struct file_state *fs = in->state;
    struct tail_stats st;

    if (fs == NULL || fs->tail == NULL)
        return 0;
    tail_get_stats(fs->tail, &st);
    tm_counter_add(in->truncated, st.truncated_lines - fs->truncated_seen);
    fs->truncated_seen = st.truncated_lines;
    return tail_checkpoint(fs->tail, err);
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
