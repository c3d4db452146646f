/*
 * tm_config.h - INI configuration (parsed by inih) into a program's own config struct.
 *
 * A program describes its options once, as a table of struct tm_config_option: section,
 * key, type, default, bounds and where the value goes in its struct (offsetof). Loading
 * applies every default first, then the file; a later tm_config_set() (command-line
 * overrides) wins over both. An unknown section or key, a bad value, a value out of
 * bounds or a duplicate key is an error naming the file, line and key:
 *     tm-collector.ini:12: [lumberjack] max_frame = '12zz': not a size (use 16MiB, 512k, ...)
 *
 * Sections a table cannot list in advance (one per input, per identity) go to the
 * optional dynamic callback of struct tm_config_spec.
 *
 * Format (docs/config.md): "key = value" lines under "[section]" headers; section and
 * key names are case-sensitive; whole-line comments start with ';' or '#', inline ones
 * with " ;". A line holds at most 4095 bytes and a section name at most 49.
 * inih's switches are process-wide, so two threads must not load at the same time.
 *
 * Values:
 *   TM_CONF_STRING    char array of opt->size bytes at the offset (too long is an error)
 *   TM_CONF_INT       int64_t, decimal, within [min, max]
 *   TM_CONF_BOOL      bool: true/false, yes/no, on/off, 1/0
 *   TM_CONF_SIZE      uint64_t bytes: 123, 64k, 16KiB, 8M, 16MiB, 1G (k = 1024), in [min, max]
 *   TM_CONF_DURATION  int64_t milliseconds: 250ms, 10s, 5m, 24h, 7d (a bare number is seconds)
 *   TM_CONF_ADDR      char array of opt->size bytes: a valid HOST:PORT, or empty (off)
 *   TM_CONF_ENUM      int: index of the value in opt->choices (NULL-terminated list)
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"

enum tm_config_type {
    TM_CONF_STRING,
    TM_CONF_INT,
    TM_CONF_BOOL,
    TM_CONF_SIZE,
    TM_CONF_DURATION,
    TM_CONF_ADDR,
    TM_CONF_ENUM,
};

struct tm_config_option {
    const char *section; /* "" for keys before any [section] */
    const char *key;
    enum tm_config_type type;
    const char *def;            /* default, in the same text form as the file; NULL = zero/empty */
    size_t offset;              /* offsetof(struct program_config, field) */
    size_t size;                /* STRING and ADDR: size of the char array */
    int64_t min, max;           /* INT, SIZE, DURATION: bounds; both 0 = unbounded (INT: any
                                   int64; SIZE, DURATION: any value >= 0) */
    const char *const *choices; /* ENUM: NULL-terminated list of accepted values */
    const char *help;           /* one line, for docs and --help */
};

/*
 * Called for keys in sections the table does not know. Returns 0 when it accepts the
 * key, or -1 after writing the reason (without file and line) into err.
 */
typedef int (*tm_config_dynamic_cb)(void *arg, const char *section, const char *key,
                                    const char *value, char *err);

struct tm_config_spec {
    const struct tm_config_option *options; /* terminated by an entry with key == NULL */
    tm_config_dynamic_cb dynamic;           /* may be NULL: unknown sections are errors */
    void *dynamic_arg;
};

/*
 * Stores every option's default into target (zero/empty where def is NULL). Returns 0, or
 * -1 with "bad default: [section] key = 'value': reason" in err (a mistake in the table).
 */
int tm_config_defaults(const struct tm_config_spec *spec, void *target, char *err);

/*
 * Applies defaults, then the INI file at path (NULL: defaults only). Returns 0, or -1
 * with "FILE:LINE: [section] key = 'value': reason", "FILE:LINE: 'line': reason" for a
 * line that is not "[section]" or "key = value", or "cannot open 'FILE': reason" in err.
 * Parsing stops at the first error; target then holds the defaults and the lines before
 * it. A key given twice in one section is an error.
 */
int tm_config_load(const struct tm_config_spec *spec, void *target, const char *path, char *err);

/* Same as tm_config_load, from a NUL-terminated string; name is used in messages. */
int tm_config_load_string(const struct tm_config_spec *spec, void *target, const char *text,
                          const char *name, char *err);

/*
 * Sets one option of the table from text (a command-line override; section NULL means
 * ""). Dynamic sections are not reachable this way. Returns 0, or -1 with
 * "[section] key = 'value': reason" in err and target unchanged.
 */
int tm_config_set(const struct tm_config_spec *spec, void *target, const char *section,
                  const char *key, const char *value, char *err);

/*
 * Same as tm_config_set, but err gets only the reason ("unknown option", "not a size
 * ..."): for a dynamic-section callback, whose message the loader prefixes with file,
 * line, section, key and value itself.
 */
int tm_config_apply(const struct tm_config_spec *spec, void *target, const char *section,
                    const char *key, const char *value, char *err);

/*
 * Appends "key=value" (malloc'd) to a NULL-terminated list of at most max entries, such
 * as a [kafka.librdkafka] pass-through section. The list has room for max + 1 pointers;
 * the caller frees the entries. Returns 0, or -1 with the reason in err.
 */
int tm_config_kv_append(char **list, int *count, int max, const char *key, const char *value,
                        char *err);

/*
 * Reads a secret (a password) from the first line of the file at path into out (outlen
 * bytes), without its line end, for options such as [redis] password_file. The secret
 * never appears in err. Returns 0, or -1 with "cannot open 'FILE': reason", "'FILE':
 * empty first line" or "'FILE': longer than N bytes" in err (out then holds "").
 */
int tm_config_read_secret(const char *path, char *out, size_t outlen, char *err);

/*
 * Typed parsers shared with command-line handling, with the syntax listed above (size
 * suffixes ignore case, duration units do not). Each returns 0, or -1 for bad input:
 * empty, a sign, trailing bytes or a value that overflows.
 */
int tm_config_parse_bool(const char *s, bool *out);
int tm_config_parse_size(const char *s, uint64_t *out);
int tm_config_parse_duration(const char *s, int64_t *out_ms);

#endif
