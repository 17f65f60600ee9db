/* Fuzz target: the INI config parser (app_config_load) and the overrides.
 * Leading lines starting with "--" (at most 8) become command-line overrides
 * (--section.key=value); the rest is the config file.  A config that loads is
 * also checked (app_config_check) and written back (app_config_write). */
#include "fuzz_common.h"
#include "../../src/app/app_config.h"

static char ini_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_path(ini_path, sizeof ini_path, "config.ini");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1 << 16)) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  char *argv[10] = {"iftrain"};
  int argc = 1;
  char *p = text;
  while (argc < 9 && p[0] == '-' && p[1] == '-') {
    argv[argc++] = p;
    char *nl = strchr(p, '\n');
    if (!nl) {
      p += strlen(p);
      break;
    }
    *nl = 0;
    p = nl + 1;
  }
  argv[argc] = NULL;
  const size_t rest = size - (size_t)(p - text);
  if (fuzz_write(ini_path, (const uint8_t *)data + (p - text), rest) == 0) {
    app_config c;
    app_config_defaults(&c);
    if (app_config_load(&c, ini_path, argc, argv) == IFT_OK) {
      app_config_check(&c, 1, 1);
      app_config_check(&c, 2, 2);
      FILE *f = fopen("/dev/null", "w");
      if (f) {
        app_config_write(f, &c);
        fclose(f);
      }
    }
    unlink(ini_path);
  }
  free(text);
  return 0;
}
