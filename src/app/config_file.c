/* config_file — the INI reader behind app_config_load: a --config file is
 * opened only when it is a regular file, read line by line (comments, a BOM,
 * over-long lines and lines inih would misread are refused here), parsed by
 * inih into section, key and value, and each key set through the key table
 * of config.c (a key set twice in one file is refused); then the
 * --section.key=value overrides of the command line. */
#include "config.h"
#include "app_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <ini.h>

#include "app.h"
#include "config_keys.h"

/* The most characters before a line's '#' comment that are read (a comment
 * may be of any length); inih then takes lines that fit its buffer, whose
 * size it tells the reader (198 characters and a newline as Debian builds
 * it: INI_MAX_LINE 200). */
enum { RAW_MAX_CHARS = 4095 };

static const char *file_kind(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* A regular file opened for reading.  O_NONBLOCK: opening a FIFO must not
 * wait for a writer before fstat can refuse it. */
static ift_status open_config(const char *path, FILE **out) {
  const char *hint = "--config must name a regular file (an INI file; iftrain train --help)";
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  IFT_REQUIRE(fd >= 0, IFT_ERR_CONFIG, hint, "cannot open config file '%s': %s", path,
              strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) sb.st_mode = 0;
  int regular = S_ISREG(sb.st_mode);
  FILE *f = regular ? fdopen(fd, "r") : NULL;
  int fdopen_errno = errno;
  if (!f) close(fd);
  IFT_REQUIRE(regular, IFT_ERR_CONFIG, hint, "config file '%s' is %s, not a regular file", path,
              file_kind(sb.st_mode));
  IFT_REQUIRE(f, IFT_ERR_IO, hint, "cannot read config file '%s': %s", path, strerror(fdopen_errno));
  *out = f;
  return IFT_OK;
}

/* The state of one file's parse: inih (ini_parse_stream) splits sections,
 * keys and values; the reader below hands it one whole line per call and
 * refuses what inih would split, misread or let through silently. */
typedef struct {
  app_config *c;
  FILE *f;
  const char *path;
  int line;              /* of the line inih is parsing */
  int sections;          /* [section] headers seen */
  ift_status st;         /* the first error; the reader then ends the parse */
  char where[1100];      /* "path:line: " */
  char raw[RAW_MAX_CHARS + 1];
  /* the line that set each key, to refuse a second one; one per entry of
   * the key table, whose size is known in config.c only */
  int first_line[];
} ini_state;

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

/* The next line of the file into s->raw without its newline and its '#'
 * comment (a '#' anywhere starts one, as always in iftrain's files; inih
 * would take only ';' after a blank); *got = 0 at the end of the file. */
static ift_status read_line(ini_state *s, int *got) {
  size_t n = 0;
  int ch, comment = 0, any = 0;
  snprintf(s->where, sizeof s->where, "%s:%d: ", s->path, s->line + 1);
  while ((ch = getc(s->f)) != EOF && ch != '\n') {
    any = 1;
    IFT_REQUIRE(ch != 0, IFT_ERR_CONFIG, "is this a text file? (--config takes an INI file)",
                "%sline contains a NUL byte", s->where);
    comment |= ch == '#';
    if (comment) continue;
    IFT_REQUIRE(n < RAW_MAX_CHARS, IFT_ERR_CONFIG, "shorten it, or set the value on the command line",
                "%sline is longer than %d characters", s->where, RAW_MAX_CHARS);
    s->raw[n++] = (char)ch;
  }
  s->raw[n] = 0;
  IFT_REQUIRE(!ferror(s->f), IFT_ERR_IO, "check the file system", "%sread error: %s", s->where,
              strerror(errno));
  *got = ch != EOF || any;
  s->line += *got;
  return IFT_OK;
}

/* A line that inih would take otherwise than iftrain always has: a section
 * header with text after its ']' (inih ignores that text), or a line that is
 * neither a header nor key = value (inih would report only its number). */
static ift_status check_syntax(ini_state *s, const char *t) {
  if (*t == ';') return IFT_OK; /* inih's comment */
  if (*t == '[') {
    const char *e = strchr(t, ']');
    IFT_REQUIRE(e && !e[1], IFT_ERR_CONFIG, "write sections as [name]", "%smalformed section header '%s'",
                s->where, t);
    s->sections++;
    return IFT_OK;
  }
  IFT_REQUIRE(!*t || (strchr(t, '=') && s->sections), IFT_ERR_CONFIG,
              s->sections ? "write 'key = value'" : "put keys under a [section] header",
              "%scannot parse '%s'", s->where, t);
  return IFT_OK;
}

/* The next line for inih's buffer of num bytes, trimmed and without its
 * comment, so that inih never sees a continuation line (an indented one) nor
 * a line longer than its buffer, which it would read in pieces. */
static ift_status next_line(ini_state *s, char *out, int num, int *got) {
  IFT_TRY(read_line(s, got));
  if (!*got) return IFT_OK;
  /* editors on Windows start UTF-8 files with a byte order mark */
  char *t = s->raw;
  if (s->line == 1 && !strncmp(t, "\xEF\xBB\xBF", 3)) t += 3;
  t = trim(t);
  size_t n = strlen(t);
  IFT_REQUIRE(n + 2 <= (size_t)num, IFT_ERR_CONFIG,
              "set a longer value on the command line (--section.key=value), which takes up to 1023 characters",
              "%sline is longer than the %d characters a line of a config file may have (comments aside)",
              s->where, num - 2);
  IFT_TRY(check_syntax(s, t));
  if (*t == '[') { /* "[ train ]" names [train]: inih would keep the blanks */
    t[n - 1] = 0;
    char *name = trim(t + 1);
    *--name = '[';
    n = strlen(name);
    memcpy(name + n, "]", 2);
    t = name;
    n++;
  }
  memcpy(out, t, n);
  memcpy(out + n, "\n", 2); /* the line and its newline, as fgets reads it */
  return IFT_OK;
}

/* One key = value of line s->line. */
static ift_status handle_key(ini_state *s, const char *section, const char *name, const char *value) {
  IFT_REQUIRE(*section, IFT_ERR_CONFIG, "put keys under a [section] header with a name",
              "%scannot parse '%s = %s'", s->where, name, value);
  char full[160];
  snprintf(full, sizeof full, "%s.%s", section, name);
  const key_def *k = app_cfg_find_key(full);
  if (k) {
    /* two values for one key in a file is a mistake whichever wins; the
     * command line is the place to override */
    int *seen = &s->first_line[k - app_cfg_keys];
    IFT_REQUIRE(!*seen, IFT_ERR_CONFIG, "keep one of the two lines (override on the command line instead)",
                "%s%s is set twice, on lines %d and %d", s->where, full, *seen, s->line);
    *seen = s->line;
  }
  return app_cfg_set_key(s->c, s->where, full, value);
}

/* inih's reader (fgets' contract) and handler; an error ends the parse. */
static char *ini_reader_cb(char *str, int num, void *stream) {
  ini_state *s = stream;
  int got = 0;
  if (s->st == IFT_OK) s->st = next_line(s, str, num, &got);
  return s->st == IFT_OK && got ? str : NULL;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value) {
  ini_state *s = user;
  if (s->st == IFT_OK) s->st = handle_key(s, section, name, value);
  return s->st == IFT_OK;
}

static ift_status parse_file(ini_state *s) {
  int bad = ini_parse_stream(ini_reader_cb, s, ini_handler_cb, s);
  IFT_TRY(s->st);
  /* a line that check_syntax let through and inih did not */
  IFT_REQUIRE(!bad, IFT_ERR_CONFIG, "write [section] headers and 'key = value' lines",
              "%s:%d: cannot parse this line", s->path, bad);
  return IFT_OK;
}

static ift_status load_file(app_config *c, const char *path) {
  FILE *f;
  IFT_TRY(open_config(path, &f));
  ini_state *s = calloc(1, sizeof *s + (size_t)app_cfg_nkeys * sizeof s->first_line[0]);
  if (!s) fclose(f);
  IFT_REQUIRE(s, IFT_ERR_NOMEM, NULL, "cannot read config file '%s': out of memory", path);
  s->c = c;
  s->f = f;
  s->path = path;
  ift_status st = parse_file(s);
  free(s);
  fclose(f);
  return st;
}

ift_status app_config_load(app_config *c, const char *path, int argc, char **argv) {
  if (path) IFT_TRY(load_file(c, path));
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    /* an override is --section.key[=value]; --config=dir/x.ini is not one */
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) || !dot || (eq && eq < dot)) continue;
    IFT_REQUIRE(eq, IFT_ERR_CONFIG, "write overrides as --section.key=value",
                "override '%s' has no '='", a);
    char key[160];
    snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
    IFT_TRY(app_config_set(c, key, eq + 1));
  }
  return IFT_OK;
}
