/* settings.c - the run settings as command-line flags: every setting of the library's table
 * becomes a long option (its name with '-' for '_': weight_decay is --weight-decay), with its
 * help line; train, cv and tune take the settings their configuration binds. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

/* "weight-decay" for setting i (built once; the table is static). */
static const char *flag_name(int i) {
    static char names[64][40];
    if (i < 0 || i >= 64 || !loom_setting_info_at(i))
        return "?";
    if (!names[i][0]) {
        snprintf(names[i], sizeof names[i], "%s", loom_setting_info_at(i)->name);
        for (char *c = names[i]; *c; c++)
            if (*c == '_')
                *c = '-';
    }
    return names[i];
}

void cli_setting_options(struct option *out, int cap, const struct option *mine,
                         const loom_settings *s, unsigned groups) {
    int n = 0;
    for (; mine[n].name && n < cap - 1; n++)
        out[n] = mine[n];
    for (int i = 0; i < loom_setting_count() && n < cap - 1; i++) {
        const loom_setting_info *f = loom_setting_info_at(i);
        if (!(f->flags & groups) || !loom_setting_is_bound(s, i))
            continue;
        out[n++] = (struct option){flag_name(i), f->arg ? required_argument : no_argument, NULL,
                                   CLI_SETTING + i};
    }
    out[n] = (struct option){0};
}

bool cli_setting(const char *cmd, int code, const char *arg, const loom_settings *s,
                 char *overrides, size_t n) {
    int i = code - CLI_SETTING;
    loom_error err = {0};
    if (loom_setting_set(s, i, arg, &err)) {
        /* the library names the setting ("lr: expected ..."): name the flag instead */
        const char *name = loom_setting_info_at(i)->name;
        const char *msg = err.msg;
        if (strncmp(msg, name, strlen(name)) == 0 && msg[strlen(name)] == ':')
            msg += strlen(name) + 2;
        cli_usage_error(cmd, "--%s: %s", flag_name(i), msg);
        return false;
    }
    if (overrides) {
        size_t used = strlen(overrides);
        snprintf(overrides + used, n - used, "%s=%s\n", loom_setting_info_at(i)->name,
                 arg ? arg : "1");
    }
    return true;
}

void cli_settings_help(const loom_settings *s, unsigned groups) {
    for (int i = 0; i < loom_setting_count(); i++) {
        const loom_setting_info *f = loom_setting_info_at(i);
        if (!(f->flags & groups) || !loom_setting_is_bound(s, i))
            continue;
        char left[64];
        snprintf(left, sizeof left, "--%.36s%s%.16s", flag_name(i), f->arg ? " " : "",
                 f->arg ? f->arg : "");
        printf("  %-22s%s\n", left, f->help);
    }
}
