// One whole SAC / RLPD update on state features as a single operator: next action, TD target, critic
// step (ensemble_mlp.cpp), actor step through the updated critic, temperature step, Polyak.
//
// Why: with the critic ensemble on its own operators, what remained of a compiled update was the small
// actor network plus a graph's fixed costs (guards, wrapper, ~20 small kernels) - a quarter of the time
// at the default sizes. Here it is plain C++ with no per-call tracing and no cold compile.
//
// The math is robolearn.rl.fused.FusedUpdate._functional_step / SACAgent.update (the readable reference):
// losses.tanh_gaussian_sample, td_target, actor_loss (mean over members, optional Q normalisation),
// bc_loss on demo rows, the temperature loss, torch.optim.Adam. Tests compare the two on every option.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ensemble_mlp.h"
#include "kernels.h"

namespace robolearn {
namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;  // 0.5 * log(2 pi)
constexpr float kLog2 = 0.69314718055994530942f;

// The actor trunk: nn.Sequential(Linear, LayerNorm, ReLU, ..., Linear) with nn.Linear's (out, in) weights.
struct Mlp {
  int64_t in0 = 0, out = 0, layers = 0;
  std::vector<int64_t> width;
};

Mlp check_mlp(at::TensorList p) {
  TORCH_CHECK(p.size() >= 6 && (p.size() - 2) % 4 == 0,
              "actor params: expected 4 tensors per hidden layer plus 2 for the output layer, got ", p.size());
  for (size_t i = 0; i < p.size(); ++i)
    TORCH_CHECK(p[i].scalar_type() == at::kFloat && p[i].is_contiguous() && p[i].device().is_cpu(),
                "actor params must be contiguous float32 CPU tensors (param ", i, ")");
  Mlp n;
  n.layers = (int64_t)(p.size() - 2) / 4;
  n.in0 = p[0].size(1);
  int64_t in = n.in0;
  for (int64_t l = 0; l <= n.layers; ++l) {
    const auto& W = p[4 * l];
    TORCH_CHECK(W.dim() == 2 && W.size(1) == in, "actor layer ", l, ": weight must be (out, ", in, "), got ", W.sizes());
    const int64_t out = W.size(0);
    TORCH_CHECK(p[4 * l + 1].numel() == out, "actor layer ", l, ": bias size mismatch");
    if (l < n.layers) {
      TORCH_CHECK(p[4 * l + 2].numel() == out && p[4 * l + 3].numel() == out, "actor layer ", l,
                  ": LayerNorm size mismatch");
      n.width.push_back(out);
    }
    n.out = out;
    in = out;
  }
  return n;
}

struct ActorScratch {  // activations the backward needs, per hidden layer, for the whole batch
  std::vector<std::vector<float>> xhat, relu, rstd, dh, dw, dsmall;
  std::vector<float> out, dout, dwo;
  int64_t threads = 1;
  void ensure(const Mlp& n, int64_t B) {
    const int64_t L = n.layers;
    threads = at::get_num_threads();
    xhat.resize(L), relu.resize(L), rstd.resize(L), dh.resize(L), dw.resize(L), dsmall.resize(L);
    int64_t in = n.in0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = n.width[l];
      xhat[l].resize(B * H), relu[l].resize(B * H), rstd[l].resize(B), dh[l].resize(B * H), dw[l].resize(H * in);
      dsmall[l].resize(threads * 3 * H);  // per-thread partial sums of the LayerNorm / bias gradients
      in = H;
    }
    out.resize(B * n.out), dout.resize(B * n.out), dwo.resize(n.out * (in + 1));
  }
};

inline const float* fp(const at::Tensor& t) { return t.data_ptr<float>(); }
inline float* fm(const at::Tensor& t) { return t.data_ptr<float>(); }

// Rows are independent through the network: each thread takes a block of them and runs its GEMMs
// single-threaded (one network's 256 x 256 GEMMs are too small to split well across cores).
template <typename Fn>
void for_row_blocks(int64_t B, const Fn& fn) {
  at::parallel_for(0, B, 32, [&](int64_t lo, int64_t hi) { fn(lo, hi, at::get_thread_num()); });
}

inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }  // F.softplus's threshold

// losses.tanh_gaussian_sample on the actor's output (mean | raw log-std), row-major (B, 2A).
struct Sample {
  std::vector<float> pi, logp, tanh_mean, std_noise, ls_pass;  // std * noise, d log_std / d raw (0 or 1)
};

void sample_rows(const float* out, const float* noise, int64_t lo, int64_t hi, int64_t A, float ls_min,
                 float ls_max, Sample& s, bool for_backward) {
  for (int64_t b = lo; b < hi; ++b) {
    double lp = 0.0;
    for (int64_t a = 0; a < A; ++a) {
      const float mean = out[b * 2 * A + a], raw = out[b * 2 * A + A + a];
      const float ls = std::min(std::max(raw, ls_min), ls_max);
      const float eps = noise[b * A + a];
      const float sn = std::exp(ls) * eps;
      const float u = mean + sn;
      const float log_prob_u = -0.5f * eps * eps - ls - (float)kHalfLog2Pi;
      const float log_det = 2.0f * (kLog2 - u - softplus(-2.0f * u));
      lp += log_prob_u - log_det;
      s.pi[b * A + a] = std::tanh(u);
      if (for_backward) {
        s.tanh_mean[b * A + a] = std::tanh(mean);
        s.std_noise[b * A + a] = sn;
        s.ls_pass[b * A + a] = (raw >= ls_min && raw <= ls_max) ? 1.f : 0.f;
      }
    }
    s.logp[b] = (float)lp;
  }
}

struct SampleArgs {  // losses.tanh_gaussian_sample of the forward's rows, in the same parallel region
  const float* noise;
  int64_t A;
  float ls_min, ls_max;
  Sample* out;
  bool for_backward;
};

// x (B, in0) -> s.out (B, out), keeping what the backward needs; then the tanh-Gaussian sample.
void actor_forward(const Mlp& n, at::TensorList p, const float* x, int64_t B, ActorScratch& s, const SampleArgs& sa) {
  Sample& smp = *sa.out;
  smp.pi.resize(B * sa.A), smp.logp.resize(B);
  if (sa.for_backward) smp.tanh_mean.resize(B * sa.A), smp.std_noise.resize(B * sa.A), smp.ls_pass.resize(B * sa.A);
  for_row_blocks(B, [&](int64_t lo, int64_t hi, int) {
    const int64_t rows = hi - lo;
    const float* inp = x + lo * n.in0;
    int64_t in = n.in0;
    for (int64_t l = 0; l < n.layers; ++l) {
      const int64_t H = n.width[l];
      float* h = s.xhat[l].data() + lo * H;
      float* r = s.relu[l].data() + lo * H;
      const float* bias = fp(p[4 * l + 1]);
      const float* g = fp(p[4 * l + 2]);
      const float* be = fp(p[4 * l + 3]);
      gemm(false, true, rows, H, in, inp, in, fp(p[4 * l]), in, 0.0f, h, H);
      ln_relu_forward_rows(h, r, s.rstd[l].data() + lo, bias, g, be, rows, H);
      inp = r;
      in = H;
    }
    float* out = s.out.data() + lo * n.out;
    gemm(false, true, rows, n.out, in, inp, in, fp(p[4 * n.layers]), in, 0.0f, out, n.out);
    const float* bo = fp(p[4 * n.layers + 1]);
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t j = 0; j < n.out; ++j) out[b * n.out + j] += bo[j];
    sample_rows(s.out.data(), sa.noise, lo, hi, sa.A, sa.ls_min, sa.ls_max, smp, sa.for_backward);
  });
}

// Gradients of every actor parameter from s.dout (B, out), then Adam on each.
void actor_backward_step(const Mlp& n, at::TensorList p, at::TensorList m, at::TensorList v, const float* x,
                         int64_t B, ActorScratch& s, const AdamArgs& adam) {
  const int64_t L = n.layers, HL = n.width[L - 1], O = n.out;
  const float* dout = s.dout.data();
  for (int64_t l = 0; l < L; ++l) std::fill(s.dsmall[l].begin(), s.dsmall[l].end(), 0.f);
  // rows: d pre-activation of every hidden layer (the LayerNorm / bias sums per thread)
  for_row_blocks(B, [&](int64_t lo, int64_t hi, int t) {
    const int64_t rows = hi - lo;
    gemm(false, false, rows, HL, O, dout + lo * O, O, fp(p[4 * L]), HL, 0.0f, s.dh[L - 1].data() + lo * HL, HL);
    for (int64_t l = L - 1; l >= 0; --l) {
      const int64_t H = n.width[l];
      float* dh = s.dh[l].data() + lo * H;
      float* dg = s.dsmall[l].data() + t * 3 * H;
      const float* g = fp(p[4 * l + 2]);
      for (int64_t b = 0; b < rows; ++b)
        ln_relu_backward_row(dh + b * H, s.xhat[l].data() + (lo + b) * H, s.relu[l].data() + (lo + b) * H, g,
                             s.rstd[l][lo + b], H, dg, dg + H, dg + 2 * H);
      if (l > 0) {
        const int64_t in = n.width[l - 1];
        gemm(false, false, rows, in, H, dh, H, fp(p[4 * l]), in, 0.0f, s.dh[l - 1].data() + lo * in, in);
      }
    }
  });
  // weights: dW_l = dh_l^T inp_l over the whole batch, each thread a block of every layer's output units
  const int64_t T = s.threads;
  at::parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t l = 0; l <= L; ++l) {
        const int64_t H = l == L ? O : n.width[l];
        const int64_t in = l == 0 ? n.in0 : n.width[l - 1];
        const int64_t h0 = H * t / T, h1 = H * (t + 1) / T;
        if (h1 <= h0) continue;
        const float* inp = l == 0 ? x : s.relu[l - 1].data();
        const float* d = l == L ? dout : s.dh[l].data();
        float* dw = l == L ? s.dwo.data() : s.dw[l].data();
        gemm(true, false, h1 - h0, in, B, d + h0, H, inp, in, 0.0f, dw + h0 * in, in);
        if (l == L) {
          float* dbo = s.dwo.data() + O * HL;
          for (int64_t j = h0; j < h1; ++j) {
            float acc = 0.f;
            for (int64_t b = 0; b < B; ++b) acc += dout[b * O + j];
            dbo[j] = acc;
          }
        }
      }
    }
  });
  auto step = [&](int64_t idx, const float* grad, int64_t count) {
    adam_slice(fm(p[idx]), fm(m[idx]), fm(v[idx]), nullptr, grad, count, adam);
  };
  int64_t in = n.in0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = n.width[l];
    float* dg = s.dsmall[l].data();
    for (int64_t t = 1; t < s.threads; ++t)
      for (int64_t j = 0; j < 3 * H; ++j) dg[j] += dg[t * 3 * H + j];
    step(4 * l, s.dw[l].data(), H * in);
    step(4 * l + 1, dg + 2 * H, H);
    step(4 * l + 2, dg, H);
    step(4 * l + 3, dg + H, H);
    in = H;
  }
  step(4 * L, s.dwo.data(), O * HL);
  step(4 * L + 1, s.dwo.data() + O * HL, O);
}

at::Tensor cat_rows(const at::Tensor& a, const float* b, int64_t kb) {  // [a | b] row-wise, (B, Fa + kb)
  const int64_t B = a.size(0), ka = a.size(1);
  auto x = at::empty({B, ka + kb}, a.options());
  float* xp = fm(x);
  const float* ap = fp(a);
  for (int64_t r = 0; r < B; ++r) {
    std::copy(ap + r * ka, ap + (r + 1) * ka, xp + r * (ka + kb));
    std::copy(b + r * kb, b + (r + 1) * kb, xp + r * (ka + kb) + ka);
  }
  return x;
}

void check_2d(const at::Tensor& t, int64_t rows, int64_t cols, const char* what) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && (cols < 0 || t.size(1) == cols) && t.scalar_type() == at::kFloat &&
                  t.is_contiguous(),
              what, " must be a contiguous float32 (", rows, ", ", cols, ") tensor, got ", t.sizes());
}

void check_1d(const at::Tensor& t, int64_t rows, const char* what) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == rows && t.scalar_type() == at::kFloat && t.is_contiguous(), what,
              " must be a contiguous float32 (", rows, ",) tensor, got ", t.sizes());
}

// torch.optim.Adam's per-parameter step counters (float32 scalars): += 1, returns the new count.
double bump(at::TensorList steps) {
  double count = 0.0;
  for (const auto& s : steps) {
    TORCH_CHECK(s.numel() == 1 && s.scalar_type() == at::kFloat && s.device().is_cpu(),
                "Adam step counters must be float32 CPU scalars");
    count = (*s.data_ptr<float>() += 1.0f);
  }
  return count;
}

inline float scalar(const at::Tensor& t) { return *t.data_ptr<float>(); }

}  // namespace

// hp: critic lr, b1, b2, eps | actor lr, b1, b2, eps | temperature lr, b1, b2, eps | tau, target entropy,
//     log-std min, log-std max, bc weight, target clip low, target clip high
// flags: update actor, entropy in the backup, clip the target, normalise Q in the actor loss
// returns (critic loss, mean Q, actor loss, entropy, alpha); the last three NaN without an actor step.
at::Tensor sac_update(const at::Tensor& feat, const at::Tensor& next_feat, const at::Tensor& action,
                      const at::Tensor& reward, const at::Tensor& discount, const at::Tensor& next_noise,
                      const at::Tensor& noise, const at::Tensor& members, const at::Tensor& demo_mask,
                      at::TensorList critic, at::TensorList critic_m, at::TensorList critic_v, at::TensorList target,
                      at::TensorList critic_steps, at::TensorList actor, at::TensorList actor_m,
                      at::TensorList actor_v, at::TensorList actor_steps, const at::Tensor& log_alpha,
                      const at::Tensor& temp_m, const at::Tensor& temp_v, const at::Tensor& temp_step,
                      at::ArrayRef<double> hp, at::ArrayRef<int64_t> flags) {
  TORCH_CHECK(hp.size() == 19 && flags.size() == 4, "sac_update: expected 19 hyper-parameters and 4 flags");
  const int64_t B = feat.size(0), F = feat.size(1), A = action.size(1);
  check_2d(feat, B, -1, "features");
  check_2d(next_feat, B, F, "next features");
  check_2d(action, B, A, "action");
  check_2d(next_noise, B, A, "next-action noise");
  check_2d(noise, B, A, "action noise");
  check_1d(reward, B, "reward");
  check_1d(discount, B, "discount");
  TORCH_CHECK(demo_mask.dim() == 1 && demo_mask.size(0) == B && demo_mask.scalar_type() == at::kBool,
              "demo mask must be a (B,) bool tensor");
  TORCH_CHECK(actor_m.size() == actor.size() && actor_v.size() == actor.size() && actor_steps.size() == actor.size(),
              "actor optimizer state must match the actor's parameters");
  TORCH_CHECK(critic_steps.size() == critic.size(), "one Adam step counter per critic parameter");
  const Mlp net = check_mlp(actor);
  TORCH_CHECK(net.in0 == F && net.out == 2 * A, "actor must map ", F, " features to ", 2 * A, " outputs");
  const bool update_actor = flags[0], backup_entropy = flags[1], clip = flags[2], q_normalize = flags[3];
  const float tau = (float)hp[12], target_entropy = (float)hp[13], ls_min = (float)hp[14], ls_max = (float)hp[15];
  const float bc_weight = (float)hp[16];
  TORCH_CHECK(log_alpha.numel() == 1 && log_alpha.scalar_type() == at::kFloat && temp_step.numel() == 1 &&
                  temp_step.scalar_type() == at::kFloat,
              "log_alpha and its step counter must be float32 scalars");
  const float alpha = std::exp(scalar(log_alpha));

  thread_local ActorScratch as;
  thread_local Sample next_s, cur_s;
  as.ensure(net, B);

  // TD target from the target critic's drawn members at the current policy's next action
  actor_forward(net, actor, fp(next_feat), B, as, {fp(next_noise), A, ls_min, ls_max, &next_s, false});
  at::Tensor next_q = ensemble_forward(cat_rows(next_feat, next_s.pi.data(), A), target, members);
  auto y = at::empty({B}, feat.options());
  {
    const int64_t k = next_q.size(0);
    const float* nq = fp(next_q);
    const float *r = fp(reward), *d = fp(discount);
    float* yp = fm(y);
    for (int64_t b = 0; b < B; ++b) {
      float v = nq[b];
      for (int64_t i = 1; i < k; ++i) v = std::min(v, nq[i * B + b]);
      if (backup_entropy) v = v - alpha * next_s.logp[b];
      float t = r[b] + d[b] * v;
      if (clip) t = std::min(std::max(t, (float)hp[17]), (float)hp[18]);
      yp[b] = t;
    }
  }
  // the actor's sample at the current observations does not depend on the critic: draw it first, so each
  // critic member is evaluated at it right after its own step (still in cache), as the reference evaluates
  // the updated critic
  at::Tensor x_pi;
  if (update_actor) {
    actor_forward(net, actor, fp(feat), B, as, {fp(noise), A, ls_min, ls_max, &cur_s, true});
    x_pi = cat_rows(feat, cur_s.pi.data(), A);
  }
  bump(critic_steps);
  auto [c_loss, q, q_pi, dq] = ensemble_critic_step_then_q_input_grad(
      cat_rows(feat, fp(action), A), y, critic, critic_m, critic_v, target, critic_steps[0], hp[0], hp[1], hp[2],
      hp[3], tau, update_actor ? &x_pi : nullptr, F);
  const float nan = std::nanf("");
  float a_loss = nan, entropy = nan, alpha_out = nan;
  if (update_actor) {
    const int64_t E = q_pi.size(0);
    const float* qp = fp(q_pi);
    const float* jp = fp(dq);
    std::vector<float> q_bar(B);
    double abs_sum = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      double s = 0.0;
      for (int64_t e = 0; e < E; ++e) s += qp[e * B + b];
      q_bar[b] = (float)(s / E);
      abs_sum += std::fabs(q_bar[b]);
    }
    const float scale = q_normalize ? std::max((float)(abs_sum / B), 1e-6f) : 1.0f;
    const bool* mask = demo_mask.data_ptr<bool>();
    double n_demo = 0.0;
    for (int64_t b = 0; b < B; ++b) n_demo += mask[b] ? 1.0 : 0.0;
    const float demo_div = (float)std::max(n_demo, 1.0);
    const float* act = fp(action);
    double loss = 0.0, bc = 0.0, logp_sum = 0.0;
    float* dout = as.dout.data();  // d loss / d (mean | raw log-std)
    const float g_logp = alpha / B;
    for (int64_t b = 0; b < B; ++b) {
      loss += alpha * cur_s.logp[b] - q_bar[b] / scale;
      logp_sum += cur_s.logp[b];
      for (int64_t a = 0; a < A; ++a) {
        const int64_t i = b * A + a;
        double jsum = 0.0;
        for (int64_t e = 0; e < E; ++e) jsum += jp[(e * B + b) * A + a];
        const float g_pi = -(float)(jsum / E) / (B * scale);
        const float t = cur_s.pi[i];
        const float g_u = g_pi * (1.0f - t * t) + g_logp * 2.0f * t;  // d log pi / d u = 2 tanh(u)
        float g_mean = g_u;
        if (bc_weight > 0 && mask[b]) {
          const float err = cur_s.tanh_mean[i] - act[i];
          bc += (double)err * err;
          g_mean += bc_weight * 2.0f * err / demo_div * (1.0f - cur_s.tanh_mean[i] * cur_s.tanh_mean[i]);
        }
        dout[b * 2 * A + a] = g_mean;
        dout[b * 2 * A + A + a] = (g_u * cur_s.std_noise[i] - g_logp) * cur_s.ls_pass[i];
      }
    }
    a_loss = (float)(loss / B);
    if (bc_weight > 0) a_loss += bc_weight * (float)(bc / demo_div);
    const double ast = bump(actor_steps);
    actor_backward_step(net, actor, actor_m, actor_v, fp(feat), B, as,
                        adam_args(hp[4], hp[5], hp[6], hp[7], 0.0, ast));
    // temperature: d/d log_alpha of exp(log_alpha) * (entropy - target)
    entropy = (float)(-logp_sum / B);
    float g_temp = alpha * (entropy - target_entropy);
    const double tst = (*fm(temp_step) += 1.0f);
    adam_slice(fm(log_alpha), fm(temp_m), fm(temp_v), nullptr, &g_temp, 1,
               adam_args(hp[8], hp[9], hp[10], hp[11], 0.0, tst));
    alpha_out = std::exp(scalar(log_alpha));
  }
  auto out = at::empty({5}, feat.options());
  float* o = fm(out);
  double q_sum = 0.0;
  const float* qp = fp(q);
  for (int64_t i = 0; i < q.numel(); ++i) q_sum += qp[i];
  o[0] = scalar(c_loss), o[1] = (float)(q_sum / q.numel()), o[2] = a_loss, o[3] = entropy, o[4] = alpha_out;
  return out;
}

}  // namespace robolearn

TORCH_LIBRARY_FRAGMENT(robolearn_rl, m) {
  m.def(
      "sac_update(Tensor feat, Tensor next_feat, Tensor action, Tensor reward, Tensor discount, Tensor next_noise, "
      "Tensor noise, Tensor members, Tensor demo_mask, Tensor(a!)[] critic, Tensor(b!)[] critic_m, "
      "Tensor(c!)[] critic_v, Tensor(d!)[] target, Tensor(e!)[] critic_steps, Tensor(f!)[] actor, "
      "Tensor(g!)[] actor_m, Tensor(h!)[] actor_v, Tensor(i!)[] actor_steps, Tensor(j!) log_alpha, "
      "Tensor(k!) temp_m, Tensor(l!) temp_v, Tensor(m!) temp_step, float[] hp, int[] flags) -> Tensor");
}

TORCH_LIBRARY_IMPL(robolearn_rl, CPU, m) { m.impl("sac_update", &robolearn::sac_update); }
