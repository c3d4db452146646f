/*
 * tm_inifile.h - editing an INI file that people also edit by hand: every line the edit
 * does not touch (comments, blank lines, other sections, key order, spacing) comes out
 * exactly as it went in. tm_config.h reads such files; this module changes them. Lines
 * are read the way inih (and so tm_config) reads them: trimmed; ';' or '#' at the start
 * is a comment; "[name]" opens a section (the name is what stands between the brackets);
 * "key = value" or "key: value", with an inline comment after " ;".
 *
 * Lists are comma-separated values ("certs = a, b, c"). tm_config allows a key once per
 * section and a line of at most 4095 bytes, so a list that would outgrow
 * TM_INIFILE_LIST_LINE bytes continues on a key of its own: "certs.2 = d, e", "certs.3",
 * ... Readers treat "KEY" and "KEY.N" as one list (tm_inifile_list_each, identity.c).
 *
 * Not thread-safe; one struct per file, owned by its caller.
 */
#ifndef TM_INIFILE_H
#define TM_INIFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "tm/tm_common.h"

/* Longest list line this module writes before it starts a KEY.N continuation. */
#define TM_INIFILE_LIST_LINE 2048
/* Largest INI file read. */
#define TM_INIFILE_MAX (16u << 20)

struct tm_inifile;

/* A model of text (len bytes, not NUL-terminated necessarily). NULL when out of memory. */
struct tm_inifile *tm_inifile_parse(const char *text, size_t len);

/*
 * Reads the file at path (a missing file is an empty model). Returns 0 with *out, or -1
 * with the reason in err.
 */
int tm_inifile_load(const char *path, struct tm_inifile **out, char *err);

/* The text again, every line ending in '\n'; malloc'd, NUL-terminated. NULL when out of memory. */
char *tm_inifile_text(const struct tm_inifile *f, size_t *len);

/*
 * Writes the model to path atomically (tm_file_write_atomic: temporary file, fsync,
 * rename), keeping an existing file's mode and owner; a new file gets mode.
 */
int tm_inifile_save(const struct tm_inifile *f, const char *path, unsigned mode, char *err);

void tm_inifile_free(struct tm_inifile *f);

/* True when a "[section]" line exists. */
bool tm_inifile_has_section(const struct tm_inifile *f, const char *section);

/*
 * Calls cb for the name of each section (in file order, once per header line) that starts
 * with prefix ("" for all). Stops and returns cb's value when it is not 0; else 0.
 */
int tm_inifile_sections(const struct tm_inifile *f, const char *prefix,
                        int (*cb)(void *arg, const char *section), void *arg);

/*
 * Copies the value of key in section (the first such line of any "[section]" block) into
 * out. Returns 0; -1 when absent; -2 when it does not fit (out then holds "").
 */
int tm_inifile_get(const struct tm_inifile *f, const char *section, const char *key, char *out,
                   size_t outlen);

/*
 * Calls cb for each item of the list KEY (and its continuations KEY.N) in section, in file
 * order; items are trimmed, empty ones skipped. Stops and returns cb's value when it is
 * not 0; else 0. Items longer than 1023 bytes are passed cut to 1023.
 */
int tm_inifile_list_each(const struct tm_inifile *f, const char *section, const char *key,
                         int (*cb)(void *arg, const char *item), void *arg);

/* True when item is one of the list's items. */
bool tm_inifile_list_has(const struct tm_inifile *f, const char *section, const char *key,
                         const char *item);

/*
 * Adds item to the list KEY of section, creating what is missing: the section (appended at
 * the end of the file, after a blank line) and the key (after the last "key = value" line
 * of the section, so comments that introduce the next section stay with it). An item
 * already in the list is not added again. Items must not hold ',', ';', '#', '[' or line
 * breaks. Returns 0, or -1 with the reason in err.
 */
int tm_inifile_list_add(struct tm_inifile *f, const char *section, const char *key,
                        const char *item, char *err);

/*
 * Sets "key = value" in section: replaces the value of the first such line (keeping an
 * inline comment), or adds the line as tm_inifile_list_add adds a key. Returns 0 or -1.
 */
int tm_inifile_set(struct tm_inifile *f, const char *section, const char *key, const char *value,
                   char *err);

#endif
