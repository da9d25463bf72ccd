/*
 * optim.h — AdamW, gradient clipping by global norm and learning-rate
 * schedules, over flat fp32 arrays (the model keeps parameters and
 * gradients in one allocation each). CPU reference; a CUDA twin is tested
 * against it later.
 *
 * The update is exactly PyTorch's torch.optim.AdamW (single-tensor path,
 * amsgrad=False, maximize=False), with the scalars computed in double as
 * Python does and the per-element arithmetic in float as torch's CPU
 * kernels do. For step t = 1, 2, ... and each element:
 *
 *     p  = p * (1 - lr * weight_decay)            (decoupled weight decay)
 *     m  = m + (1 - beta1) * (g - m)              (exp_avg.lerp_)
 *     v  = v * beta2 + (1 - beta2) * g * g        (exp_avg_sq)
 *     bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t
 *     denom = sqrt(v) / sqrt(bc2) + eps
 *     p  = p - (lr / bc1) * m / denom
 *
 * Elements in a no-decay range skip the first line (weight_decay = 0 for
 * them, as a second param group in torch would).
 *
 * It is not a general optimizer framework: no param groups beyond the
 * no-decay mask, no amsgrad, no fused multi-tensor kernels here.
 */
#ifndef SL_OPTIM_H
#define SL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ AdamW */

typedef struct sl_adamw_params {
    double beta1;        /* default 0.9 */
    double beta2;        /* default 0.999 */
    double eps;          /* default 1e-8 */
    double weight_decay; /* default 0.01 (torch's AdamW default) */
} sl_adamw_params;

/* A range [off, off + len) of the flat parameter array. */
typedef struct sl_range {
    size_t off, len;
} sl_range;

/* AdamW state for n parameters. Embedded object: init/fini. */
typedef struct sl_adamw {
    size_t n;
    float *m;             /* (n) first moment, owned */
    float *v;             /* (n) second moment, owned */
    int64_t step;         /* optimizer steps taken so far */
    sl_adamw_params p;
    sl_range *no_decay;   /* owned, sorted, non-overlapping */
    size_t n_no_decay;
} sl_adamw;

/* Fill torch's defaults (0.9, 0.999, 1e-8, 0.01). */
void sl_adamw_params_default(sl_adamw_params *p);

/* Allocate zeroed moments for n parameters; p NULL = defaults. Errors:
 * SL_EINVAL (bad hyper-parameters: betas outside [0, 1), eps < 0,
 * weight_decay < 0), SL_ENOMEM. On error the object is left finished
 * (fini is safe). */
int sl_adamw_init(sl_adamw *opt, size_t n, const sl_adamw_params *p);

/* Release the moments; safe twice and on a zeroed object. */
void sl_adamw_fini(sl_adamw *opt);

/* Set the ranges that get no weight decay (biases, norms, as slime/Megatron
 * do); copied. Ranges may come in any order; overlapping ones merge.
 * Errors: SL_ERANGE (a range past n), SL_ENOMEM. */
int sl_adamw_set_no_decay(sl_adamw *opt, const sl_range *ranges, size_t n);

/* One AdamW step with learning rate lr: step += 1, then the update above
 * over all n elements. params and grads are caller-owned arrays of n.
 * Not thread-safe on one object; internally threaded with OpenMP. */
void sl_adamw_step(sl_adamw *opt, float *params, const float *grads, double lr);

/* The update on one slice, for callers that keep their own state (sharded
 * optimizers, CUDA twin tests). `step` is the step number after increment
 * (1 for the first step). */
void sl_adamw_update(float *params, const float *grads, float *m, float *v, size_t n,
                     double lr, double beta1, double beta2, double eps, double weight_decay,
                     int64_t step);

/* ------------------------------------------------------------- clipping */

/* Global L2 norm of g[0..n), accumulated in double. */
double sl_grad_norm(const float *g, size_t n);

/* torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2): total = global
 * norm; coef = max_norm / (total + 1e-6); when coef < 1 every gradient is
 * multiplied by coef. Returns the norm before clipping. A non-finite norm
 * is returned as is and the gradients are left untouched (the caller should
 * skip the step). max_norm <= 0 disables clipping (the norm is still
 * returned). */
double sl_grad_clip(float *g, size_t n, double max_norm);

/* ------------------------------------------------------------ schedules */

typedef enum sl_lr_decay_style {
    SL_LR_CONSTANT = 0,
    SL_LR_LINEAR = 1,
    SL_LR_COSINE = 2,
} sl_lr_decay_style;

/* Megatron's OptimizerParamScheduler, with slime's argument names. */
typedef struct sl_lr_schedule {
    double lr;                /* peak (max) learning rate */
    double min_lr;            /* floor after decay */
    double lr_warmup_init;    /* start of the warm-up ramp (Megatron: 0) */
    int64_t lr_warmup_steps;  /* 0 = no warm-up */
    int64_t lr_decay_steps;   /* step where the decay reaches min_lr */
    sl_lr_decay_style lr_decay_style;
} sl_lr_schedule;

/* "constant", "linear", "cosine" → style; SL_EINVAL otherwise. */
int sl_lr_decay_style_from_name(const char *name, sl_lr_decay_style *out);
const char *sl_lr_decay_style_name(sl_lr_decay_style s);

/* Learning rate to use for the optimizer step that follows `step` steps
 * already taken (0 for the first), as Megatron's get_lr():
 *   warm-up (lr_warmup_steps > 0 and step <= lr_warmup_steps):
 *       lr_warmup_init + (lr - lr_warmup_init) * step / lr_warmup_steps
 *   constant: lr
 *   step > lr_decay_steps: min_lr
 *   r = (step - warmup) / (lr_decay_steps - warmup)
 *   linear: min_lr + (lr - min_lr) * (1 - r)
 *   cosine: min_lr + (lr - min_lr) * 0.5 * (cos(pi * r) + 1)
 * (Megatron's first step under warm-up therefore uses lr_warmup_init.)
 * A decay window of zero length (lr_decay_steps <= lr_warmup_steps) gives
 * min_lr after the warm-up. Pure function. */
double sl_lr_at(const sl_lr_schedule *s, int64_t step);

#endif /* SL_OPTIM_H */
