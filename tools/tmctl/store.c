/*
 * store.c - tmctl's Redis: one synchronous hiredis connection (a CLI waits anyway), and
 * the registry keys (docs/redis-keys.md, "Needs, offers and priorities"):
 *
 *   tm:needs            set of every need id (open and closed)
 *   tm:need:{id}        hash: the need's fields (ctl_need_fields, id aside), empty
 *                       fields left out
 *   tm:offers           set of every offer id
 *   tm:offer:{id}       hash: the offer's fields (ctl_offer_fields, id aside)
 *
 * Writes of a batch go in one MULTI/EXEC, so an import is applied whole or not at all.
 * Reads validate what they find with records.c like any other input.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tmctl.h"

#define ARGS_MAX 64

struct cmd {
    int argc;
    char *argv[ARGS_MAX];
    bool oom;
};

static void cmd_add(struct cmd *c, const char *s)
{
    char *d = strdup(s);

    if (d == NULL || c->argc == ARGS_MAX) {
        free(d);
        c->oom = true;
        return;
    }
    c->argv[c->argc++] = d;
}

static void cmd_addf(struct cmd *c, const char *fmt, ...) TM_PRINTF(2, 3);
static void cmd_addf(struct cmd *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cmd_add(c, buf);
}

static void cmd_clear(struct cmd *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
    c->oom = false;
}

/* Appends the command to the pipeline and clears it. Returns 0 or -1. */
static int cmd_append(struct ctl *ctl, struct cmd *c, char *err)
{
    int rc;

    if (c->oom) {
        cmd_clear(c);
        return tm_err(err, "out of memory");
    }
    rc = redisAppendCommandArgv(ctl->redis, c->argc, (const char **)c->argv, NULL);
    cmd_clear(c);
    if (rc != REDIS_OK)
        return tm_err(err, "redis: %s", ctl->redis->errstr);
    return 0;
}

int ctl_redis_connect(struct ctl *c, char *err)
{
    const struct ctl_config *cfg = &c->cfg;
    struct timeval tv = {(time_t)(cfg->redis_timeout_ms / 1000),
                         (suseconds_t)(cfg->redis_timeout_ms % 1000) * 1000};
    char host[TM_ADDR_LEN];
    const char *colon = strrchr(cfg->redis, ':');
    redisReply *r = NULL;
    int64_t port;

    if (c->redis != NULL)
        return 0;
    if (colon == NULL || tm_parse_int64(colon + 1, 1, 65535, &port) != 0)
        return tm_err(err, "redis address '%s': expected HOST:PORT", cfg->redis);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->redis), cfg->redis);
    if (host[0] == '[' && strlen(host) > 2 && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    c->redis = redisConnectWithTimeout(host, (int)port, tv);
    if (c->redis == NULL || c->redis->err) {
        tm_err(err, "redis %s: %s", cfg->redis,
               c->redis != NULL ? c->redis->errstr : "out of memory");
        ctl_redis_close(c);
        return -1;
    }
    redisSetTimeout(c->redis, tv);
    if (cfg->redis_password[0] != '\0') {
        const char *argv[3] = {"AUTH", cfg->redis_username, cfg->redis_password};
        if (cfg->redis_username[0] != '\0')
            r = ctl_redis_argv(c, 3, argv, err);
        else {
            argv[1] = cfg->redis_password;
            r = ctl_redis_argv(c, 2, argv, err);
        }
        if (r == NULL) {
            ctl_redis_close(c);
            return tm_err(err, "redis %s: AUTH refused", cfg->redis);
        }
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        char db[24];
        const char *argv[2] = {"SELECT", db};
        snprintf(db, sizeof(db), "%lld", (long long)cfg->redis_db);
        r = ctl_redis_argv(c, 2, argv, err);
        if (r == NULL) {
            ctl_redis_close(c);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

void ctl_redis_close(struct ctl *c)
{
    if (c->redis != NULL)
        redisFree(c->redis);
    c->redis = NULL;
}

redisReply *ctl_redis_argv(struct ctl *c, int argc, const char **argv, char *err)
{
    redisReply *r = redisCommandArgv(c->redis, argc, argv, NULL);

    if (r == NULL) {
        tm_err(err, "redis: %s", c->redis->errstr[0] ? c->redis->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        tm_err(err, "redis: %s: %.120s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *ctl_redis_reply(struct ctl *c, char *err)
{
    void *p = NULL;

    if (redisGetReply(c->redis, &p) != REDIS_OK || p == NULL) {
        tm_err(err, "redis: %s", c->redis->errstr[0] ? c->redis->errstr : "no reply");
        return NULL;
    }
    if (((redisReply *)p)->type == REDIS_REPLY_ERROR) {
        tm_err(err, "redis: %.160s", ((redisReply *)p)->str);
        freeReplyObject(p);
        return NULL;
    }
    return p;
}

/* ---- reading records ------------------------------------------------------------- */

struct hash_fields {
    const char *id;
    const redisReply *r; /* HGETALL reply */
};

static const char *hash_get(void *arg, const char *name)
{
    const struct hash_fields *h = arg;

    if (strcmp(name, "id") == 0)
        return h->id;
    for (size_t i = 0; i + 1 < h->r->elements; i += 2)
        if (h->r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(h->r->element[i]->str, name) == 0 &&
            h->r->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->r->element[i + 1]->str;
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strverscmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The members of set, sorted (version order: N-2 before N-10), and HGETALL of
 * prefix{id} for each, pipelined. parse turns one hash into a record of size bytes.
 */
static int load(struct ctl *c, const char *set, const char *prefix, size_t size,
                int (*parse)(void *rec, struct hash_fields *h, int64_t today, char *err),
                void **out, size_t *n, char *err)
{
    const char *argv[2] = {"SMEMBERS", set};
    redisReply *members = NULL;
    const char **ids = NULL;
    char *recs = NULL;
    size_t count = 0, got = 0;
    int rc = -1;

    *out = NULL;
    *n = 0;
    members = ctl_redis_argv(c, 2, argv, err);
    if (members == NULL)
        return -1;
    count = members->elements;
    ids = calloc(count + 1, sizeof(*ids));
    recs = calloc(count + 1, size);
    if (ids == NULL || recs == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        ids[i] = members->element[i]->str;
    qsort(ids, count, sizeof(*ids), cmp_ids);
    for (size_t i = 0; i < count; i++) {
        struct cmd cmd = {0};
        cmd_add(&cmd, "HGETALL");
        cmd_addf(&cmd, "%s%s", prefix, ids[i]);
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
    }
    for (size_t i = 0; i < count; i++) {
        redisReply *r = ctl_redis_reply(c, err);
        struct hash_fields h = {ids[i], r};
        char e2[TM_ERR_LEN];
        if (r == NULL)
            goto out; /* the connection is unusable now: the caller stops */
        if (r->elements == 0)
            ctl_error("warning: '%s' is in %s but %s%s is missing; skipped", ids[i], set, prefix,
                      ids[i]);
        else if (parse(recs + got * size, &h, c->today, e2) != 0) {
            tm_err(err, "%s%s: %s", prefix, ids[i], e2);
            freeReplyObject(r);
            /* drain the rest so the connection stays in step */
            for (size_t k = i + 1; k < count; k++) {
                redisReply *x = ctl_redis_reply(c, e2);
                if (x != NULL)
                    freeReplyObject(x);
            }
            goto out;
        } else
            got++;
        freeReplyObject(r);
    }
    *out = recs;
    *n = got;
    recs = NULL;
    rc = 0;
out:
    free(recs);
    free(ids);
    freeReplyObject(members);
    return rc;
}

static int parse_need(void *rec, struct hash_fields *h, int64_t today, char *err)
{
    return ctl_need_parse(rec, hash_get, h, today, err);
}

static int parse_offer(void *rec, struct hash_fields *h, int64_t today, char *err)
{
    (void)today;
    return ctl_offer_parse(rec, hash_get, h, err);
}

int ctl_store_load_needs(struct ctl *c, struct ctl_need **out, size_t *n, char *err)
{
    void *p;
    int rc = load(c, "tm:needs", "tm:need:", sizeof(struct ctl_need), parse_need, &p, n, err);

    *out = p;
    return rc;
}

int ctl_store_load_offers(struct ctl *c, struct ctl_offer **out, size_t *n, char *err)
{
    void *p;
    int rc = load(c, "tm:offers", "tm:offer:", sizeof(struct ctl_offer), parse_offer, &p, n, err);

    *out = p;
    return rc;
}

/* ---- writing records --------------------------------------------------------------- */

/* Sends MULTI, the queued commands (already appended: queued of them), EXEC; checks. */
static int transact_end(struct ctl *c, size_t queued, char *err)
{
    struct cmd exec = {0};
    redisReply *r;
    int rc = 0;

    cmd_add(&exec, "EXEC");
    if (cmd_append(c, &exec, err) != 0)
        return -1;
    /* MULTI's +OK, then +QUEUED per command, then EXEC's array. */
    for (size_t i = 0; i < queued + 1; i++) {
        r = ctl_redis_reply(c, err);
        if (r == NULL)
            rc = -1;
        else
            freeReplyObject(r);
        if (rc != 0 && c->redis->err)
            return -1;
    }
    r = ctl_redis_reply(c, err);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return tm_err(err, "redis: transaction aborted");
    }
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            tm_err(err, "redis: %.160s", r->element[i]->str);
            rc = -1;
            break;
        }
    freeReplyObject(r);
    return rc;
}

static int multi(struct ctl *c, char *err)
{
    struct cmd m = {0};

    cmd_add(&m, "MULTI");
    return cmd_append(c, &m, err);
}

int ctl_store_put_needs(struct ctl *c, const struct ctl_need *needs, size_t n, char *err)
{
    size_t queued = 0;
    char buf[CTL_DESC_MAX + 1];

    if (multi(c, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct cmd cmd = {0};
        cmd_add(&cmd, "DEL");
        cmd_addf(&cmd, "tm:need:%s", needs[i].id);
        if (cmd_append(c, &cmd, err) != 0)
            return -1;
        cmd_add(&cmd, "HSET");
        cmd_addf(&cmd, "tm:need:%s", needs[i].id);
        for (size_t f = 1; ctl_need_fields[f] != NULL; f++) {
            const char *v = ctl_need_field(&needs[i], ctl_need_fields[f], buf, sizeof(buf));
            if (v[0] == '\0')
                continue;
            cmd_add(&cmd, ctl_need_fields[f]);
            cmd_add(&cmd, v);
        }
        if (cmd_append(c, &cmd, err) != 0)
            return -1;
        cmd_add(&cmd, "SADD");
        cmd_add(&cmd, "tm:needs");
        cmd_add(&cmd, needs[i].id);
        if (cmd_append(c, &cmd, err) != 0)
            return -1;
        queued += 3;
    }
    return transact_end(c, queued, err);
}

int ctl_store_put_offers(struct ctl *c, const struct ctl_offer *offers, size_t n, bool replace,
                         char *err)
{
    const char *argv[2] = {"SMEMBERS", "tm:offers"};
    redisReply *old = NULL;
    size_t queued = 0;
    char buf[CTL_DESC_MAX + 1];
    int rc = -1;

    if (replace && (old = ctl_redis_argv(c, 2, argv, err)) == NULL)
        return -1;
    if (multi(c, err) != 0)
        goto out;
    for (size_t k = 0; old != NULL && k < old->elements; k++) {
        bool keep = false;
        struct cmd cmd = {0};
        for (size_t i = 0; i < n && !keep; i++)
            keep = strcmp(offers[i].id, old->element[k]->str) == 0;
        if (keep)
            continue;
        cmd_add(&cmd, "DEL");
        cmd_addf(&cmd, "tm:offer:%s", old->element[k]->str);
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
        cmd_add(&cmd, "SREM");
        cmd_add(&cmd, "tm:offers");
        cmd_add(&cmd, old->element[k]->str);
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
        queued += 2;
    }
    for (size_t i = 0; i < n; i++) {
        struct cmd cmd = {0};
        cmd_add(&cmd, "DEL");
        cmd_addf(&cmd, "tm:offer:%s", offers[i].id);
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
        cmd_add(&cmd, "HSET");
        cmd_addf(&cmd, "tm:offer:%s", offers[i].id);
        for (size_t f = 1; ctl_offer_fields[f] != NULL; f++) {
            const char *v = ctl_offer_field(&offers[i], ctl_offer_fields[f], buf, sizeof(buf));
            if (v[0] == '\0')
                continue;
            cmd_add(&cmd, ctl_offer_fields[f]);
            cmd_add(&cmd, v);
        }
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
        cmd_add(&cmd, "SADD");
        cmd_add(&cmd, "tm:offers");
        cmd_add(&cmd, offers[i].id);
        if (cmd_append(c, &cmd, err) != 0)
            goto out;
        queued += 3;
    }
    rc = transact_end(c, queued, err);
out:
    freeReplyObject(old);
    return rc;
}
