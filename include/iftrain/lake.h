/* lake — the IFT paper's explainable experiment (arXiv 2405.11870): Frozen
 * Lake 4x4 (SFFF/FHFH/FFFH/HFFG, deterministic moves), a 2-layer MLP policy
 * over one-hot states trained from one optimal and one sub-optimal
 * demonstration with SFT, IFT, DPO (from the SFT policy, which is also its
 * reference) and ORPO; scored by the distance of the policy's state
 * transition matrix to the optimal policy's and by its success rate.
 * Serial, tiny: the MLP in double precision, its parameters float (what
 * the optimizer of src/optim updates); `iftrain lake` runs it. */
#ifndef IFTRAIN_LAKE_H
#define IFTRAIN_LAKE_H

#include <stdint.h>

#include "iftrain/core.h"
#include "iftrain/loss.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LAKE_N = 16, LAKE_A = 4, LAKE_START = 0, LAKE_GOAL = 15, LAKE_MAXLEN = 32 };
/* actions: 0 left, 1 down, 2 right, 3 up (gym's order) */
int lake_step(int s, int a);      /* next state; off the grid: stay; terminal: stay */
int lake_is_hole(int s);
int lake_is_terminal(int s);      /* hole or goal */
/* Moves to the goal from every state (BFS; -1: unreachable or a hole). */
void lake_distances(int dist[LAKE_N]);
/* The optimal deterministic policy: on each non-terminal state the action
 * that lowers the distance, lowest action id on ties (0 if unreachable). */
void lake_optimal_policy(int act[LAKE_N]);

typedef struct {
  int len;
  int s[LAKE_MAXLEN], a[LAKE_MAXLEN];
} lake_traj;
/* The optimal demonstration (6 moves) and the sub-optimal one (8 moves:
 * right, right, down, down, left, down, right, right). */
void lake_demo_optimal(lake_traj *t);
void lake_demo_suboptimal(lake_traj *t);

/* The policy: logits = W2 tanh(W1 x + b1) + b2, x = a blend of one-hots. */
enum { LAKE_HMAX = 128 };
typedef struct {
  int H;
  double w1[LAKE_HMAX][LAKE_N], b1[LAKE_HMAX], w2[LAKE_A][LAKE_HMAX], b2[LAKE_A];
} lake_mlp;
void lake_mlp_init(lake_mlp *p, int H, uint64_t seed);
/* log pi(.|x) */
void lake_mlp_logp(const lake_mlp *p, const double x[LAKE_N], double logp[LAKE_A]);
/* g += d(sum_a dlogp[a] logp[a]) / d params at input x */
void lake_mlp_backward(const lake_mlp *p, lake_mlp *g, const double x[LAKE_N],
                       const double dlogp[LAKE_A]);

typedef enum { LAKE_SFT, LAKE_IFT, LAKE_DPO, LAKE_ORPO } lake_method;
const char *lake_method_name(lake_method m);
typedef struct {
  int steps, hidden;
  double lr, lambda, gamma, beta_dpo, beta_orpo;
} lake_opts;
lake_opts lake_defaults(void);

/* Objective of method m on the demonstrations and its gradient (g zeroed
 * first).  IFT: the input of step t blends s_t with the state the policy's
 * greedy action at s_{t-1} leads to (weight lambda); token weights of
 * docs/ift.md (left, loss, L1, gamma) through loss_ift_d, not detached; gamma 0:
 * uniform weights (docs/ift.md), so lambda = gamma = 0 is SFT.  DPO
 * needs ref (the frozen reference); ORPO and DPO use both demonstrations. */
double lake_objective(lake_method m, const lake_opts *o, const lake_mlp *p, const lake_mlp *ref,
                      const lake_traj *good, const lake_traj *bad, lake_mlp *g);

/* Train method m from seed (DPO: SFT first, then DPO from it) with Adam
 * (optim's AdamW, no weight decay) on float parameters; initial weights
 * from core's Philox RNG.  IFT_ERR_NOMEM if the optimizer state cannot be
 * allocated. */
ift_status lake_train(lake_method m, const lake_opts *o, uint64_t seed, lake_mlp *out);

/* P[s][s'] = sum_a pi(a|s) [step(s,a) = s'] (terminal rows: identity). */
void lake_transition(const lake_mlp *p, double P[LAKE_N][LAKE_N]);
void lake_transition_optimal(double P[LAKE_N][LAKE_N]);
/* Mean squared difference over the rows of the non-terminal states (11 x 16). */
double lake_mse(double P[LAKE_N][LAKE_N], double Q[LAKE_N][LAKE_N]);
/* Probability of standing on G after `horizon` moves from S under P. */
double lake_success(double P[LAKE_N][LAKE_N], int horizon);
/* 1 if the greedy policy walks from S to G within 16 moves. */
int lake_greedy_success(const lake_mlp *p);

#ifdef __cplusplus
}
#endif
#endif
