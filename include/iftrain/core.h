/* core — errors, logging, aligned buffers, counter-based RNG.
 *
 * Lowest layer: includes nothing of the project and no MPI header, so every
 * other module (and the serial tests) can use it.  The MPI rank used in
 * messages is registered once by the dist layer (core_set_rank). */
#ifndef IFTRAIN_CORE_H
#define IFTRAIN_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  IFT_OK = 0,
  IFT_ERR_ARG,     /* bad argument or option value               */
  IFT_ERR_CONFIG,  /* malformed or inconsistent configuration    */
  IFT_ERR_NOMEM,   /* allocation failed                          */
  IFT_ERR_IO,      /* file missing, unreadable or unwritable     */
  IFT_ERR_FORMAT,  /* file exists but its contents are wrong     */
  IFT_ERR_MPI,     /* MPI / BLACS call failed                    */
  IFT_ERR_HDF5,    /* HDF5 call failed                           */
  IFT_ERR_NUMERIC, /* NaN / Inf in loss or gradients             */
  IFT_ERR_LAYOUT,  /* rank grid cannot hold the model            */
  IFT_ERR_UNIMPL,  /* feature not implemented yet                */
  IFT_ERR_INTERNAL,
  IFT_ERR_WRITE    /* writing results failed (disk full, quota)  */
} ift_status;

const char *ift_status_str(ift_status s);

/* Record an error: the call or condition, file:line, rank, cause and a
 * "hint:" line with the likely fix.  Printed to stderr at once (so a rank that
 * dies leaves its reason behind) and kept as the last error of the process. */
void ift_error_set(ift_status s, const char *file, int line, const char *what,
                   const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Record an error without printing it (a rank that stops because another
 * rank failed: the failing rank has printed the reason). */
void ift_error_quiet_set(ift_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The status of the most recent error (IFT_OK if none). */
ift_status ift_error_last_status(void);
/* The most recent error message (without the hint), "" if none. */
const char *ift_error_last(void);
/* Suppress printing of errors (tests that provoke them on purpose). */
void ift_error_quiet(int quiet);

/* ---- The error convention (one for the whole project).
 *
 * A function that can fail returns ift_status.  A failure is recorded once,
 * where it is detected, with ift_error_set: the call or condition, file:line,
 * rank, the cause (a printf message naming the file, row, key ... involved)
 * and a hint (the likely fix, or NULL); callers only propagate the status.
 * Every check is one of these macros, in two forms:
 *
 *   IFT_REQUIRE(cond, s, hint, fmt, ...)   fail with status s unless cond
 *   IFT_TRY(call)                          propagate a failing ift_status
 *   IFT_FAIL(s, hint, fmt, ...)            fail unconditionally
 *   IFT_MPI_CHECK(call, hint)              an MPI return code (dist.h)
 *   IFT_H5_CHECK(call, hint, fmt, ...)     an HDF5 return value < 0 (h5attr.h)
 *
 * return the status at once; their _GOTO twins, for functions that own
 * resources and release them at one cleanup label,
 *
 *   IFT_REQUIRE_GOTO(st, label, cond, s, hint, fmt, ...)
 *   IFT_TRY_GOTO(st, label, call)
 *   IFT_FAIL_GOTO(st, label, s, hint, fmt, ...)
 *   IFT_MPI_CHECK_GOTO(st, label, call, hint)
 *   IFT_H5_CHECK_GOTO(st, label, call, hint, fmt, ...)
 *
 * store the status in the local `st` and jump to `label` (the twin takes
 * (st, label) first, then the arguments of the plain form).
 *
 * Collectives: a rank must not return or jump past a collective the other
 * ranks enter.  Where one rank alone can fail (its read, its allocation, its
 * part of a write), the failure is recorded without leaving (ift_error_set,
 * st = ...), and every rank then agrees with dist_agree (dist.h) before the
 * next collective, e.g.  IFT_TRY_GOTO(st, out, dist_agree(st, comm)). */

/* Fail with status S unless COND holds; the message names the condition. */
#define IFT_REQUIRE(cond, s, hint, ...)                                        \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ift_error_set((s), __FILE__, __LINE__, #cond, (hint), __VA_ARGS__);      \
      return (s);                                                              \
    }                                                                          \
  } while (0)

/* IFT_REQUIRE for functions with a cleanup label: sets st, jumps. */
#define IFT_REQUIRE_GOTO(st, label, cond, s, hint, ...)                        \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ift_error_set((s), __FILE__, __LINE__, #cond, (hint), __VA_ARGS__);      \
      (st) = (s);                                                              \
      goto label;                                                              \
    }                                                                          \
  } while (0)

/* Fail unconditionally (the condition was tested by the caller's if). */
#define IFT_FAIL(s, hint, ...)                                                 \
  do {                                                                         \
    ift_error_set((s), __FILE__, __LINE__, __func__, (hint), __VA_ARGS__);     \
    return (s);                                                                \
  } while (0)

#define IFT_FAIL_GOTO(st, label, s, hint, ...)                                 \
  do {                                                                         \
    ift_error_set((s), __FILE__, __LINE__, __func__, (hint), __VA_ARGS__);     \
    (st) = (s);                                                                \
    goto label;                                                                \
  } while (0)

/* Propagate a failing ift_status from a project call. */
#define IFT_TRY(call)                                                          \
  do {                                                                         \
    ift_status ift_try_s_ = (call);                                            \
    if (ift_try_s_ != IFT_OK) return ift_try_s_;                               \
  } while (0)

/* IFT_TRY for functions with a cleanup label: sets st, jumps. */
#define IFT_TRY_GOTO(st, label, call)                                          \
  do {                                                                         \
    if (((st) = (call)) != IFT_OK) goto label;                                 \
  } while (0)

/* Rank/size used to prefix messages; set by dist_init. */
void core_set_rank(int rank, int size);
int core_rank(void);

typedef enum { IFT_LOG_QUIET = 0, IFT_LOG_INFO = 1, IFT_LOG_DEBUG = 2 } ift_loglevel;
void core_set_loglevel(ift_loglevel l);
ift_loglevel core_loglevel(void);
void ift_log(int all_ranks, ift_loglevel l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Rank 0 only. */
#define IFT_LOG0(...) ift_log(0, IFT_LOG_INFO, __VA_ARGS__)
/* Every rank, prefixed with "[rank r]". */
#define IFT_LOGR(...) ift_log(1, IFT_LOG_INFO, __VA_ARGS__)
#define IFT_DEBUG0(...) ift_log(0, IFT_LOG_DEBUG, __VA_ARGS__)

/* 64-byte aligned, zeroed allocation (NULL on failure).  Free with core_free.
 * Blocks of 1 MiB or more are mapped pages that use memory only once
 * written. */
void *core_alloc(size_t bytes);
void core_free(void *p);

/* mkdir -p; 0 on success. */
int core_mkdir_p(const char *dir);

/* Wall clock in seconds (monotonic). */
double core_now(void);

/* Philox4x32-10: counter-based RNG.  Any rank can draw the numbers of any
 * (stream, index) pair without communication, so draws do not depend on the
 * rank layout. */
typedef struct {
  uint32_t v[4];
} philox_out;
philox_out philox4x32(uint64_t counter_hi, uint64_t counter_lo, uint64_t key);
/* Uniform in (0,1) and standard normal, addressed by (key, stream, index). */
double rng_uniform(uint64_t key, uint64_t stream, uint64_t index);
double rng_normal(uint64_t key, uint64_t stream, uint64_t index);

/* Fault injection for tests: true when the environment variable IFT_FAULT
 * names this point and this rank ("NAME@RANK", or "NAME" for every rank;
 * several separated by commas).  Lets a test make one rank's read or write
 * fail and check that the others do not hang. */
int core_fault(const char *name);

/* FNV-1a 64-bit hash (checksums, fingerprints). */
uint64_t core_fnv1a(uint64_t h, const void *data, size_t n);

/* SHA-256 (OpenSSL's libcrypto, FIPS 180-4) as 64 lowercase hex digits:
 * streaming (begin, any number of updates, end -- which frees the state;
 * end of a NULL state gives ""), of a buffer, or of a file's bytes. */
typedef struct core_sha256 core_sha256;
ift_status core_sha256_begin(core_sha256 **h);
void core_sha256_update(core_sha256 *h, const void *data, size_t n);
void core_sha256_end(core_sha256 *h, char out[65]);
ift_status core_sha256_hex(const void *data, size_t n, char out[65]);
/* IFT_ERR_IO naming the file when it cannot be read. */
ift_status core_sha256_file(const char *path, char out[65]);
#define CORE_FNV_INIT 0xcbf29ce484222325ULL

#ifdef __cplusplus
}
#endif
#endif
