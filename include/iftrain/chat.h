/* chat — a conversation rendered in a model's own chat format, exactly as
 * transformers' apply_chat_template renders the model's chat_template
 * (Jinja, trim_blocks + lstrip_blocks), with the byte ranges of every
 * assistant turn's content and end-of-turn token (the assistant-only loss
 * mask of TRL).
 *
 * There is no Jinja engine here: the templates of the supported families
 * are written out in C, and a tokenizer_config.json's chat_template is
 * recognised by its exact text (SHA-256).  An unrecognised template is an
 * error that names the families to choose from (never approximated). */
#ifndef IFTRAIN_CHAT_H
#define IFTRAIN_CHAT_H

#include <stddef.h>

#include <stdint.h>

#include "iftrain/core.h"
#include "iftrain/tok.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CHAT_LLAMA3,          /* Meta-Llama-3-8B's config: the assistant header always closes */
  CHAT_LLAMA3_INSTRUCT, /* Meta-Llama-3-8B-Instruct */
  CHAT_LLAMA3_1,        /* Llama-3.1-Instruct: dated system block first (no tools) */
  CHAT_CHATML,          /* SmolLM2-Instruct's ChatML (default system prompt) */
  CHAT_QWEN3,           /* Qwen3: ChatML with <think> blocks (no tools) */
  CHAT_MISTRAL,         /* Mistral-7B-Instruct [INST] (no system role) */
  CHAT_LLAMA2,          /* Llama-2-chat [INST] <<SYS>> */
  CHAT_MIXTRAL,         /* Mixtral-Instruct [INST] with a system message */
  CHAT_KINDS
} chat_kind;

/* "llama3", "llama3-instruct", "llama3.1", "chatml", "qwen3", "mistral",
 * "llama2", "mixtral". */
const char *chat_kind_name(chat_kind k);
/* 0 and *k, or -1 for an unknown name. */
int chat_kind_parse(const char *name, chat_kind *k);

typedef struct {
  chat_kind kind;
  char bos[64], eos[64]; /* the config's bos_token / eos_token strings */
} chat_tmpl;

/* The template of DIR/tokenizer_config.json (or the file itself): its
 * chat_template recognised by text, bos/eos from the file.  FORCE (NULL:
 * recognise) names the family instead.  IFT_ERR_IO / IFT_ERR_FORMAT for
 * the file, IFT_ERR_CONFIG when the template is not recognised (the
 * message lists the names FORCE accepts). */
ift_status chat_from_config(const char *path, const char *force, chat_tmpl *t);
/* SHA-256 of a chat_template text as recognised (64 hex digits). */
ift_status chat_template_hash(const char *text, char out[65]);

typedef struct {
  const char *role; /* system | user | assistant */
  const char *content;
} chat_msg;

typedef struct {
  size_t content_a, content_b; /* the assistant content as rendered */
  size_t eot_a, eot_b;         /* its end-of-turn token */
  int message;                 /* index into the messages */
} chat_span;

typedef struct {
  char *text; /* NUL-terminated; len bytes */
  size_t len;
  chat_span *spans; /* one per rendered assistant turn, in order */
  int nspans;
} chat_out;
void chat_out_free(chat_out *o);

/* Render N messages.  IFT_ERR_FORMAT with the template's own message when
 * the template refuses the conversation (roles that do not alternate, a
 * system message where none is allowed, an unknown role). */
ift_status chat_render(const chat_tmpl *t, const chat_msg *m, int n, int add_generation_prompt,
                       chat_out *out);

/* The ids of a rendered conversation R (encoded without the
 * post-processor: the template writes its own BOS) and its assistant-only
 * loss mask, as transformers' apply_chat_template(tokenize=True,
 * return_assistant_tokens_mask=True) makes it: for each span in order, 1 on
 * the tokens from the one holding the first byte of the content to the one
 * holding the last character of the end-of-turn token (of the content when
 * the turn has none), found with char_to_token (tok_offs_find); a span whose
 * first byte no token holds ends the marking.  *mask is malloc'd, ids->n
 * bytes (0 / 1); ids is appended to (start from an empty list). */
ift_status chat_encode(tok *t, const chat_out *r, tok_ids *ids, uint8_t **mask);

#ifdef __cplusplus
}
#endif
#endif
