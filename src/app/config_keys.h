/* config_keys — the key table of the configuration, shared by the files of
 * src/app/ that implement src/app/app_config.h (internal, not exported):
 * config.c holds the table, the defaults and the setting of one key (enum
 * names, "did you mean"); config_file.c reads INI files; config_help.c
 * writes a configuration and its documentation; config_check.c checks a
 * whole configuration.  One table, so that loading, checking and
 * --help-config cannot disagree about a key. */
#ifndef IFTRAIN_SRC_APP_CONFIG_KEYS_H
#define IFTRAIN_SRC_APP_CONFIG_KEYS_H

#include <stddef.h>

#include "app.h"
#include "app_config.h"

typedef enum { K_INT, K_LONG, K_DOUBLE, K_BOOL, K_STR, K_ENUM, K_U64 } key_type;

typedef struct {
  const char *key; /* section.key */
  key_type type;
  size_t off;
  size_t len;          /* K_STR capacity */
  const char *choices; /* K_ENUM: "a|b|c" in enum order */
  app_range range;     /* numbers: refused outside it, at load and in app_config_check */
  const char *help;
} key_def;

/* The table, in the order of app_config_write and docs/config.md. */
extern const key_def app_cfg_keys[];
extern const int app_cfg_nkeys;

/* The entry of "section.key", or NULL. */
const key_def *app_cfg_find_key(const char *key);
/* Set one key from text; WHERE prefixes every message ("file:line: " for a
 * config file, "" for the command line). */
ift_status app_cfg_set_key(app_config *c, const char *where, const char *key, const char *value);
/* The name of choice idx of "a|b|c" into out ("?" past the end). */
void app_cfg_enum_name(char *out, size_t n, const char *choices, int idx);
/* The number of choices of "a|b|c". */
int app_cfg_enum_count(const char *choices);

#endif
