// The LayerNorm-MLP critic ensemble, one member at a time per thread.
//
// Why: run as batched (E, B, H) tensors, every element-wise pass (LayerNorm, ReLU, their backward,
// Adam) streams E * B * H floats through memory, and two threads share each small (B x H x H) GEMM.
// Here each thread takes whole members: a member's activations (B x H) and weights stay in its core's
// L2 cache from the forward through the backward to the Adam step, and its GEMMs run single-threaded
// (near the core's peak at 256 x 256 x 256). Same math as robolearn.rl.networks.EnsembleMLP with
// layer_norm=True; tests check forward, gradients and the optimizer step against autograd.
//
// Parameter list layout (= Critic.parameters()): per hidden layer [W (E,in,out), b (E,1,out),
// gamma (E,1,out), beta (E,1,out)], then the output layer [W (E,H,1), b (E,1,1)].
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ensemble_mlp.h"
#include "kernels.h"

#include <cmath>
#include <vector>

namespace robolearn {
namespace {

struct Net {  // shapes shared by all members
  int64_t in0 = 0, layers = 0;
  std::vector<int64_t> width;  // hidden widths
};

Net check_params(const at::TensorList& p, int64_t members) {
  TORCH_CHECK(p.size() >= 6 && (p.size() - 2) % 4 == 0,
              "ensemble params: expected 4 tensors per hidden layer plus 2 for the output layer, got ", p.size());
  Net n;
  n.layers = (int64_t)(p.size() - 2) / 4;
  n.in0 = p[0].size(1);
  int64_t in = n.in0;
  for (size_t i = 0; i < p.size(); ++i) {
    TORCH_CHECK(p[i].scalar_type() == at::kFloat && p[i].is_contiguous() && p[i].device().is_cpu(),
                "ensemble params must be contiguous float32 CPU tensors (param ", i, ")");
    TORCH_CHECK(p[i].dim() == 3 && p[i].size(0) == members, "ensemble param ", i, " must be (E, ., .), got ",
                p[i].sizes());
  }
  for (int64_t l = 0; l <= n.layers; ++l) {
    const auto& W = p[4 * l];
    TORCH_CHECK(W.size(1) == in, "ensemble layer ", l, ": weight has ", W.size(1), " inputs, expected ", in);
    int64_t out = W.size(2);
    TORCH_CHECK(p[4 * l + 1].size(2) == out, "ensemble layer ", l, ": bias size mismatch");
    if (l < n.layers) {
      TORCH_CHECK(p[4 * l + 2].size(2) == out && p[4 * l + 3].size(2) == out, "ensemble layer ", l,
                  ": LayerNorm size mismatch");
      n.width.push_back(out);
    } else {
      TORCH_CHECK(out == 1, "ensemble output layer must have 1 output, got ", out);
    }
    in = out;
  }
  return n;
}

// Per-thread scratch, kept between calls (large blocks from malloc would page-fault on every call).
struct Scratch {
  std::vector<std::vector<float>> xhat, relu, rstd, dw, dsmall;  // per hidden layer
  std::vector<float> buf0, buf1, row, dwo;
  void ensure(const Net& n, int64_t B) {
    const int64_t L = n.layers;
    xhat.resize(L), relu.resize(L), rstd.resize(L), dw.resize(L), dsmall.resize(L);
    int64_t wmax = 0, in = n.in0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = n.width[l];
      if ((int64_t)xhat[l].size() < B * H) xhat[l].resize(B * H), relu[l].resize(B * H);
      if ((int64_t)rstd[l].size() < B) rstd[l].resize(B);
      if ((int64_t)dw[l].size() < in * H) dw[l].resize(in * H);
      if ((int64_t)dsmall[l].size() < 3 * H) dsmall[l].resize(3 * H);
      wmax = std::max(wmax, H);
      in = H;
    }
    if ((int64_t)buf0.size() < B * wmax) buf0.resize(B * wmax), buf1.resize(B * wmax);
    if ((int64_t)row.size() < 2 * wmax) row.resize(2 * wmax);
    if ((int64_t)dwo.size() < wmax + 1) dwo.resize(wmax + 1);
  }
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

inline const float* member_ptr(const at::Tensor& t, int64_t e) {
  return t.data_ptr<float>() + e * t.size(1) * t.size(2);
}
inline float* member_mut(const at::Tensor& t, int64_t e) { return t.data_ptr<float>() + e * t.size(1) * t.size(2); }

struct Optim {
  at::TensorList m, v, target;
  AdamArgs args;
};

// What one member pass computes after the forward.
struct Pass {
  const float* y = nullptr;  // critic step: TD targets (B); dQ = scale * (Q - y)
  float scale = 0.f;
  bool unit_dq = false;      // actor path: dQ = 1 (then dx gets d Q / d x[:, in_start:])
  const Optim* opt = nullptr;
  float* dx = nullptr;
  int64_t in_start = 0;
  double* sq = nullptr;      // sum of squared TD errors

  static Pass input_grad(float* dx, int64_t in_start) {  // Q and d Q / d x[:, in_start:], no weight gradients
    Pass p;
    p.unit_dq = true, p.dx = dx, p.in_start = in_start;
    return p;
  }
};

// One member: forward; with a Pass that has a dQ, backward (and the optimizer step).
// The last hidden layer's LayerNorm, the output layer, dQ and that LayerNorm's backward are done row by
// row, so that layer's activations are never stored.
void member_pass(const Net& n, const at::TensorList& p, int64_t e, const float* x, int64_t B, Scratch& s,
                 float* q_out, const Pass& ps) {
  const int64_t L = n.layers;
  const bool backward = ps.y != nullptr || ps.unit_dq;
  const bool wgrad = ps.opt != nullptr;
  const float* inp = x;
  int64_t in = n.in0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = n.width[l];
    const float* W = member_ptr(p[4 * l], e);
    const float* bias = member_ptr(p[4 * l + 1], e);
    const float* g = member_ptr(p[4 * l + 2], e);
    const float* be = member_ptr(p[4 * l + 3], e);
    const bool last = l == L - 1;
    float* h = last ? s.buf0.data() : s.xhat[l].data();
    gemm(false, false, B, H, in, inp, in, W, H, 0.0f, h, H);  // + bias in the LayerNorm's first pass
    if (!last) {
      float* r = s.relu[l].data();
      ln_relu_forward_rows(h, r, s.rstd[l].data(), bias, g, be, B, H);
      inp = r;
      in = H;
      continue;
    }
    const float* Wo = member_ptr(p[4 * L], e);
    const float bo = member_ptr(p[4 * L + 1], e)[0];
    float* xh = s.row.data();
    float* r = xh + H;
    float* dwo = s.dwo.data();
    float* dg = s.dsmall[l].data();
    float* dbe = dg + H;
    float* db = dg + 2 * H;
    if (wgrad) std::fill(dwo, dwo + H + 1, 0.f), std::fill(dg, dg + 3 * H, 0.f);
    double sq = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      float* row = h + b * H;
      float mean, rstd;
      row_stats(row, bias, H, mean, rstd);
      float q = 0.f;
#pragma omp simd reduction(+ : q)
      for (int64_t j = 0; j < H; ++j) {
        const float xv = (row[j] - mean) * rstd;
        xh[j] = xv;
        const float v = xv * g[j] + be[j];
        const float rv = v > 0.f ? v : 0.f;
        r[j] = rv;
        q += rv * Wo[j];
      }
      q += bo;
      q_out[b] = q;
      if (!backward) continue;
      float dq = 1.0f;
      if (ps.y) {
        const float d = q - ps.y[b];
        sq += (double)d * d;
        dq = ps.scale * d;
      }
      if (wgrad) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) dwo[j] += dq * r[j];
        dwo[H] += dq;
      }
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) row[j] = dq * Wo[j];
      ln_relu_backward_row(row, xh, r, g, rstd, H, wgrad ? dg : nullptr, dbe, wgrad ? db : nullptr);
    }
    if (ps.sq) *ps.sq = sq;
  }
  if (!backward) return;
  // h = buf0 holds d pre-LN of the last hidden layer; walk down the layers
  float* dh = s.buf0.data();
  float* other = s.buf1.data();
  for (int64_t l = L - 1; l >= 0; --l) {
    const int64_t H = n.width[l];
    const int64_t lin = l == 0 ? n.in0 : n.width[l - 1];
    const float* W = member_ptr(p[4 * l], e);
    if (wgrad) {
      const float* lin_x = l == 0 ? x : s.relu[l - 1].data();
      gemm(true, false, lin, H, B, lin_x, lin, dh, H, 0.0f, s.dw[l].data(), H);
    }
    if (l > 0) {
      gemm(false, true, B, lin, H, dh, H, W, H, 0.0f, other, lin);  // d input of layer l (W still old)
      const float* xh = s.xhat[l - 1].data();
      const float* r = s.relu[l - 1].data();
      const float* rs = s.rstd[l - 1].data();
      const float* g = member_ptr(p[4 * (l - 1) + 2], e);
      float* dg = s.dsmall[l - 1].data();
      if (wgrad) std::fill(dg, dg + 3 * lin, 0.f);
      for (int64_t b = 0; b < B; ++b)
        ln_relu_backward_row(other + b * lin, xh + b * lin, r + b * lin, g, rs[b], lin, wgrad ? dg : nullptr,
                             dg + lin, wgrad ? dg + 2 * lin : nullptr);
      std::swap(dh, other);
    } else if (ps.dx) {
      const int64_t k = n.in0 - ps.in_start;
      gemm(false, true, B, k, H, dh, H, W + ps.in_start * H, H, 0.0f, ps.dx, k);
    }
  }
  if (!wgrad) return;
  // the optimizer last: it streams the parameters and their Adam state through the cache
  auto step = [&](int64_t idx, const float* grad, int64_t count) {
    adam_slice(member_mut(p[idx], e), member_mut(ps.opt->m[idx], e), member_mut(ps.opt->v[idx], e),
               member_mut(ps.opt->target[idx], e), grad, count, ps.opt->args);
  };
  const int64_t HL = n.width[L - 1];
  step(4 * L, s.dwo.data(), HL);
  step(4 * L + 1, s.dwo.data() + HL, 1);
  int64_t in_l = n.in0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = n.width[l];
    const float* dg = s.dsmall[l].data();
    step(4 * l, s.dw[l].data(), in_l * H);
    step(4 * l + 1, dg + 2 * H, H);
    step(4 * l + 2, dg, H);
    step(4 * l + 3, dg + H, H);
    in_l = H;
  }
}

void check_input(const at::Tensor& x, const Net& n, const char* what) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && x.device().is_cpu(), what,
              " must be a contiguous float32 (B, in) CPU tensor, got ", x.sizes());
  TORCH_CHECK(x.size(1) == n.in0, what, " has ", x.size(1), " features, the ensemble takes ", n.in0);
}

}  // namespace

// Q of the members listed in `members`: (len(members), B).
at::Tensor ensemble_forward(const at::Tensor& x, at::TensorList params, const at::Tensor& members) {
  const int64_t E = params[0].size(0);
  Net n = check_params(params, E);
  check_input(x, n, "ensemble input");
  auto idx = members.to(at::kLong).contiguous();
  const int64_t k = idx.numel();
  const int64_t* ids = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < k; ++i) TORCH_CHECK(ids[i] >= 0 && ids[i] < E, "member index ", ids[i], " out of range");
  const int64_t B = x.size(0);
  auto q = at::empty({k, B}, x.options());
  const float* xp = x.data_ptr<float>();
  float* qp = q.data_ptr<float>();
  at::parallel_for(0, k, 1, [&](int64_t lo, int64_t hi) {
    Scratch& s = scratch();
    s.ensure(n, B);
    for (int64_t i = lo; i < hi; ++i) member_pass(n, params, ids[i], xp, B, s, qp + i * B, Pass{});
  });
  return q;
}

// Q of every member and d Q_e / d x[:, in_start:] (the actor's path through the critic): (E, B), (E, B, k).
std::tuple<at::Tensor, at::Tensor> ensemble_q_input_grad(const at::Tensor& x, at::TensorList params,
                                                         int64_t in_start) {
  const int64_t E = params[0].size(0);
  Net n = check_params(params, E);
  check_input(x, n, "ensemble input");
  TORCH_CHECK(in_start >= 0 && in_start < n.in0, "in_start out of range");
  const int64_t B = x.size(0), k = n.in0 - in_start;
  auto q = at::empty({E, B}, x.options());
  auto dx = at::empty({E, B, k}, x.options());
  const float* xp = x.data_ptr<float>();
  at::parallel_for(0, E, 1, [&](int64_t lo, int64_t hi) {
    Scratch& s = scratch();
    s.ensure(n, B);
    for (int64_t e = lo; e < hi; ++e)
      member_pass(n, params, e, xp, B, s, q.data_ptr<float>() + e * B,
                  Pass::input_grad(dx.data_ptr<float>() + e * B * k, in_start));
  });
  return {q, dx};
}

// One critic step: Q, loss = mean (Q - y)^2 over members and batch, its gradient, Adam on every
// member's parameters and Polyak into the target. Returns (loss, Q before the step).
std::tuple<at::Tensor, at::Tensor> ensemble_critic_step(const at::Tensor& x, const at::Tensor& y, at::TensorList params,
                                                        at::TensorList exp_avg, at::TensorList exp_avg_sq,
                                                        at::TensorList target, const at::Tensor& step, double lr,
                                                        double beta1, double beta2, double eps, double tau) {
  auto out = ensemble_critic_step_then_q_input_grad(x, y, params, exp_avg, exp_avg_sq, target, step, lr, beta1, beta2,
                                                    eps, tau, nullptr, 0);
  return {std::get<0>(out), std::get<1>(out)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ensemble_critic_step_then_q_input_grad(
    const at::Tensor& x, const at::Tensor& y, at::TensorList params, at::TensorList exp_avg, at::TensorList exp_avg_sq,
    at::TensorList target, const at::Tensor& step, double lr, double beta1, double beta2, double eps, double tau,
    const at::Tensor* x_after, int64_t in_start) {
  const int64_t E = params[0].size(0);
  Net n = check_params(params, E);
  check_input(x, n, "ensemble input");
  const int64_t B = x.size(0);
  TORCH_CHECK(y.dim() == 1 && y.size(0) == B && y.scalar_type() == at::kFloat && y.is_contiguous(),
              "TD target must be a contiguous float32 (B,) tensor");
  TORCH_CHECK(exp_avg.size() == params.size() && exp_avg_sq.size() == params.size() && target.size() == params.size(),
              "optimizer state and target lists must match the parameter list");
  for (size_t i = 0; i < params.size(); ++i)
    for (const auto* t : {&exp_avg[i], &exp_avg_sq[i], &target[i]})
      TORCH_CHECK(t->sizes() == params[i].sizes() && t->is_contiguous() && t->scalar_type() == at::kFloat,
                  "optimizer state / target ", i, " must match its parameter");
  if (x_after) {
    check_input(*x_after, n, "ensemble input (after the step)");
    TORCH_CHECK(x_after->size(0) == B && in_start >= 0 && in_start < n.in0, "bad input for the post-step pass");
  }
  TORCH_CHECK(step.numel() == 1 && step.scalar_type() == at::kFloat, "the Adam step counter must be a float32 scalar");
  const double st = *step.data_ptr<float>();  // already incremented for this step, as torch.optim.Adam does
  Optim opt{exp_avg, exp_avg_sq, target, adam_args(lr, beta1, beta2, eps, tau, st)};
  const int64_t k = n.in0 - in_start;
  at::Tensor q_after, dx_after;
  if (x_after) q_after = at::empty({E, B}, x.options()), dx_after = at::empty({E, B, k}, x.options());
  auto q = at::empty({E, B}, x.options());
  std::vector<double> sq(E, 0.0);
  const float* xp = x.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  const float scale = 2.0f / (float)(E * B);
  at::parallel_for(0, E, 1, [&](int64_t lo, int64_t hi) {
    Scratch& s = scratch();
    s.ensure(n, B);
    for (int64_t e = lo; e < hi; ++e) {
      Pass ps;
      ps.y = yp;
      ps.scale = scale;
      ps.opt = &opt;
      ps.sq = sq.data() + e;
      member_pass(n, params, e, xp, B, s, q.data_ptr<float>() + e * B, ps);
      if (x_after)  // the updated member right away, while its weights are still in this core's cache
        member_pass(n, params, e, x_after->data_ptr<float>(), B, s, q_after.data_ptr<float>() + e * B,
                    Pass::input_grad(dx_after.data_ptr<float>() + e * B * k, in_start));
    }
  });
  double sq_sum = 0.0;
  for (double v : sq) sq_sum += v;
  auto loss = at::empty({}, x.options());
  *loss.data_ptr<float>() = (float)(sq_sum / (double)(E * B));
  return {loss, q, q_after, dx_after};
}

// The critic step, then each member's Q and dQ/da at `x_after` (the actor's actions) as soon as that
// member is updated, while its weights are still in this core's cache: the actor loss's critic pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ensemble_critic_step_q(
    const at::Tensor& x, const at::Tensor& y, at::TensorList params, at::TensorList exp_avg, at::TensorList exp_avg_sq,
    at::TensorList target, const at::Tensor& step, double lr, double beta1, double beta2, double eps, double tau,
    const at::Tensor& x_after, int64_t in_start) {
  return ensemble_critic_step_then_q_input_grad(x, y, params, exp_avg, exp_avg_sq, target, step, lr, beta1, beta2,
                                                eps, tau, &x_after, in_start);
}

}  // namespace robolearn

TORCH_LIBRARY(robolearn_rl, m) {
  m.def("forward(Tensor x, Tensor[] params, Tensor members) -> Tensor");
  m.def("q_input_grad(Tensor x, Tensor[] params, int in_start) -> (Tensor, Tensor)");
  m.def("critic_step(Tensor x, Tensor y, Tensor(a!)[] params, Tensor(b!)[] exp_avg, Tensor(c!)[] exp_avg_sq, "
        "Tensor(d!)[] target, Tensor step, float lr, float beta1, float beta2, float eps, float tau) -> (Tensor, Tensor)");
  m.def("critic_step_q(Tensor x, Tensor y, Tensor(a!)[] params, Tensor(b!)[] exp_avg, Tensor(c!)[] exp_avg_sq, "
        "Tensor(d!)[] target, Tensor step, float lr, float beta1, float beta2, float eps, float tau, Tensor x_after, "
        "int in_start) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(robolearn_rl, CPU, m) {
  m.impl("forward", &robolearn::ensemble_forward);
  m.impl("q_input_grad", &robolearn::ensemble_q_input_grad);
  m.impl("critic_step", &robolearn::ensemble_critic_step);
  m.impl("critic_step_q", &robolearn::ensemble_critic_step_q);
}
