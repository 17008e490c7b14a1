#include "common/budget.h"

const me_budget_t me_budget_ladder[ME_BUDGET_LADDER_N] = { { 1, 1 }, { 2, 4 }, { 4, 8 }, { 8, 16 }, { 16, 64 } };

int me_budget_index(int r_q, int r_c) {
    for (int i = 0; i < ME_BUDGET_LADDER_N; i++)
        if (me_budget_ladder[i].r_q == r_q && me_budget_ladder[i].r_c == r_c) return i;
    return -1;
}
