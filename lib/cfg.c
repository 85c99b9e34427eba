/* cfg.c — the configuration loader behind every Lectern program.
 *
 * The INI syntax is parsed by libinih (Debian's libinih); this module maps
 * each (section, key, value) it reports onto the knob table. Values are
 * parsed strictly: the whole string must be consumed, numbers must lie in
 * their bounds, strings with `choices` must be one of them. Knob names are
 * "section.key" so `--set` needs no separate syntax.
 *
 * inih reports the first failing line number; the handler records why that
 * line failed in the load context, which yields "path:line: reason".
 */
#include "cfg.h"

#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const cfg_knob *cfg_find(const cfg_knob *table, const char *name)
{
    for (const cfg_knob *k = table; k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

static bool cfg_choice_ok(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && !strncmp(p, v, n))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* Parse one value into its field. Returns NULL or a static reason. */
static const char *cfg_parse(const cfg_knob *k, void *conf, const char *v)
{
    char *field = (char *)conf + k->offset;
    char *end;

    while (isspace((unsigned char)*v))
        v++;

    switch (k->type) {
    case CFG_INT: {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (end == v || *end || errno)
            return "not an integer";
        if ((double)n < k->min || (double)n > k->max)
            return "out of range";
        *(int *)field = (int)n;
        return NULL;
    }
    case CFG_SIZE: {
        if (*v == '-')
            return "not a size";
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || errno)
            return "not a size";
        unsigned long long mul = 1;
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = 1ULL << 10; end++; break;
        case 'm': mul = 1ULL << 20; end++; break;
        case 'g': mul = 1ULL << 30; end++; break;
        default: break;
        }
        if (*end)
            return "not a size (use a number with an optional k, m or g suffix)";
        if (n > ~0ULL / mul)
            return "out of range";
        n *= mul;
        if ((double)n < k->min || (double)n > k->max)
            return "out of range";
        *(size_t *)field = (size_t)n;
        return NULL;
    }
    case CFG_DOUBLE: {
        errno = 0;
        double d = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(d))
            return "not a number";
        if (d < k->min || d > k->max)
            return "out of range";
        *(double *)field = d;
        return NULL;
    }
    case CFG_BOOL: {
        static const char *const yes[] = { "true", "yes", "on", "1" };
        static const char *const no[] = { "false", "no", "off", "0" };
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(v, yes[i])) { *(bool *)field = true; return NULL; }
            if (!strcasecmp(v, no[i]))  { *(bool *)field = false; return NULL; }
        }
        return "not a boolean (true/false)";
    }
    case CFG_STR: {
        if (k->choices && !cfg_choice_ok(k->choices, v))
            return "not one of the allowed values";
        char **s = (char **)field;
        free(*s);
        *s = xstrdup(v);
        return NULL;
    }
    }
    return "bad knob type";
}

static void cfg_range_text(const cfg_knob *k, char *out, size_t n)
{
    out[0] = '\0';
    if (k->type == CFG_INT || k->type == CFG_SIZE)
        snprintf(out, n, " (allowed %.0f..%.0f)", k->min, k->max);
    else if (k->type == CFG_DOUBLE)
        snprintf(out, n, " (allowed %g..%g)", k->min, k->max);
    else if (k->type == CFG_STR && k->choices)
        snprintf(out, n, " (allowed %s)", k->choices);
}

int cfg_set_value(const cfg_knob *table, void *conf, const char *name,
                  const char *value, char *err, size_t errlen)
{
    const cfg_knob *k = cfg_find(table, name);
    if (!k) {
        snprintf(err, errlen, "unknown knob '%s'", name);
        return -1;
    }
    const char *why = cfg_parse(k, conf, value);
    if (why) {
        char range[96];
        cfg_range_text(k, range, sizeof range);
        snprintf(err, errlen, "%s = '%s': %s%s", name, value, why, range);
        return -1;
    }
    return 0;
}

int cfg_defaults(const cfg_knob *table, void *conf, char *err, size_t errlen)
{
    for (const cfg_knob *k = table; k->name; k++)
        if (cfg_set_value(table, conf, k->name, k->def, err, errlen) < 0)
            return -1;
    return 0;
}

int cfg_set(const cfg_knob *table, void *conf, const char *assignment,
            char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(err, errlen, "--set: expected section.key=value, got '%s'", assignment);
        return -1;
    }
    char name[128];
    size_t n = (size_t)(eq - assignment);
    while (n && isspace((unsigned char)assignment[n - 1]))
        n--;
    if (n >= sizeof name) {
        snprintf(err, errlen, "--set: knob name too long");
        return -1;
    }
    memcpy(name, assignment, n);
    name[n] = '\0';
    char why[256];
    if (cfg_set_value(table, conf, name, eq + 1, why, sizeof why) < 0) {
        snprintf(err, errlen, "--set: %s", why);
        return -1;
    }
    return 0;
}

typedef struct cfg_load_ctx {
    const cfg_knob *table;
    void *conf;
    char why[256];     /* reason for the first failing line */
    bool failed;
} cfg_load_ctx;

static int cfg_ini_handler(void *user, const char *section, const char *key,
                           const char *value)
{
    cfg_load_ctx *ctx = user;
    char name[160];

    if (ctx->failed)
        return 0;     /* keep the first reason; inih keeps the first line */
    if (!*section) {
        snprintf(ctx->why, sizeof ctx->why, "'%s' outside any [section]", key);
        goto fail;
    }
    snprintf(name, sizeof name, "%s.%s", section, key);
    if (cfg_set_value(ctx->table, ctx->conf, name, value, ctx->why, sizeof ctx->why) < 0)
        goto fail;
    return 1;

fail:
    ctx->failed = true;
    return 0;
}

int cfg_load_file(const cfg_knob *table, void *conf, const char *path,
                  char *err, size_t errlen)
{
    cfg_load_ctx ctx = { .table = table, .conf = conf };
    int rc = ini_parse(path, cfg_ini_handler, &ctx);

    if (rc == 0)
        return 0;
    if (rc == -1)
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    else if (rc == -2)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        snprintf(err, errlen, "%s:%d: %s", path, rc,
                 ctx.failed ? ctx.why : "syntax error (expected key = value or [section])");
    return -1;
}

static void cfg_print_help(FILE *out, const char *help)
{
    const char *p = help;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "# %.*s\n", (int)n, p);
        if (!nl)
            break;
        p = nl + 1;
    }
}

void cfg_print(const cfg_knob *table, const char *title, FILE *out)
{
    const char *section = NULL;
    size_t seclen = 0;

    cfg_print_help(out, title);
    for (const cfg_knob *k = table; k->name; k++) {
        const char *dot = strchr(k->name, '.');
        size_t sl = dot ? (size_t)(dot - k->name) : 0;
        if (!section || sl != seclen || strncmp(section, k->name, sl)) {
            fprintf(out, "\n[%.*s]\n", (int)sl, k->name);
            section = k->name;
            seclen = sl;
        }
        fputc('\n', out);
        cfg_print_help(out, k->help);
        char range[96];
        cfg_range_text(k, range, sizeof range);
        char env[128];
        cfg_env_name(k->name, env, sizeof env);
        fprintf(out, "#%s env %s\n", range, env);
        fprintf(out, "%s =%s%s\n", dot ? dot + 1 : k->name, k->def[0] ? " " : "", k->def);
    }
}

const char *cfg_get_str(const cfg_knob *table, const void *conf, const char *name)
{
    const cfg_knob *k = cfg_find(table, name);
    if (!k || k->type != CFG_STR)
        return NULL;
    return *(char *const *)((const char *)conf + k->offset);
}

void cfg_free(const cfg_knob *table, void *conf)
{
    for (const cfg_knob *k = table; k->name; k++) {
        if (k->type == CFG_STR) {
            char **s = (char **)((char *)conf + k->offset);
            free(*s);
            *s = NULL;
        }
    }
}

void cfg_env_name(const char *knob, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "LECTERN_");
    for (const char *p = knob; *p && o + 1 < outlen; p++)
        out[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    if (o < outlen)
        out[o] = '\0';
}

int cfg_load_env(const cfg_knob *table, void *conf, char *err, size_t errlen)
{
    for (const cfg_knob *k = table; k->name; k++) {
        char name[128], why[256];
        cfg_env_name(k->name, name, sizeof name);
        const char *v = getenv(name);
        if (!v)
            continue;
        if (cfg_set_value(table, conf, k->name, v, why, sizeof why) < 0) {
            snprintf(err, errlen, "environment %s: %s", name, why);
            return -1;
        }
    }
    return 0;
}

int cfg_load(const cfg_knob *table, void *conf, const char *path, const char *const *sets,
             int nsets, char *err, size_t errlen)
{
    if (cfg_defaults(table, conf, err, errlen) < 0)
        return -1;
    if (path && cfg_load_file(table, conf, path, err, errlen) < 0)
        return -1;
    if (cfg_load_env(table, conf, err, errlen) < 0)
        return -1;
    for (int i = 0; i < nsets; i++)
        if (cfg_set(table, conf, sets[i], err, errlen) < 0)
            return -1;
    return 0;
}
