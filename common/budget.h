/* The MMR budget ladder: the nested (r_q, r_c) prefixes that Matryoshka
 * Multi-Vector training makes usable, coarse to fine. Training's loss
 * groups, evaluation's rows, the shard's cascade and the latency histograms
 * all read this one list. */
#ifndef ME_BUDGET_H
#define ME_BUDGET_H

#define ME_BUDGET_LADDER_N 5

typedef struct {
    int r_q, r_c;
} me_budget_t;

extern const me_budget_t me_budget_ladder[ME_BUDGET_LADDER_N];

/* The ladder index of (r_q, r_c), or -1 for a budget off the ladder. */
int me_budget_index(int r_q, int r_c);

#endif
