#include "config.h"
/* The byte-level tokenizer "bytes-v1" (data.h): ids 0..255 are the bytes of
 * the text, then the special tokens, whose names detokenizing prints. */
#include <stddef.h>
#include <string.h>

#include "iftrain/data.h"

int data_tokenize(int *out, int cap, const char *s, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n && k < cap; i++) out[k++] = (unsigned char)s[i];
  return k;
}

size_t data_detokenize(char *out, size_t cap, const int *ids, int n) {
  static const char *names[] = {"<pad>", "<bos>", "<eos>", "<system>", "<user>", "<assistant>"};
  size_t k = 0;
  if (cap == 0) return 0;
  for (int i = 0; i < n && k + 1 < cap; i++) {
    if (ids[i] >= 0 && ids[i] < 256) {
      out[k++] = (char)ids[i];
    } else {
      const char *nm = ids[i] >= TOK_PAD && ids[i] < TOK_VOCAB ? names[ids[i] - TOK_PAD] : "<unk>";
      size_t l = strlen(nm);
      if (k + l + 1 > cap) break;
      memcpy(out + k, nm, l);
      k += l;
    }
  }
  out[k] = 0;
  return k;
}
