/* The Matryoshka Multi-Vector Retrieval (MMR) loss of MetaEmbed.
 *
 * B queries of Rq vectors and N ≥ B candidates of Rc vectors, all of dim D
 * (already L2-normalised); candidate i is query i's positive, every other
 * candidate in the batch a negative (with hard negatives, N = 2B). For each
 * group g = (r_q, r_c, w):
 *
 *     s_g(i, j) = Σ_{a < r_q} max_{b < r_c} <Q[i,a], C[j,b]>
 *     loss_g    = mean_i [ logsumexp_j s_g(i,j)/τ  -  s_g(i,i)/τ ]
 *     acc_g     = mean_i [ argmax_j s_g(i,j) == i ]   (ties: lowest j)
 *
 * and the loss is Σ_g w_g · loss_g. All pairwise products <Q[i,a], C[j,b]>
 * are computed once by one sgemm, (B·Rq) × (N·Rc) × D, and every group reads
 * its prefix of them. In the backward each max passes its gradient to its
 * argmax (ties: the lowest b), and dQ, dC come from two more sgemms.
 *
 * The object holds the scratch and what the backward needs; one per thread.
 * Results are deterministic (bit-identical for the same input). */
#ifndef ME_MMR_H
#define ME_MMR_H

#define ME_MMR_DEFAULT_TAU 0.03f
#define ME_MMR_MAX_GROUPS 16

typedef struct {
    int rq, rc;     /* budget: the first rq query and rc candidate vectors */
    float weight;
} me_mmr_group_t;

typedef enum {
    ME_MMR_BLAS = 0,   /* pairwise products and gradients by OpenBLAS sgemm */
    ME_MMR_NAIVE = 1,  /* the reference: plain loops, float, index order */
} me_mmr_impl_t;

typedef struct me_mmr me_mmr_t;

/* The paper's groups (1,1) (2,4) (4,8) (8,16) (16,64), weight 1 each, into
 * out[0..5); returns 5. */
int me_mmr_default_groups(me_mmr_group_t *out);

/* Copies groups. NULL when a group is outside (1..Rq, 1..Rc), ngroups is
 * not in 1..ME_MMR_MAX_GROUPS, tau ≤ 0, D < 1, or out of memory. */
me_mmr_t *me_mmr_new(const me_mmr_group_t *groups, int ngroups, float tau,
                     int Rq, int Rc, int D, me_mmr_impl_t impl);
void me_mmr_free(me_mmr_t *m);

/* Mean instead of sum: group g's logits become s_g(i,j) / (τ r_q). A sum
 * of r_q maxima divided by τ makes the (16,64) softmax 16 times sharper
 * than the (1,1) one; the mean gives every group the same temperature.
 * Rankings (and so serving) are unchanged: r_q is constant per query. */
void me_mmr_set_score_mean(me_mmr_t *m, int on);

/* loss: the weighted total; group_loss and group_acc (ngroups each, may be
 * NULL) the per-group mean loss and in-batch accuracy. Saves what the
 * backward needs. B ≥ 1, N ≥ B. Returns 0, ME_EINVAL or ME_ENOMEM. */
int me_mmr_forward(me_mmr_t *m,
                   float *loss,              /* (1) */
                   float *group_loss,        /* (ngroups) or NULL */
                   float *group_acc,         /* (ngroups) or NULL */
                   const float *Q,           /* (B, Rq, D) */
                   const float *C,           /* (N, Rc, D) */
                   int B, int N);

/* Adds dloss · d(loss)/dQ and d(loss)/dC for the Q and C of the last
 * forward (pass the same pointers). ME_EINVAL when no forward ran. */
int me_mmr_backward(me_mmr_t *m,
                    float *dQ,               /* (B, Rq, D) */
                    float *dC,               /* (N, Rc, D) */
                    const float *Q,          /* (B, Rq, D) */
                    const float *C,          /* (N, Rc, D) */
                    float dloss);

/* Group g's MaxSim scores s_g(i, j) (not divided by τ) from the last
 * forward, row-major (B, N); NULL if g is out of range or none ran. */
const float *me_mmr_scores(const me_mmr_t *m, int g);

#endif
