/* mkdata OUT KIND: write a small data set that iftrain prep never writes,
 * for the CLI tests of the loader's value checks (tests/cli.sh):
 *   ok     8 rows <bos> a b <eos>, loss mask 0 0 1 1
 *   zero   the same with every loss mask value 0 (nothing to train on)
 *   mask7  row 5's last mask value 7 (the writer does not validate masks;
 *          data_open must)
 * Exit 0 when written, 2 on bad arguments, 1 when writing failed. */
#include <stdio.h>
#include <string.h>

#include "iftrain/data.h"

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "ok") && strcmp(argv[2], "zero") && strcmp(argv[2], "mask7"))) {
    fprintf(stderr, "usage: mkdata OUT ok|zero|mask7\n");
    return 2;
  }
  const int zero = !strcmp(argv[2], "zero"), mask7 = !strcmp(argv[2], "mask7");
  data_writer *w;
  if (data_writer_create(&w, argv[1], TOK_VOCAB, 0) != IFT_OK) return 1;
  for (int i = 0; i < 8; i++) {
    const int tok[4] = {TOK_BOS, 'a', 'b', TOK_EOS};
    uint8_t m[4] = {0, 0, !zero, !zero};
    if (mask7 && i == 5) m[3] = 7;
    if (data_writer_add(w, tok, m, 4, NULL, NULL, 0, NULL, NULL, 0) != IFT_OK) return 1;
  }
  data_writer_attr_str(w, "generator", "tests/mkdata");
  return data_writer_close(w) == IFT_OK ? 0 : 1;
}
