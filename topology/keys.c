/*
 * keys.c — the table of every section and key a topology file may contain.
 *
 * What it is: one static array. The validator (topology.c), the getters'
 * defaults and `--help-config` (sl_topology_print_reference) all read it, so
 * a key added here is parsed, checked, defaulted and documented at once.
 * Key names follow THUDM/slime's argument names where one exists.
 *
 * What it is not: cross-key rules (heartbeat_timeout_ms > heartbeat_ms,
 * command only for kind exec, ...) live in topology.c's validate pass.
 *
 * To add a key: append a row in its section's block. To add a section: add
 * its rows and its name to section_names[] below.
 */
#include <string.h>

#include "topology.h"

#define I(sec, k, def, lo, hi, help) {sec, k, SL_KEY_INT, def, lo, hi, NULL, false, NULL, help}
#define D(sec, k, def, lo, hi, help) {sec, k, SL_KEY_DOUBLE, def, lo, hi, NULL, false, NULL, help}
#define B(sec, k, def, help) {sec, k, SL_KEY_BOOL, def, 0, 0, NULL, false, NULL, help}
#define S(sec, k, def, help) {sec, k, SL_KEY_STRING, def, 0, 0, NULL, false, NULL, help}
#define P(sec, k, def, help) {sec, k, SL_KEY_PATH, def, 0, 0, NULL, false, NULL, help}
#define E(sec, k, def, choices, help) {sec, k, SL_KEY_ENUM, def, 0, 0, choices, false, NULL, help}
#define MS(sec, k, def, lo, hi, help) {sec, k, SL_KEY_DURATION_MS, def, lo, hi, NULL, false, NULL, help}

#define BIG 1e15

static const sl_key_def keys[] = {
    /* ------------------------------------------------------------ [run] */
    S("run", "name", "default",
      "Name of the run: 1-63 characters of A-Z a-z 0-9 _ - ."),
    {"run", "run_dir", SL_KEY_PATH, NULL, 0, 0, NULL, false, NULL,
     "Folder of the run (mailboxes, logs, WAL, checkpoints); created 0700. "
     "Default: runs/NAME."},
    I("run", "seed", "1234", 0, 4294967295.0, "Seed of every random choice (sampling, shuffling, init)."),
    E("run", "log_level", "info", "error|warn|info|debug", "Most verbose log level printed by every actor."),
    I("run", "num_steps", "10", 1, BIG, "RL steps (rollout + train) to run (slime: num_rollout)."),
    E("run", "resume", "no", "no|auto",
      "auto: continue from RUN_DIR's latest checkpoint, WAL and ledger if any; no: start afresh."),
    E("run", "transport", "ipc", "ipc|tcp",
      "Mailboxes: ipc (unix sockets in RUN_DIR/mb, this machine, this user) or tcp (bound to "
      "tcp_address on a port kept in RUN_DIR/mb/NAME.tcp, encrypted and authenticated with "
      "ZeroMQ CURVE: the supervisor makes a key pair per run, RUN_DIR/curve.key, mode 0600; a "
      "peer without it is refused). Actors of kind exec speak ipc only."),
    S("run", "tcp_address", "127.0.0.1",
      "transport = tcp: the address mailboxes bind and connect to (an IPv4 address or interface "
      "name); never 0.0.0.0 unless written here."),

    /* ----------------------------------------------------- [supervisor] */
    E("supervisor", "strategy", "one_for_one", "one_for_one|one_for_all|rest_for_one",
      "Which children restart when one dies: that one, all, or it and those started after it."),
    I("supervisor", "intensity", "5", 0, 10000,
      "More than this many restarts within `period` seconds: stop everything, exit 1."),
    I("supervisor", "period", "10", 1, 86400, "Window of the restart intensity, in seconds."),
    MS("supervisor", "heartbeat_ms", "500", 10, 3600000, "Time between heartbeat surveys."),
    MS("supervisor", "heartbeat_timeout_ms", "3000", 20, 3600000,
       "An actor that has not answered a heartbeat for this long is hung: killed and "
       "restarted. Must exceed heartbeat_ms."),

    /* ------------------------------------------------- [actor NAME] */
    {"actor", "kind", SL_KEY_ENUM, "", 0, 0, "buffer|rollout|reward|trainer|echo|pinger|exec", true, NULL,
     "What the actor runs: a built-in kind, or exec (a user program given by `command`)."},
    {"actor", "count", SL_KEY_INT, "1", 1, 64, NULL, false, NULL,
     "Instances of this actor: count > 1 names them NAME.0 .. NAME.(count-1)."},
    {"actor", "restart", SL_KEY_ENUM, "permanent", 0, 0, "permanent|transient|temporary", false, NULL,
     "permanent: always restarted; transient: only after an abnormal exit; temporary: never."},
    {"actor", "restart_together", SL_KEY_BOOL, "false", 0, 0, NULL, false, NULL,
     "count > 1: when one instance ends, every instance of the group is stopped and started "
     "again, whatever [supervisor] strategy says (members of one collective, e.g. an NCCL group). "
     "Always on for a trainer group with count > 1 (data-parallel ranks)."},
    {"actor", "shutdown_ms", SL_KEY_DURATION_MS, "2000", 0, 3600000, NULL, false, NULL,
     "On stop: SIGTERM, then SIGKILL if still alive after this long."},
    {"actor", "device", SL_KEY_DEVICE, "cpu", 0, 0, NULL, false, NULL,
     "Where it computes: cpu or cuda:N (N must be a GPU of this machine)."},
    {"actor", "command", SL_KEY_STRING, "", 0, 0, NULL, true, "exec",
     "kind exec only (required there): the program and its arguments, split like a shell "
     "does (quotes, backslash) but without expansion."},
    {"actor", "heartbeat", SL_KEY_ENUM, NULL, 0, 0, "nng|mailbox|none", false, NULL,
     "How liveness is checked: nng survey, a PING to its mailbox, or none. Default: nng for "
     "built-in kinds, mailbox for exec."},
    {"actor", "peer", SL_KEY_STRING, "", 0, 0, NULL, true, "pinger",
     "kind pinger only (required there): the actor it pings, a group or an instance name."},
    {"actor", "interval_ms", SL_KEY_DURATION_MS, "200", 1, 3600000, NULL, false, "pinger",
     "kind pinger only: time between pings."},
    {"actor", "placement", SL_KEY_ENUM, "shared", 0, 0, "shared|one_per_gpu", false, NULL,
     "count > 1 with device = cuda:N: shared puts every instance on cuda:N; one_per_gpu puts "
     "instance i on cuda:(N+i) (data-parallel trainer ranks, engines on their own GPUs); all "
     "must be GPUs of the machine."},
    {"actor", "host", SL_KEY_STRING, "", 0, 0, NULL, false, NULL,
     "The machine that runs it: empty = this one; else its IPv4 address, reached with the "
     "[cluster] launcher (ssh, srun or a command) and the address its mailbox binds to. Needs "
     "[run] transport = tcp and RUN_DIR on a file system both machines share; heartbeat "
     "defaults to mailbox there (nng's is local)."},

    /* ---------------------------------------------------------- [cluster] */
    E("cluster", "launcher", "ssh", "ssh|srun|command",
      "How an actor with `host` is started on its machine: ssh_command, srun_command or "
      "launch_command, with {host} replaced, then `env SL_...=...` and the actor's command. "
      "`slime-supervisor --dry-run` prints every command line without running any."),
    S("cluster", "ssh_command", "ssh -o BatchMode=yes -tt {host}",
      "launcher = ssh: the prefix (-tt: the remote actor ends when its ssh is killed)."),
    S("cluster", "srun_command", "srun --nodes=1 --ntasks=1 --nodelist={host} --export=ALL",
      "launcher = srun: the prefix (inside a Slurm allocation)."),
    S("cluster", "launch_command", "",
      "launcher = command: the prefix, e.g. `ip netns exec NS` (required then)."),
    I("cluster", "host_gpus", "-1", -1, 4096,
      "CUDA GPUs of each other host, for the device check of actors with `host`; -1 = not "
      "checked here (the actor checks cudaGetDeviceCount when it starts)."),

    /* ------------------------------------------------------------ [model] */
    {"model", "path", SL_KEY_PATH, "", 0, 0, NULL, true, NULL,
     "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)."},
    E("model", "family", "auto", "auto|llama|qwen2|qwen3",
      "Architecture family; auto reads config.json's model_type."),
    E("model", "dtype", "auto", "auto|fp32|bf16",
      "Storage type of weights and activations; auto: fp32 on cpu, bf16 on cuda."),
    E("model", "builtin_model_type", "qwen3", "qwen3|qwen2|llama",
      "path = builtin:arith: architecture of the built-in model (qwen2: q/k/v bias; qwen3: q/k norm)."),
    I("model", "builtin_hidden_size", "64", 8, 8192, "builtin:arith: hidden size."),
    I("model", "builtin_intermediate_size", "192", 8, 32768, "builtin:arith: MLP width."),
    I("model", "builtin_num_hidden_layers", "2", 1, 64, "builtin:arith: layers."),
    I("model", "builtin_num_attention_heads", "4", 1, 128, "builtin:arith: query heads."),
    I("model", "builtin_num_key_value_heads", "2", 1, 128,
      "builtin:arith: key/value heads (dividing the query heads)."),
    I("model", "builtin_head_dim", "16", 2, 512,
      "builtin:arith: head size (even; qwen2/llama: heads x head_dim = hidden size; the GPU "
      "model takes 64 or 128)."),
    I("model", "builtin_vocab_size", "100", 100, 4194304,
      "builtin:arith: vocabulary rows; the tokenizer uses the first 100, more gives a real "
      "model's vocabulary shape (e.g. 151936)."),
    I("model", "builtin_max_position_embeddings", "256", 16, 1048576, "builtin:arith: longest sequence."),
    B("model", "builtin_tie_word_embeddings", "true", "builtin:arith: the LM head shares the embedding."),

    /* ------------------------------------------------------------- [data] */
    P("data", "prompt_data", "", "Prompt dataset (.jsonl, one object per line)."),
    S("data", "input_key", "input", "Field of a dataset object that holds the prompt."),
    S("data", "label_key", "label", "Field that holds the reference answer."),
    S("data", "metadata_key", "metadata", "Field that holds per-sample metadata (passed to rewards)."),
    B("data", "apply_chat_template", "false",
      "Render the prompt with the model's chat template before tokenizing."),
    B("data", "rollout_shuffle", "false", "Shuffle the prompts every epoch (seeded by run.seed)."),
    I("data", "num_epoch", "1", 1, 1000000, "Passes over the prompt dataset."),
    P("data", "eval_prompt_data", "", "Evaluation dataset (.jsonl); empty: no evaluation."),
    I("data", "arith_min_digits", "1", 1, 7, "prompt_data = builtin:arith: fewest digits of an operand."),
    I("data", "arith_max_digits", "2", 1, 7, "builtin:arith: most digits of an operand (>= arith_min_digits)."),
    S("data", "arith_ops", "+-", "builtin:arith: operators, a non-empty subset of \"+-*\"."),
    E("data", "arith_target", "reversed", "plain|reversed",
      "builtin:arith: SFT target form: \"#### N\", or the answer's digits reversed then \"#### N\"."),
    I("data", "arith_heldout_size", "1000", 1, 1000000,
      "builtin:arith: held-out problems for RL prompts (eval prompts are taken after them)."),
    I("data", "arith_train_size", "20000", 1, 10000000,
      "builtin:arith: train-split problems for the SFT warm-up (disjoint from the held-out split)."),
    D("data", "arith_sloppy", "0", 0, 1,
      "builtin:arith: share of SFT targets written by a sloppy teacher who forgets every carry and "
      "borrow (RL with the exact reward then has a habit to fix); 0 = every target right."),
    D("data", "arith_tool_share", "0", 0, 1,
      "builtin:arith: share of SFT targets written with the calculator tool of the example tool "
      "workflow: \"<calc>47+38</calc><result>85</result>#### 85\" (conf/tool.conf)."),
    E("data", "arith_rl_split", "train", "train|heldout",
      "builtin:arith: RL prompts: train = fresh train-split problems (num_steps x rollout_batch_size, "
      "a seed stream apart from the SFT data); heldout = arith_heldout_size held-out problems. "
      "Eval prompts are held-out either way."),

    /* ---------------------------------------------------------- [rollout] */
    I("rollout", "rollout_batch_size", "16", 1, 1000000, "Prompts per RL step."),
    I("rollout", "n_samples_per_prompt", "8", 1, 4096, "Responses sampled per prompt (the group size)."),
    I("rollout", "rollout_max_response_len", "1024", 1, 1048576, "Most tokens generated per response."),
    D("rollout", "rollout_temperature", "1.0", 0, 100, "Sampling temperature; 0 = greedy."),
    D("rollout", "rollout_top_p", "1.0", 0, 1, "Nucleus sampling: keep the smallest set with this mass."),
    I("rollout", "rollout_top_k", "-1", -1, 1000000, "Keep the k most likely tokens; -1 = all."),
    S("rollout", "rollout_stop", "", "Extra stop strings, separated by '|'; empty: EOS only."),
    I("rollout", "over_sampling_batch_size", "0", 0, 1000000,
      "Prompts sampled per step when filters drop groups; 0 = rollout_batch_size."),
    B("rollout", "async", "false",
      "Generate step k+1 while step k trains (staleness 1, importance-sampling corrected)."),
    I("rollout", "max_staleness", "1", 1, 1000,
      "async: how many weight versions a rollout may lag behind the step it trains."),
    MS("rollout", "rollout_timeout_ms", "120000", 100, 86400000,
       "A rollout instance that returns none of its groups for this long is presumed lost: its "
       "groups are dispatched again (same sample ids; late duplicates are dropped)."),
    I("rollout", "session_capacity", "8", 0, 4096,
      "Generation service: sessions whose KV (last prompt + generation) an engine keeps for "
      "prefix reuse across turns, least recently used replaced; 0 = no session cache."),
    I("rollout", "max_inflight", "1024", 1, 1000000,
      "Generation service: GENERATE requests an engine holds (queued or decoding) before it "
      "refuses new ones (ERROR EFULL)."),
    S("rollout", "workflow", "",
      "Name of a workflow actor (any [actor NAME], usually kind exec) that replaces the built-in "
      "rollout driver: the buffer sends it PROMPTS and takes its WF_SAMPLE messages (checked, "
      "refusals counted per reason); samples without a reward go to the reward actors. Empty: "
      "the built-in driver. Its response budget is rollout_max_response_len (model + tool tokens)."),
    P("rollout", "dynamic_sampling_filter_path", "",
      "Group filter plugin, FILE.so:SYMBOL (default slime_dynamic_sampling_filter; "
      "actors/workflow_plugin.h) run by the buffer in place of DAPO's non-zero-std rule."),
    P("rollout", "custom_generate_function_path", "",
      "One sample's generation as a C hook, FILE.so:SYMBOL (default slime_custom_generate; "
      "actors/workflow_plugin.h), hosted by the driver build/slime-wf-plugin run as the "
      "workflow actor (needs [rollout] workflow)."),
    P("rollout", "buffer_filter_path", "",
      "Buffer filter plugin, FILE.so:SYMBOL (default slime_buffer_filter; actors/workflow_plugin.h): "
      "picks which gathered groups of a step are trained."),

    /* ----------------------------------------------------------- [reward] */
    E("reward", "rm_type", "math", "math|gsm8k|exact|f1|format|custom|remote",
      "Built-in reward function, custom (a plugin .so given by custom_rm_path), or remote "
      "(a custom reward actor named by remote_actor, any language)."),
    P("reward", "custom_rm_path", "",
      "rm_type custom: the reward plugin, FILE.so:SYMBOL (SYMBOL defaults to slime_reward; "
      "signature in actors/reward_plugin.h). Required there."),
    S("reward", "remote_actor", "",
      "rm_type remote: the actor that answers REWARD_REQ messages (mailbox/PROTOCOL.md)."),
    I("reward", "reward_memory_mb", "1024", 16, 1048576,
      "rm_type custom: address-space limit (RLIMIT_AS) of the plugin's worker process, in MiB."),
    MS("reward", "reward_timeout_ms", "10000", 1, 3600000,
       "A reward computation longer than this scores 0 and is counted."),
    I("reward", "reward_cpu_s", "0", 0, 86400,
      "rm_type custom: CPU seconds (RLIMIT_CPU) one plugin call may use in its worker process; "
      "0 = reward_timeout_ms rounded up."),
    I("reward", "reward_retries", "1", 0, 100,
      "rm_type custom: a plugin call that hangs (reward_timeout_ms) or crashes (a signal, a limit) "
      "is tried again this many times with a fresh worker; rm_type remote: a REWARD_REQ whose reply "
      "is missing after reward_timeout_ms or is an ERROR reply is sent again this many times "
      "(after reward_retry_backoff_ms); then the sample fails (reward 0, counted in reward_failed). "
      "A plugin's own error return, a remote reply without a finite reward, is not retried."),
    MS("reward", "reward_retry_backoff_ms", "200", 0, 60000,
       "rm_type remote: wait before the first retry of a failed REWARD_REQ, doubled for each "
       "further retry (at most 30 s)."),

    /* -------------------------------------------------------- [algorithm] */
    E("algorithm", "advantage_estimator", "grpo",
      "grpo|gspo|reinforce_plus_plus|reinforce_plus_plus_baseline|rloo", "How advantages are computed."),
    B("algorithm", "disable_grpo_std_normalization", "false",
      "grpo: do not divide by the group's reward std (Dr. GRPO)."),
    D("algorithm", "eps_clip", "0.2", 0, 10, "PPO clip range (lower; upper too unless eps_clip_high)."),
    D("algorithm", "eps_clip_high", "0", 0, 10, "Upper clip range (DAPO clip-higher); 0 = eps_clip."),
    D("algorithm", "eps_clip_c", "0", 0, 1000, "Dual-clip constant (> 1); 0 = off."),
    D("algorithm", "entropy_coef", "0", 0, 100, "Weight of the entropy bonus."),
    B("algorithm", "use_kl_loss", "false", "Add a KL(policy || reference) term to the loss."),
    D("algorithm", "kl_loss_coef", "0", 0, 100, "Weight of the KL loss term."),
    E("algorithm", "kl_loss_type", "k1", "k1|k2|k3|low_var_kl", "KL estimator of the KL loss."),
    D("algorithm", "kl_coef", "0", 0, 100, "KL penalty folded into the reward."),
    B("algorithm", "calculate_per_token_loss", "false",
      "Average the loss over tokens instead of over samples."),
    B("algorithm", "use_tis", "false",
      "Truncated importance sampling between rollout and training logprobs."),
    D("algorithm", "tis_clip", "2.0", 0, 1000, "Upper truncation of the TIS ratio."),
    B("algorithm", "dynamic_sampling", "false",
      "Drop groups whose rewards all agree (DAPO's non-zero std filter) and sample more."),
    E("algorithm", "loss_type", "policy_loss", "policy_loss|sft_loss",
      "Policy-gradient loss, or plain supervised fine-tuning loss."),

    /* ---------------------------------------------------------- [trainer] */
    D("trainer", "lr", "1e-6", 0, 10, "Peak learning rate."),
    D("trainer", "min_lr", "0", 0, 10, "Learning rate at the end of the decay (<= lr)."),
    I("trainer", "lr_warmup_steps", "0", 0, BIG, "Optimizer steps of linear warmup."),
    E("trainer", "lr_decay_style", "constant", "constant|linear|cosine", "Learning-rate schedule after warmup."),
    D("trainer", "weight_decay", "0.1", 0, 10, "AdamW decoupled weight decay."),
    D("trainer", "adam_beta1", "0.9", 0, 0.999999, "AdamW beta1."),
    D("trainer", "adam_beta2", "0.98", 0, 0.999999999, "AdamW beta2."),
    D("trainer", "adam_eps", "1e-8", 1e-30, 1, "AdamW epsilon."),
    D("trainer", "clip_grad", "1.0", 0, 1e9, "Clip the global gradient norm to this; 0 = off."),
    I("trainer", "global_batch_size", "0", 0, BIG,
      "Samples per optimizer step; 0 = rollout_batch_size * n_samples_per_prompt / num_steps_per_rollout."),
    I("trainer", "micro_batch_size", "1", 1, 1000000, "Samples per forward/backward pass."),
    I("trainer", "num_steps_per_rollout", "1", 1, 100000, "Optimizer steps per RL step."),
    I("trainer", "zero_stage", "1", 0, 1,
      "Data parallelism (trainer count > 1): 1 = AdamW moments and master weights sharded "
      "across the ranks (ZeRO-1), 0 = every rank keeps all of them."),
    I("trainer", "dp_bucket_mb", "16", 1, 1024,
      "Data parallelism: MiB of fp32 gradients per NCCL all-reduce bucket, launched as each "
      "layer's gradients are complete in the backward."),
    I("trainer", "broadcast_bucket_mb", "64", 1, 4096,
      "Engines on other GPUs: MiB per NCCL broadcast of the bf16 weights from trainer rank 0."),
    I("trainer", "save_interval", "0", 0, BIG, "Checkpoint every this many RL steps; 0 = only at the end."),
    I("trainer", "max_tokens_per_gpu", "0", 0, 1048576,
      "Most tokens packed into one forward/backward (activation memory); samples are packed up to "
      "it within a micro-batch. 0 = auto: min(max_position_embeddings, 4096) x micro_batch_size, "
      "at most 65536 on the CPU and 16384 on a GPU."),
    B("trainer", "recompute_activations", "false",
      "Trainer on a GPU: keep only each layer's input for the backward and run the layer's forward "
      "again there (full activation recomputation): about a third more compute, activation memory "
      "of one layer instead of all, so longer packs fit (max_tokens_per_gpu)."),
    E("trainer", "gpu_weight_sync", "auto", "auto|copy|in_place|broadcast",
      "Trainer on a GPU, rollout on the same GPU (CUDA IPC): copy = the rollout copies the "
      "published bf16 buffer into its own on each WEIGHTS (one device copy, ~1 ms for 0.5B); "
      "in_place = it reads the trainer's buffer, no copy (only safe while the trainer does not "
      "write it: synchronous RL); auto = in_place when rollout.async is false, else copy. "
      "Rollouts on other GPUs always get the weights by NCCL broadcast from trainer rank 0 "
      "(broadcast_bucket_mb); broadcast = that for the same GPU too (NCCL over loopback "
      "sockets: for tests on one GPU)."),
    I("trainer", "eval_interval", "0", 0, BIG, "Evaluate every this many RL steps; 0 = never."),

    /* -------------------------------------------------------------- [sft] */
    I("sft", "steps", "0", 0, BIG, "SFT warm-up optimizer steps before RL (loss_type sft_loss); 0 = none."),
    I("sft", "batch_size", "32", 1, 1000000, "Samples per SFT step."),
    D("sft", "lr", "1e-3", 0, 10, "Peak learning rate of the SFT warm-up."),
    D("sft", "min_lr", "0", 0, 10, "SFT learning rate at the end of the decay (<= lr)."),
    I("sft", "lr_warmup_steps", "0", 0, BIG, "SFT optimizer steps of linear warmup."),
    E("sft", "lr_decay_style", "constant", "constant|linear|cosine",
      "SFT learning-rate schedule after warmup, decaying over [sft] steps."),
    P("sft", "prompt_data", "",
      "SFT dataset (.jsonl with a response field); empty: the builtin:arith train split."),
    S("sft", "response_key", "response", "Field of an SFT dataset object that holds the target."),
    S("sft", "loss_mask_spans", "",
      "OPEN|CLOSE: target text from OPEN through CLOSE gets loss_mask 0 in SFT batches (tool output "
      "a workflow inserts, e.g. \"<result>|</result>\"); empty: every target token is trained."),

    /* ------------------------------------------------------------- [eval] */
    I("eval", "n_prompts", "200", 1, 1000000, "Held-out prompts per evaluation (greedy, one sample each)."),
    B("eval", "at_start", "true",
      "Evaluate before the first RL step (right after the SFT warm-up): the step-0 eval."),
    B("eval", "at_end", "true", "Evaluate after the last RL step."),

    /* ----------------------------------------------------------- [faults] */
    I("faults", "seed", "1", 0, 4294967295.0,
      "Seed of the fault schedule's random choices (rand steps, @rN passes)."),
    S("faults", "schedule", "",
      "Faults the supervisor injects, entries separated by ',': ACTION:ACTOR@WHEN[xK]. ACTION: "
      "kill (SIGKILL), term (SIGTERM), hang (SIGSTOP until the heartbeat timeout kills it), slow "
      "(SIGSTOP for slow_ms, then SIGCONT), drop / corrupt (the actor's next outgoing mailbox frame "
      "is dropped / has a byte flipped). ACTOR: an instance or group name (a group: one instance "
      "drawn by seed). WHEN: stepN (once the ledger holds N RL steps), Nms or Ns (after that long), "
      "rand (a step drawn from 1..num_steps-1). xK: K times, at WHEN, 2*WHEN, ... (rand: K draws). "
      "Empty: none."),
    S("faults", "points", "",
      "Injection points armed inside the actors: [ACTOR:]POINT=ACTION[@N|@rN][xK], separated by "
      "','. POINT: wal_append, wal_write, wal_ack, weights_publish, ckpt_write, train_step, "
      "rollout_generate, reward_score, mb_send; ACTION: kill (the process dies there), drop or "
      "corrupt (mb_send only); @N: at the N-th pass in the process (@rN: a pass drawn from 1..N); "
      "xK: at most K times in the run, across restarts (default 1). The environment variable "
      "SL_FAULTS replaces it. See mailbox/faults.h."),
    MS("faults", "slow_ms", "1500", 1, 3600000, "How long a `slow` fault stops the actor."),
};

/* Sections in reference order; "actor" stands for every [actor NAME]. */
static const char *const section_names[] = {
    "run", "supervisor", "actor", "model", "data", "rollout", "reward", "algorithm", "trainer",
    "sft", "eval", "faults", "cluster",
};

const sl_key_def *sl_topology_keys(size_t *n) {
    if (n) *n = SL_ARRAY_LEN(keys);
    return keys;
}

/* Internal (topology.c): the known section names. */
const char *const *sl_topology_section_names_(size_t *n) {
    *n = SL_ARRAY_LEN(section_names);
    return section_names;
}

const sl_key_def *sl_topology_key_find(const char *section, const char *key) {
    if (!section || !key) return NULL;
    char sec[32];
    /* "actor NAME" and "actor.NAME" both mean the actor table */
    if (strncmp(section, "actor", 5) == 0 && (section[5] == ' ' || section[5] == '.' || !section[5]))
        strcpy(sec, "actor");
    else if (strlen(section) < sizeof sec)
        strcpy(sec, section);
    else
        return NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].section, sec) == 0 && strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

const char *sl_key_type_name(sl_key_type t) {
    switch (t) {
    case SL_KEY_INT: return "int";
    case SL_KEY_DOUBLE: return "double";
    case SL_KEY_BOOL: return "bool";
    case SL_KEY_STRING: return "string";
    case SL_KEY_ENUM: return "enum";
    case SL_KEY_PATH: return "path";
    case SL_KEY_DURATION_MS: return "duration_ms";
    case SL_KEY_DEVICE: return "device";
    }
    return "?";
}
