/* cfg.h — declarative configuration: one table of knobs, one loader.
 *
 * A program describes its configuration as an array of cfg_knob rows, each
 * naming a field of the program's own config struct (by offset), its type,
 * its default (as text, parsed by the same code as the file), its bounds and
 * a help line. The same table drives the defaults, the INI file loader,
 * `--set section.key=value` overrides, and --print-config, which renders the
 * shipped config file; a test compares the two so the file cannot drift.
 *
 * Errors are reported as "file:line: reason" (or "--set: reason") in the
 * caller's buffer; a program refuses to start on any of them.
 */
#ifndef LECTERN_CFG_H
#define LECTERN_CFG_H

#include <stddef.h>
#include <stdio.h>

typedef enum cfg_type {
    CFG_INT,     /* int, bounded by [min, max] */
    CFG_SIZE,    /* size_t byte count; accepts k/m/g suffixes (KiB, MiB, GiB) */
    CFG_DOUBLE,  /* double, bounded by [min, max] */
    CFG_BOOL,    /* bool: true/false, yes/no, on/off, 1/0 */
    CFG_STR      /* char *, owned by the config struct; `choices` may restrict it */
} cfg_type;

typedef struct cfg_knob {
    const char *name;     /* "section.key"; NULL name ends the table */
    cfg_type    type;
    size_t      offset;   /* offsetof(program config struct, field) */
    const char *def;      /* default value as it would appear in the file */
    double      min, max; /* numeric bounds (ignored for BOOL and STR) */
    const char *choices;  /* STR only: "a|b|c", or NULL for any string */
    const char *help;     /* one or more sentences; '\n' starts a new comment line */
} cfg_knob;

/* Fill every knob of conf with its default. Returns 0, or -1 when a default
 * itself is invalid (a programming error reported in err). */
int cfg_defaults(const cfg_knob *table, void *conf, char *err, size_t errlen);

/* Apply an INI file ([section] then key = value lines; '#' and ';' comments).
 * Unknown sections or keys are errors. Returns 0 or -1 with "path:line: reason". */
int cfg_load_file(const cfg_knob *table, void *conf, const char *path,
                  char *err, size_t errlen);

/* Apply one "section.key=value" assignment. Returns 0 or -1 with the reason. */
int cfg_set(const cfg_knob *table, void *conf, const char *assignment,
            char *err, size_t errlen);

/* Apply one knob by name with a value. Returns 0 or -1 with the reason. */
int cfg_set_value(const cfg_knob *table, void *conf, const char *name,
                  const char *value, char *err, size_t errlen);

/* The environment variable of a knob: "LECTERN_" and the name upper-cased
 * with '.' as '_' (redis.host -> LECTERN_REDIS_HOST). */
void cfg_env_name(const char *knob, char *out, size_t outlen);

/* Apply every knob whose environment variable is set. Returns 0 or -1 with
 * "environment NAME: reason". */
int cfg_load_env(const cfg_knob *table, void *conf, char *err, size_t errlen);

/* The usual layering: defaults, then the file (when path is not NULL), then
 * the environment (cfg_load_env), then each "section.key=value" of sets in
 * order. Returns 0 or -1 with the first error (as the functions above
 * report it). */
int cfg_load(const cfg_knob *table, void *conf, const char *path, const char *const *sets,
             int nsets, char *err, size_t errlen);

/* The value of the string knob `name` in conf (borrowed: valid until the
 * knob is set again or freed), or NULL when the table has no such string
 * knob. */
const char *cfg_get_str(const cfg_knob *table, const void *conf, const char *name);

/* Write the table as a complete, commented config file with the defaults. */
void cfg_print(const cfg_knob *table, const char *title, FILE *out);

/* Free the strings owned by conf. conf may be partially filled. */
void cfg_free(const cfg_knob *table, void *conf);

#endif
