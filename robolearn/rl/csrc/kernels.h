// Building blocks shared by the native learner operators: row-major GEMM on the calling thread,
// LayerNorm row kernels, torch.optim.Adam on a flat slice.
#pragma once

#include <cmath>
#include <cstdint>

// The Fortran BLAS entry point; PyTorch's x86 Linux wheels export MKL's (this file is compiled on first
// use, and the learner falls back to the inductor-compiled update where it is missing).
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace robolearn {

constexpr float kLnEps = 1e-5f;  // F.layer_norm's default

// Row-major C[M,N] = op(A)[M,K] op(B)[K,N] + beta * C (BLAS is column-major: compute C^T = B^T A^T).
// Called from inside a parallel region, the BLAS runs on the calling thread only.
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const char a = tb ? 'T' : 'N', b = ta ? 'T' : 'N';
  const int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
  const float one = 1.0f;
  sgemm_(&a, &b, &m, &n, &k, &one, B, &la, A, &lb, &beta, C, &lc);
}

// Adds the bias to one row of pre-activations and returns its LayerNorm statistics (mean, 1 / std).
inline void row_stats(float* __restrict h, const float* __restrict bias, int64_t H, float& mean, float& rstd) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < H; ++j) {
    const float v = h[j] + bias[j];
    h[j] = v;
    sum += v;
  }
  mean = sum / H;
  float var = 0.f;
#pragma omp simd reduction(+ : var)
  for (int64_t j = 0; j < H; ++j) var += (h[j] - mean) * (h[j] - mean);
  rstd = 1.0f / std::sqrt(var / H + kLnEps);
}

// Bias + LayerNorm + affine + ReLU forward of `rows` rows of pre-activations `h` (overwritten with the
// normalized values, which the backward needs), ReLU output in `r`, 1 / std per row in `rstd`.
inline void ln_relu_forward_rows(float* h, float* r, float* rstd_out, const float* bias, const float* g,
                                 const float* be, int64_t rows, int64_t H) {
  for (int64_t b = 0; b < rows; ++b) {
    float* row = h + b * H;
    float* rrow = r + b * H;
    float mean, rstd;
    row_stats(row, bias, H, mean, rstd);
    rstd_out[b] = rstd;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const float xh = (row[j] - mean) * rstd;
      row[j] = xh;
      const float v = xh * g[j] + be[j];
      rrow[j] = v > 0.f ? v : 0.f;
    }
  }
}

// LayerNorm + ReLU backward of one row, given d relu-output in `dh` (overwritten with d pre-LN).
// With `dg`/`dbe`/`db`, accumulates the affine and bias gradients.
inline void ln_relu_backward_row(float* dh, const float* xh, const float* r, const float* g, float rstd, int64_t H,
                                 float* dg, float* dbe, float* db) {
  float s1 = 0.f, s2 = 0.f;
  if (dg) {
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < H; ++j) {
      const float dn = r[j] > 0.f ? dh[j] : 0.f;
      dg[j] += dn * xh[j];
      dbe[j] += dn;
      const float dxh = dn * g[j];
      dh[j] = dxh;
      s1 += dxh;
      s2 += dxh * xh[j];
    }
  } else {
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < H; ++j) {
      const float dxh = r[j] > 0.f ? dh[j] * g[j] : 0.f;
      dh[j] = dxh;
      s1 += dxh;
      s2 += dxh * xh[j];
    }
  }
  const float m1 = s1 / H, m2 = s2 / H;
  if (db) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const float v = rstd * (dh[j] - m1 - xh[j] * m2);
      dh[j] = v;
      db[j] += v;
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) dh[j] = rstd * (dh[j] - m1 - xh[j] * m2);
  }
}

struct AdamArgs {
  float lr, beta1, beta2, eps, tau, step_size, bc2_sqrt;
};

// torch.optim.Adam (no weight decay) on a flat slice, then (with `tgt`) Polyak into the target copy.
template <bool kPolyak>
inline void adam_loop(float* __restrict p, float* __restrict m, float* __restrict v, float* __restrict tgt,
                      const float* __restrict g, int64_t count, const AdamArgs& a) {
  const float w1 = 1.0f - a.beta1, w2 = 1.0f - a.beta2, b2 = a.beta2, step_size = a.step_size;
  const float inv_bc2 = 1.0f / a.bc2_sqrt, eps = a.eps, tau = a.tau;
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    const float gi = g[i];
    const float mi = m[i] + w1 * (gi - m[i]);
    const float vi = b2 * v[i] + w2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] - step_size * (mi / (std::sqrt(vi) * inv_bc2 + eps));
    p[i] = pi;
    if constexpr (kPolyak) tgt[i] = tgt[i] + tau * (pi - tgt[i]);
  }
}

inline void adam_slice(float* p, float* m, float* v, float* tgt, const float* g, int64_t count, const AdamArgs& a) {
  if (tgt)
    adam_loop<true>(p, m, v, tgt, g, count, a);
  else
    adam_loop<false>(p, m, v, nullptr, g, count, a);
}

// Adam's step size and bias correction for step number `step` (already incremented).
inline AdamArgs adam_args(double lr, double beta1, double beta2, double eps, double tau, double step) {
  AdamArgs a;
  a.lr = (float)lr, a.beta1 = (float)beta1, a.beta2 = (float)beta2, a.eps = (float)eps, a.tau = (float)tau;
  a.step_size = (float)(lr / (1.0 - std::pow(beta1, step)));
  a.bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, step));
  return a;
}

}  // namespace robolearn
