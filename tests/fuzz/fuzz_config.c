/*
 * fuzz_config.c - libFuzzer target for the INI config loader. The input is loaded as text
 * against a table holding every option type (bounded and unbounded) plus a dynamic
 * callback. A load that fails must say why; one that succeeds must leave every field
 * inside its type and bounds. Linked with replay.c, the corpus also runs in 'make test'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_cfg {
    char top[8];
    char name[16];
    int64_t count;
    bool enabled;
    uint64_t max_size;
    int64_t timeout_ms;
    char listen[48];
    int mode;
    int64_t any;
    uint64_t any_size;
    int64_t any_ms;
};

#define OFF(f) offsetof(struct fuzz_cfg, f)
#define SZ(f) sizeof(((struct fuzz_cfg *)0)->f)

static const char *const modes[] = {"fast", "safe", "slow", NULL};

static const struct tm_config_option options[] = {
    {"", "top", TM_CONF_STRING, "t", OFF(top), SZ(top), 0, 0, NULL, NULL},
    {"main", "name", TM_CONF_STRING, "demo", OFF(name), SZ(name), 0, 0, NULL, NULL},
    {"main", "count", TM_CONF_INT, "3", OFF(count), 0, -5, 100, NULL, NULL},
    {"main", "enabled", TM_CONF_BOOL, "yes", OFF(enabled), 0, 0, 0, NULL, NULL},
    {"main", "max_size", TM_CONF_SIZE, "1MiB", OFF(max_size), 0, 1024, 1073741824, NULL, NULL},
    {"main", "timeout", TM_CONF_DURATION, "5s", OFF(timeout_ms), 0, 100, 86400000, NULL, NULL},
    {"main", "mode", TM_CONF_ENUM, "safe", OFF(mode), 0, 0, 0, modes, NULL},
    {"net", "listen", TM_CONF_ADDR, "127.0.0.1:5044", OFF(listen), SZ(listen), 0, 0, NULL, NULL},
    {"limits", "any", TM_CONF_INT, NULL, OFF(any), 0, 0, 0, NULL, NULL},
    {"limits", "any_size", TM_CONF_SIZE, NULL, OFF(any_size), 0, 0, 0, NULL, NULL},
    {"limits", "any_time", TM_CONF_DURATION, NULL, OFF(any_ms), 0, 0, 0, NULL, NULL},
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* [dyn.NAME] sections: any key with a non-empty value; other sections are refused. */
static int dynamic_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    size_t *accepted = arg;

    if (strncmp(section, "dyn.", 4) != 0 || section[4] == '\0')
        return tm_err(err, "unknown section (expected [dyn.NAME])");
    if (value[0] == '\0')
        return tm_err(err, "empty value for '%s'", key);
    (*accepted)++;
    return 0;
}

/* A char array field must hold a terminated string and not be cut short of it. */
static void check_string(const char *field, size_t size)
{
    if (memchr(field, '\0', size) == NULL)
        abort();
}

static void check_loaded(const struct fuzz_cfg *c)
{
    check_string(c->top, sizeof(c->top));
    check_string(c->name, sizeof(c->name));
    check_string(c->listen, sizeof(c->listen));
    if (c->count < -5 || c->count > 100)
        abort();
    if (c->max_size < 1024 || c->max_size > 1073741824)
        abort();
    if (c->timeout_ms < 100 || c->timeout_ms > 86400000)
        abort();
    if (c->mode < 0 || c->mode > 2)
        abort();
    if (c->any_ms < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t accepted = 0;
    struct tm_config_spec spec = {options, dynamic_cb, &accepted};
    char err[TM_ERR_LEN] = "";
    struct fuzz_cfg c;
    char *text;
    uint64_t u64;
    int64_t i64;
    bool b;

    /* An exact-size copy, so that the sanitizers catch any read past the terminator. */
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&c, 0xa5, sizeof(c));
    if (tm_config_load_string(&spec, &c, text, "fuzz.ini", err) != 0) {
        if (strncmp(err, "fuzz.ini", 8) != 0)
            abort();
    } else {
        check_loaded(&c);
        /* An override after a load keeps the same guarantees. */
        if (tm_config_set(&spec, &c, "main", "name", text, err) == 0 && strcmp(c.name, text) != 0)
            abort();
        check_loaded(&c);
    }
    /* The typed parsers on the whole input. */
    if (tm_config_parse_duration(text, &i64) == 0 && i64 < 0)
        abort();
    tm_config_parse_size(text, &u64);
    tm_config_parse_bool(text, &b);
    free(text);
    return 0;
}
