// rnnkit's fused recurrent engine for CPU: the recurrence of a gated cell over a whole sequence,
// forward and hand-derived backpropagation through time, in one C++ call each.
//
// Per time step the engine does one GEMM (W_hh h) and one fused pointwise pass over the gates;
// everything that does not depend on the previous step (the input projection, the weight and input
// gradients) is left to single GEMMs over all steps. A cell is a struct with two row functions:
//
//   forward<kTrain>(H, gx, gh, h, c, h_new, c_new, saved, p)
//   backward(H, g, gc, h, c, h_new, c_new, saved, dgx, dgh, dh_direct, dc, p)
//
// gx = W_ih x + b and gh = W_hh h (+ b_hh) are the gate pre-activations from the input and the state;
// h is the output state and c the cell's extra state ((kStates - 1) * H values, e.g. the LSTM's cell
// state; unused when kStates == 1). c_new may alias c and dc may alias gc: cells update them element
// by element. p is the cell's own per-unit parameters (the peephole LSTM's w_ci, w_cf, w_co; null
// for cells without), whose gradient the engine sums over all steps after the loop. In backward, g = dL/dh_new and gc = dL/dc_new; the cell writes dL/dgx, dL/dgh, the part
// of dL/dh that does not flow through W_hh (the engine adds dgh W_hh) and dL/dc. See docs/engine.md.
//
// The recurrent regularisers reach the loops as two optional buffers, drawn in PyTorch
// (rnnkit.loop.draw_masks) so that the random stream is PyTorch's and equal to the reference loop's:
//   rmask (batch, H): variational recurrent dropout, already scaled; W_hh reads h ⊙ rmask at every step
//     (the cell's own use of h, e.g. the GRU's z ⊙ h, reads the unmasked h).
//   zone (steps, batch, H + E), or one value: zoneout; after the cell's step each unit of (h', c') moves
//     back towards its old value, x = lerp(x_new, x_old, w) with w ∈ {0, 1} in training (the mask) and
//     w = p in evaluation (the expectation). Backward splits the gradient of x between x_new (1 - w)
//     and x_old (w).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;

// Elementwise math. The float versions are written so that gcc vectorises the row loops: exp is a
// Cephes-style range reduction plus polynomial (about 1 ulp), with no calls into libm. The row loops
// carry `#pragma GCC ivdep`: their pointers never overlap within a row except Elman's dgx/dgh, which
// receive the same value at the same index.
template <typename T>
struct Math;

template <>
struct Math<float> {
  static inline float exp(float x) {
    x = x < -87.0f ? -87.0f : x;  // ternaries, not fmin/fmax, so that the loop vectorises
    x = x > 88.0f ? 88.0f : x;
    const float k = std::floor(x * 1.44269504088896341f + 0.5f);
    const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
  }
  static inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
  static inline float tanh(float x) { return 1.0f - 2.0f / (exp(2.0f * x) + 1.0f); }
};

template <>
struct Math<double> {
  static inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
  static inline double tanh(double x) { return std::tanh(x); }
};

// x_new ← lerp(x_new, x_old, w), torch.lerp's formula (exact at w = 0 and w = 1, like the reference's
// torch.where in training).
template <typename T>
inline void zone_out(int64_t n, T* now, const T* old, const T* w) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) {
    const T d = old[j] - now[j];
    now[j] = w[j] < T(0.5) ? now[j] + w[j] * d : old[j] - d * (T(1) - w[j]);
  }
}

// Layer-norm statistics of one row of n values: the mean and 1/sqrt(biased variance + ε).
constexpr double kLayerNormEps = 1e-5;  // torch.nn.LayerNorm's, rnnkit.variants.layernorm.EPS

template <typename T>
inline T mean_of(int64_t n, const T* v) {
  T mean = T(0);
  for (int64_t j = 0; j < n; ++j) mean += v[j];
  return mean / T(n);
}

template <typename T>
inline T inverse_std(int64_t n, const T* v) {
  const T mean = mean_of(n, v);
  T var = T(0);
  for (int64_t j = 0; j < n; ++j) var += (v[j] - mean) * (v[j] - mean);
  return T(1) / std::sqrt(var / T(n) + T(kLayerNormEps));
}

// d ← dL/dv of normed = (v - μ) / σ, given d = dL/dnormed, the saved normed row and 1/σ.
template <typename T>
inline void layer_norm_backward(int64_t n, const T* normed, T rstd, T* d) {
  T mean_d = T(0), mean_dn = T(0);
  for (int64_t j = 0; j < n; ++j) {
    mean_d += d[j];
    mean_dn += d[j] * normed[j];
  }
  mean_d /= T(n);
  mean_dn /= T(n);
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) d[j] = rstd * (d[j] - mean_d - normed[j] * mean_dn);
}

// The regulariser buffers of one call, as raw pointers (null when absent).
template <typename T>
struct Masks {
  const T* rmask = nullptr;  // (batch, H)
  const T* zone = nullptr;   // (steps, batch, W) or, with zone_stride 0, one row of W copies of p
  int64_t zone_stride = 0;   // W when zone holds a row per step and batch row, else 0
  Tensor zone_row;           // the broadcast row of p, when evaluation's expectation is given as one value

  Masks(const c10::optional<Tensor>& rmask_opt, const c10::optional<Tensor>& zone_opt, int64_t width) {
    if (rmask_opt.has_value() && rmask_opt->defined()) rmask = rmask_opt->data_ptr<T>();
    if (zone_opt.has_value() && zone_opt->defined()) {
      if (zone_opt->numel() == 1) {
        zone_row = at::full({width}, zone_opt->item<double>(), zone_opt->options());
        zone = zone_row.data_ptr<T>();
      } else {
        zone = zone_opt->data_ptr<T>();
        zone_stride = width;
      }
    }
  }
  const T* zone_at(int64_t t, int64_t batch, int64_t b) const { return zone + (t * batch + b) * zone_stride; }
};

// Elman: h' = act(gx + gh), with both biases folded into gx by the caller.
template <typename T, bool kRelu>
struct Elman {
  static constexpr int kGates = 1;
  static constexpr int kSaved = 0;
  static constexpr int kSharedGrad = 1;  // leading gate blocks where dgh == dgx
  static constexpr int kStates = 1;
  static constexpr int kParams = 0;  // blocks of H in the cell's own parameter vector p

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T pre = gx[j] + gh[j];
      h_new[j] = kRelu ? (pre > T(0) ? pre : T(0)) : Math<T>::tanh(pre);
    }
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc,
                              const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T d = kRelu ? (h_new[j] > T(0) ? g[j] : T(0)) : g[j] * (T(1) - h_new[j] * h_new[j]);
      dgx[j] = d;
      dgh[j] = d;
      dh_direct[j] = T(0);
    }
  }
};

// GRU (torch.nn / cuDNN form, gate order r, z, n):
//   r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r ⊙ gh_n), h' = (1 - z) ⊙ n + z ⊙ h
// Saved per step: r, z, n and gh_n (= W_hn h + b_hn, needed for dL/dr).
template <typename T>
struct GRU {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 4;
  static constexpr int kSharedGrad = 2;  // dgh_r == dgx_r and dgh_z == dgx_z; dgh_n = r ⊙ dgx_n
  static constexpr int kStates = 1;
  static constexpr int kParams = 0;  // blocks of H in the cell's own parameter vector p

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T r = Math<T>::sigmoid(gx[j] + gh[j]);
      const T z = Math<T>::sigmoid(gx[H + j] + gh[H + j]);
      const T n = Math<T>::tanh(gx[2 * H + j] + r * gh[2 * H + j]);
      h_new[j] = n + z * (h[j] - n);
      if constexpr (kTrain) {
        saved[j] = r;
        saved[H + j] = z;
        saved[2 * H + j] = n;
        saved[3 * H + j] = gh[2 * H + j];
      }
    }
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc,
                              const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T r = saved[j], z = saved[H + j], n = saved[2 * H + j], gh_n = saved[3 * H + j];
      const T dn = g[j] * (T(1) - z) * (T(1) - n * n);
      const T dz = g[j] * (h[j] - n) * z * (T(1) - z);
      const T dr = dn * gh_n * r * (T(1) - r);
      dgx[j] = dr;
      dgx[H + j] = dz;
      dgx[2 * H + j] = dn;
      dgh[j] = dr;
      dgh[H + j] = dz;
      dgh[2 * H + j] = dn * r;
      dh_direct[j] = g[j] * z;
    }
  }
};

// LSTM (gate order i, f, g, o; b_hh folded into gx by the caller):
//   c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),  h' = σ(o) ⊙ tanh(c')
// Saved per step: the four activated gates and tanh(c'); c' itself is the engine's state history.
template <typename T>
struct LSTM {
  static constexpr int kGates = 4;
  static constexpr int kSaved = 5;
  static constexpr int kSharedGrad = 4;
  static constexpr int kStates = 2;
  static constexpr int kParams = 0;

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T i = Math<T>::sigmoid(gx[j] + gh[j]);
      const T f = Math<T>::sigmoid(gx[H + j] + gh[H + j]);
      const T g = Math<T>::tanh(gx[2 * H + j] + gh[2 * H + j]);
      const T o = Math<T>::sigmoid(gx[3 * H + j] + gh[3 * H + j]);
      const T cell = f * c[j] + i * g;
      const T tanh_cell = Math<T>::tanh(cell);
      c_new[j] = cell;
      h_new[j] = o * tanh_cell;
      if constexpr (kTrain) {
        saved[j] = i;
        saved[H + j] = f;
        saved[2 * H + j] = g;
        saved[3 * H + j] = o;
        saved[4 * H + j] = tanh_cell;
      }
    }
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc,
                              const T* /*p*/) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T i = saved[j], f = saved[H + j], gate = saved[2 * H + j], o = saved[3 * H + j];
      const T tanh_cell = saved[4 * H + j];
      const T d_cell = gc[j] + g[j] * o * (T(1) - tanh_cell * tanh_cell);
      const T di = d_cell * gate * i * (T(1) - i);
      const T df = d_cell * c[j] * f * (T(1) - f);
      const T dg = d_cell * i * (T(1) - gate * gate);
      const T d_o = g[j] * tanh_cell * o * (T(1) - o);
      dgx[j] = di;
      dgx[H + j] = df;
      dgx[2 * H + j] = dg;
      dgx[3 * H + j] = d_o;
      dgh[j] = di;
      dgh[H + j] = df;
      dgh[2 * H + j] = dg;
      dgh[3 * H + j] = d_o;
      dh_direct[j] = T(0);
      dc[j] = d_cell * f;
    }
  }
};

// Peephole LSTM (Gers & Schmidhuber 2000; gate order i, f, g, o; b_hh folded into gx), p = [w_ci | w_cf | w_co]:
//   i = σ(a_i + w_ci ⊙ c), f = σ(a_f + w_cf ⊙ c), g = tanh(a_g), c' = f ⊙ c + i ⊙ g,
//   o = σ(a_o + w_co ⊙ c'), h' = o ⊙ tanh(c')
// Saved per step: the four activated gates and c' (before zoneout: the output gate reads it); backward
// recomputes tanh(c'), so the engine keeps no more per step than the reference loop.
template <typename T>
struct PeepholeLSTM {
  static constexpr int kGates = 4;
  static constexpr int kSaved = 5;
  static constexpr int kSharedGrad = 4;
  static constexpr int kStates = 2;
  static constexpr int kParams = 3;

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* p) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T c_old = c[j];
      const T i = Math<T>::sigmoid(gx[j] + gh[j] + p[j] * c_old);
      const T f = Math<T>::sigmoid(gx[H + j] + gh[H + j] + p[H + j] * c_old);
      const T g = Math<T>::tanh(gx[2 * H + j] + gh[2 * H + j]);
      const T cell = f * c_old + i * g;
      const T o = Math<T>::sigmoid(gx[3 * H + j] + gh[3 * H + j] + p[2 * H + j] * cell);
      const T tanh_cell = Math<T>::tanh(cell);
      c_new[j] = cell;
      h_new[j] = o * tanh_cell;
      if constexpr (kTrain) {
        saved[j] = i;
        saved[H + j] = f;
        saved[2 * H + j] = g;
        saved[3 * H + j] = o;
        saved[4 * H + j] = cell;
      }
    }
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc,
                              const T* p) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T i = saved[j], f = saved[H + j], gate = saved[2 * H + j], o = saved[3 * H + j];
      const T tanh_cell = Math<T>::tanh(saved[4 * H + j]);
      const T d_o = g[j] * tanh_cell * o * (T(1) - o);
      const T d_cell = gc[j] + g[j] * o * (T(1) - tanh_cell * tanh_cell) + d_o * p[2 * H + j];
      const T di = d_cell * gate * i * (T(1) - i);
      const T df = d_cell * c[j] * f * (T(1) - f);
      const T dg = d_cell * i * (T(1) - gate * gate);
      dgx[j] = di;
      dgx[H + j] = df;
      dgx[2 * H + j] = dg;
      dgx[3 * H + j] = d_o;
      dgh[j] = di;
      dgh[H + j] = df;
      dgh[2 * H + j] = dg;
      dgh[3 * H + j] = d_o;
      dh_direct[j] = T(0);
      dc[j] = d_cell * f + di * p[j] + df * p[H + j];
    }
  }

  // dw_ci = Σ di ⊙ c_{t-1}, dw_cf = Σ df ⊙ c_{t-1}, dw_co = Σ do ⊙ c'_t (saved block 4)
  static Tensor param_grads(const Tensor& dgx, const Tensor& c_prev, const Tensor& saved, int64_t H) {
    return at::cat({(dgx.slice(2, 0, H) * c_prev).sum({0, 1}), (dgx.slice(2, H, 2 * H) * c_prev).sum({0, 1}),
                    (dgx.slice(2, 3 * H, 4 * H) * saved.slice(2, 4 * H, 5 * H)).sum({0, 1})});
  }
};

// Layer-normalised GRU (rk.LayerNormGRUCell; gate order r, z, n), p = [γ | β | b_hh] (3H each):
//   a = γ ⊙ LN(gh) + β + b_hh with LN over the 3H units of the raw gh = W_hh h (the caller's GEMM has
//   no bias), r = σ(gx_r + a_r), z = σ(gx_z + a_z), n = tanh(gx_n + r ⊙ a_n), h' = (1 - z) ⊙ n + z ⊙ h.
// gx = LN(W_ih x; γ_ih, β_ih) + b_ih comes from the cell's input projection. Saved per step: r, z, n,
// a_n, the normalised gh (3H) and 1/σ (one value after the blocks). dgh is dL/d(raw gh), through the layer norm.
template <typename T>
struct LayerNormGRU {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 7;
  static constexpr int kRowScalars = 1;  // 1/σ of gh
  static constexpr int kSharedGrad = 0;
  static constexpr int kStates = 1;
  static constexpr int kParams = 9;

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* p) {
    const int64_t G = 3 * H;
    const T mean = mean_of(G, gh);
    const T rstd = inverse_std(G, gh);
    const T* gamma = p;
    const T* beta = p + G;
    const T* bias = p + 2 * G;
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T nr = (gh[j] - mean) * rstd, nz = (gh[H + j] - mean) * rstd, nn = (gh[2 * H + j] - mean) * rstd;
      const T ar = gamma[j] * nr + beta[j] + bias[j];
      const T az = gamma[H + j] * nz + beta[H + j] + bias[H + j];
      const T an = gamma[2 * H + j] * nn + beta[2 * H + j] + bias[2 * H + j];
      const T r = Math<T>::sigmoid(gx[j] + ar);
      const T z = Math<T>::sigmoid(gx[H + j] + az);
      const T n = Math<T>::tanh(gx[2 * H + j] + r * an);
      h_new[j] = n + z * (h[j] - n);
      if constexpr (kTrain) {
        saved[j] = r;
        saved[H + j] = z;
        saved[2 * H + j] = n;
        saved[3 * H + j] = an;
        saved[4 * H + j] = nr;
        saved[5 * H + j] = nz;
        saved[6 * H + j] = nn;
      }
    }
    if constexpr (kTrain) saved[7 * H] = rstd;
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc,
                              const T* p) {
    const int64_t G = 3 * H;
    const T* gamma = p;
    const T* normed = saved + 4 * H;
    const T rstd = saved[7 * H];
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T r = saved[j], z = saved[H + j], n = saved[2 * H + j], an = saved[3 * H + j];
      const T dn = g[j] * (T(1) - z) * (T(1) - n * n);
      const T dz = g[j] * (h[j] - n) * z * (T(1) - z);
      const T dr = dn * an * r * (T(1) - r);
      dgx[j] = dr;
      dgx[H + j] = dz;
      dgx[2 * H + j] = dn;
      dgh[j] = gamma[j] * dr;  // γ ⊙ dL/da, turned into dL/d(raw gh) below
      dgh[H + j] = gamma[H + j] * dz;
      dgh[2 * H + j] = gamma[2 * H + j] * dn * r;
      dh_direct[j] = g[j] * z;
    }
    layer_norm_backward(G, normed, rstd, dgh);
  }

  // dγ = Σ dL/da ⊙ LN(gh), dβ = db_hh = Σ dL/da, with dL/da = [dr, dz, dn ⊙ r]
  static Tensor param_grads(const Tensor& dgx, const Tensor& c_prev, const Tensor& saved, int64_t H) {
    const Tensor da = at::cat({dgx.slice(2, 0, 2 * H), dgx.slice(2, 2 * H, 3 * H) * saved.slice(2, 0, H)}, 2);
    const Tensor summed = da.sum({0, 1});
    return at::cat({(da * saved.slice(2, 4 * H, 7 * H)).sum({0, 1}), summed, summed});
  }
};

// Layer-normalised LSTM (rk.LayerNormLSTMCell; gate order i, f, g, o; b_ih + b_hh folded into gx),
// p = [γ_hh | β_hh (4H each) | γ_c | β_c (H each)]:
//   a = gx + γ_hh ⊙ LN(gh) + β_hh with LN over the 4H units of the raw gh = W_hh h,
//   c' = σ(a_f) ⊙ c + σ(a_i) ⊙ tanh(a_g),  h' = σ(a_o) ⊙ tanh(y),  y = γ_c ⊙ LN(c') + β_c (LN over H).
// Saved per step: the four activated gates, LN(gh) (4H) and LN(c'), then 1/σ of gh and of c' (two values
// after the blocks); backward recomputes tanh(y), so the engine keeps no more than the reference loop.
// Backward also writes dL/dy per step (kRowGrads blocks), from which the engine sums the c-norm's
// parameter gradients; dgh is dL/d(raw gh), through the layer norm.
template <typename T>
struct LayerNormLSTM {
  static constexpr int kGates = 4;
  static constexpr int kSaved = 9;
  static constexpr int kRowScalars = 2;  // 1/σ of gh, 1/σ of c'
  static constexpr int kSharedGrad = 0;
  static constexpr int kStates = 2;
  static constexpr int kParams = 10;
  static constexpr int kRowGrads = 1;  // blocks of H per step handed from backward to param_grads

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, const T* c, T* h_new, T* c_new,
                             T* saved, const T* p) {
    const int64_t G = 4 * H;
    const T rstd = inverse_std(G, gh);
    const T mean = mean_of(G, gh);
    const T *gamma = p, *beta = p + G, *gamma_c = p + 2 * G, *beta_c = p + 2 * G + H;
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T ni = (gh[j] - mean) * rstd, nf = (gh[H + j] - mean) * rstd;
      const T ng = (gh[2 * H + j] - mean) * rstd, no = (gh[3 * H + j] - mean) * rstd;
      const T i = Math<T>::sigmoid(gx[j] + gamma[j] * ni + beta[j]);
      const T f = Math<T>::sigmoid(gx[H + j] + gamma[H + j] * nf + beta[H + j]);
      const T g = Math<T>::tanh(gx[2 * H + j] + gamma[2 * H + j] * ng + beta[2 * H + j]);
      const T o = Math<T>::sigmoid(gx[3 * H + j] + gamma[3 * H + j] * no + beta[3 * H + j]);
      c_new[j] = f * c[j] + i * g;  // c_new may alias c: element j is read before it is written
      h_new[j] = o;                 // σ(a_o) until the second pass multiplies in tanh(y)
      if constexpr (kTrain) {
        saved[j] = i;
        saved[H + j] = f;
        saved[2 * H + j] = g;
        saved[3 * H + j] = o;
        saved[4 * H + j] = ni;
        saved[5 * H + j] = nf;
        saved[6 * H + j] = ng;
        saved[7 * H + j] = no;
      }
    }
    const T mean_c = mean_of(H, c_new);
    const T rstd_c = inverse_std(H, c_new);
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T nc = (c_new[j] - mean_c) * rstd_c;
      const T tanh_y = Math<T>::tanh(gamma_c[j] * nc + beta_c[j]);
      h_new[j] *= tanh_y;
      if constexpr (kTrain) saved[8 * H + j] = nc;
    }
    if constexpr (kTrain) {
      saved[9 * H] = rstd;
      saved[9 * H + 1] = rstd_c;
    }
  }

  static inline void backward(int64_t H, const T* g, const T* gc, const T* h, const T* c, const T* h_new,
                              const T* c_new, const T* saved, T* dgx, T* dgh, T* dh_direct, T* dc, const T* p,
                              T* d_y) {
    const int64_t G = 4 * H;
    const T *gamma = p, *gamma_c = p + 2 * G, *beta_c = p + 2 * G + H;
    const T* normed_c = saved + 8 * H;
    const T rstd_c = saved[9 * H + 1];
    T mean_s = T(0), mean_sn = T(0);  // over γ_c ⊙ dL/dy, for the backward of LN(c')
    for (int64_t j = 0; j < H; ++j) {
      const T tanh_y = Math<T>::tanh(gamma_c[j] * normed_c[j] + beta_c[j]);
      d_y[j] = g[j] * saved[3 * H + j] * (T(1) - tanh_y * tanh_y);
      mean_s += gamma_c[j] * d_y[j];
      mean_sn += gamma_c[j] * d_y[j] * normed_c[j];
    }
    mean_s /= T(H);
    mean_sn /= T(H);
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T i = saved[j], f = saved[H + j], gate = saved[2 * H + j], o = saved[3 * H + j];
      const T d_cell = gc[j] + rstd_c * (gamma_c[j] * d_y[j] - mean_s - normed_c[j] * mean_sn);
      const T tanh_y = Math<T>::tanh(gamma_c[j] * normed_c[j] + beta_c[j]);  // as in the first pass
      const T di = d_cell * gate * i * (T(1) - i);
      const T df = d_cell * c[j] * f * (T(1) - f);
      const T dg = d_cell * i * (T(1) - gate * gate);
      const T d_o = g[j] * tanh_y * o * (T(1) - o);
      dgx[j] = di;
      dgx[H + j] = df;
      dgx[2 * H + j] = dg;
      dgx[3 * H + j] = d_o;
      dgh[j] = gamma[j] * di;  // γ ⊙ dL/da, turned into dL/d(raw gh) below
      dgh[H + j] = gamma[H + j] * df;
      dgh[2 * H + j] = gamma[2 * H + j] * dg;
      dgh[3 * H + j] = gamma[3 * H + j] * d_o;
      dh_direct[j] = T(0);
      dc[j] = d_cell * f;  // dc may alias gc: element j was read above
    }
    layer_norm_backward(G, saved + 4 * H, saved[9 * H], dgh);
  }

  // dγ_hh = Σ dL/da ⊙ LN(gh), dβ_hh = Σ dL/da (= dgx), dγ_c = Σ dL/dy ⊙ LN(c'), dβ_c = Σ dL/dy
  static Tensor param_grads(const Tensor& dgx, const Tensor& c_prev, const Tensor& saved, int64_t H,
                            const Tensor& d_y) {
    return at::cat({(dgx * saved.slice(2, 4 * H, 8 * H)).sum({0, 1}), dgx.sum({0, 1}),
                    (d_y * saved.slice(2, 8 * H, 9 * H)).sum({0, 1}), d_y.sum({0, 1})});
  }
};

// Values per row saved after the kSaved blocks (Cell::kRowScalars, 0 if absent): per-row statistics such
// as a layer norm's 1/σ, which would waste a block of H each.
template <typename Cell, typename = void>
struct RowScalars {
  static constexpr int value = 0;
};
template <typename Cell>
struct RowScalars<Cell, std::void_t<decltype(Cell::kRowScalars)>> {
  static constexpr int value = Cell::kRowScalars;
};

// The width of one row of `saved`.
template <typename Cell>
inline int64_t saved_width(int64_t H) {
  return Cell::kSaved * H + RowScalars<Cell>::value;
}

// Blocks of H per step that a cell's backward hands to its param_grads (Cell::kRowGrads, 0 if absent).
template <typename Cell, typename = void>
struct RowGrads {
  static constexpr int value = 0;
};
template <typename Cell>
struct RowGrads<Cell, std::void_t<decltype(Cell::kRowGrads)>> {
  static constexpr int value = Cell::kRowGrads;
};

// MKL's packed GEMM (the BLAS behind PyTorch's x86 builds): the recurrent weight is reused at every
// step, so it is packed once per sequence. Declared weak and resolved at load time: on builds without
// MKL the pointers are null and the engine falls back to at::addmm.
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

bool mkl_packed_available() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// out = [bias | out] + a @ op(w) on raw row-major buffers, where op(w) is w or wᵀ and stays fixed for
// a whole sequence. Raw pointers keep the per-step cost to the GEMM itself: no tensor is created per
// step on the MKL path.
template <typename T>
class RecurrentGemm {
 public:
  RecurrentGemm(const Tensor& w, bool transpose, int64_t rows, const Tensor& bias)
      : op_w_(transpose ? w.t() : w), bias_(bias.defined() ? bias.contiguous() : bias), rows_(rows), cols_(op_w_.size(1)), inner_(op_w_.size(0)) {
    if constexpr (std::is_same_v<T, float>) {
      if (mkl_packed_available() && rows > 0) {
        const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, rows, cols_, inner_);
        packed_ = at::empty({static_cast<int64_t>(bytes)}, w.options().dtype(at::kByte));
        cblas_sgemm_pack(kRowMajor, kBMatrix, transpose ? kTrans : kNoTrans, rows, cols_, inner_, 1.0f,
                         w.data_ptr<float>(), w.size(1), reinterpret_cast<float*>(packed_.data_ptr()));
      }
    }
  }

  // accumulate: add to `out` instead of overwriting it (the bias, if any, is added either way).
  void run(const T* a, int64_t lda, T* out, int64_t ldo, bool accumulate) const {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_.defined()) {
        if (bias_.defined() && !accumulate) {
          const float* bias = bias_.data_ptr<float>();
          for (int64_t r = 0; r < rows_; ++r) std::copy(bias, bias + cols_, out + r * ldo);
        }
        cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, rows_, cols_, inner_, a, lda,
                            reinterpret_cast<const float*>(packed_.data_ptr()), cols_,
                            accumulate || bias_.defined() ? 1.0f : 0.0f, out, ldo);
        return;
      }
    }
    const auto options = op_w_.options();
    const Tensor a_t = at::from_blob(const_cast<T*>(a), {rows_, inner_}, {lda, 1}, options);
    Tensor out_t = at::from_blob(out, {rows_, cols_}, {ldo, 1}, options);
    if (accumulate) {
      out_t.addmm_(a_t, op_w_);
      if (bias_.defined()) out_t.add_(bias_);
    } else if (bias_.defined()) {
      at::addmm_out(out_t, bias_, a_t, op_w_);
    } else {
      at::mm_out(out_t, a_t, op_w_);
    }
  }

 private:
  Tensor op_w_, bias_, packed_;
  int64_t rows_, cols_, inner_;
};

// Rows per parallel chunk: enough work per thread to pay for waking it.
inline int64_t grain_rows(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

// Widths: H = the cell's hidden size, R = the state h that W_hh reads and the loop outputs (R = H, or
// the LSTM's proj_size with a projection W_hr (R, H): h = W_hr (o ⊙ tanh c)), E = the extra state.
template <typename T, typename Cell, bool kTrain>
void forward_loop(const Tensor& x_proj, const Tensor& h0, const Tensor& c0, const Tensor& w_hh, const Tensor& b_hh,
                  const Tensor& w_hr, const Tensor& cell_params, const int64_t* lengths, const Masks<T>& masks,
                  Tensor& out, Tensor& h_n, Tensor& c_n, Tensor& saved, Tensor& cells) {
  const bool proj = w_hr.defined();
  const T* cell_p = cell_params.defined() ? cell_params.data_ptr<T>() : nullptr;
  const int64_t steps = x_proj.size(0), batch = x_proj.size(1), R = w_hh.size(1);
  const int64_t H = proj ? w_hr.size(1) : R;
  const int64_t G = Cell::kGates * H, S = saved_width<Cell>(H), E = (Cell::kStates - 1) * H;
  const auto options = x_proj.options();
  Tensor gh = at::empty({batch, G}, options);
  const RecurrentGemm<T> gemm(w_hh, /*transpose=*/true, batch, b_hh);
  // Recurrent dropout: the state W_hh reads, h ⊙ rmask; zoneout: the extra state before the step;
  // projection: the cell's output o ⊙ tanh(c) before W_hr.
  Tensor read_buf = masks.rmask ? at::empty({batch, R}, options) : Tensor();
  Tensor old_c = masks.zone && E > 0 ? at::empty({batch, E}, options) : Tensor();
  Tensor pre = proj ? at::empty({batch, H}, options) : Tensor();
  const std::unique_ptr<RecurrentGemm<T>> projection =
      proj ? std::make_unique<RecurrentGemm<T>>(w_hr, /*transpose=*/true, batch, Tensor()) : nullptr;
  T* read_ptr = masks.rmask ? read_buf.data_ptr<T>() : nullptr;
  T* old_c_all = old_c.defined() ? old_c.data_ptr<T>() : nullptr;
  T* pre_all = proj ? pre.data_ptr<T>() : nullptr;
  // Without lengths the state before step t is out[t - 1]; with lengths, finished sequences hold
  // their state while their outputs are zero, so the state lives in h_n. The extra state (if any)
  // always lives in c_n, updated in place, and is copied to `cells` for backward when training.
  if (lengths) h_n.copy_(h0);
  if (E > 0) c_n.copy_(c0);
  const T* gx_all = x_proj.data_ptr<T>();
  T* out_all = out.data_ptr<T>();
  T* saved_all = kTrain && S > 0 ? saved.data_ptr<T>() : nullptr;
  T* cells_all = kTrain && E > 0 ? cells.data_ptr<T>() : nullptr;
  T* gh_ptr = gh.data_ptr<T>();
  T* held = lengths ? h_n.data_ptr<T>() : nullptr;
  T* extra = E > 0 ? c_n.data_ptr<T>() : nullptr;
  const T* h0_ptr = h0.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    const T* h = held ? held : (t == 0 ? h0_ptr : out_all + (t - 1) * batch * R);
    if (read_ptr) {
      const T* rm = masks.rmask;
#pragma GCC ivdep
      for (int64_t k = 0; k < batch * R; ++k) read_ptr[k] = h[k] * rm[k];
    }
    gemm.run(read_ptr ? read_ptr : h, R, gh_ptr, G, /*accumulate=*/false);
    const T* gx = gx_all + t * batch * G;
    T* o = out_all + t * batch * R;
    T* s = saved_all ? saved_all + t * batch * S : nullptr;
    T* history = cells_all ? cells_all + t * batch * E : nullptr;
    at::parallel_for(0, batch, grain_rows(G), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        T* o_row = proj ? pre_all + b * H : o + b * R;  // the cell's own output
        T* c_row = extra ? extra + b * E : nullptr;
        if (lengths && t >= lengths[b]) {  // past this sequence's end: hold the state, output zero
          std::fill(o_row, o_row + H, T(0));
          if (s) std::fill(s + b * S, s + (b + 1) * S, T(0));  // read by the projection's weight gradient
        } else {
          T* c_old = old_c_all ? old_c_all + b * E : nullptr;
          if (c_old) std::copy(c_row, c_row + E, c_old);
          Cell::template forward<kTrain>(H, gx + b * G, gh_ptr + b * G, h + b * R, c_row, o_row, c_row,
                                         s ? s + b * S : nullptr, cell_p);
          if (masks.zone) {
            const T* w = masks.zone_at(t, batch, b);
            if (!proj) zone_out(H, o_row, h + b * H, w);
            if (c_old) zone_out(E, c_row, c_old, w + R);
          }
          if (held && !proj) std::copy(o_row, o_row + H, held + b * H);
        }
        if (history) std::copy(c_row, c_row + E, history + b * E);
      }
    });
    if (proj) {  // h = W_hr (o ⊙ tanh c), then zoneout and the held state on the projected h
      projection->run(pre_all, H, o, R, /*accumulate=*/false);
      for (int64_t b = 0; b < batch; ++b) {
        T* o_row = o + b * R;
        if (lengths && t >= lengths[b]) {
          std::fill(o_row, o_row + R, T(0));
          continue;
        }
        if (masks.zone) zone_out(R, o_row, h + b * R, masks.zone_at(t, batch, b));
        if (held) std::copy(o_row, o_row + R, held + b * R);
      }
    }
  }
  if (!lengths) h_n.copy_(out[steps - 1]);
}

// dW[rows] += Σ_t grads_tᵀ h_{t-1}, as two GEMMs (h_{-1} = h0, then h_t = out_t).
void add_weight_grad(Tensor dw_rows, const Tensor& grads, const Tensor& h0, const Tensor& out) {
  const int64_t steps = out.size(0), batch = out.size(1), H = out.size(2), K = grads.size(2);
  dw_rows.addmm_(grads[0].t(), h0);
  if (steps > 1) {
    dw_rows.addmm_(grads.slice(0, 1).reshape({(steps - 1) * batch, K}).t(),
                   out.slice(0, 0, steps - 1).reshape({(steps - 1) * batch, H}));
  }
}

template <typename T, typename Cell>
std::vector<Tensor> backward_loop(const Tensor& d_out, const Tensor& d_h_n, const Tensor& d_c_n, const Tensor& h0,
                                  const Tensor& c0, const Tensor& w_hh, bool has_bias, const Tensor& w_hr,
                                  const Tensor& cell_params, const Tensor& out, const Tensor& cells,
                                  const Tensor& saved, const int64_t* lengths, const Masks<T>& masks,
                                  const Tensor& rmask) {
  const bool proj = w_hr.defined();
  const T* cell_p = cell_params.defined() ? cell_params.data_ptr<T>() : nullptr;
  const int64_t steps = out.size(0), batch = out.size(1), R = w_hh.size(1);
  const int64_t H = proj ? w_hr.size(1) : R;
  const int64_t G = Cell::kGates * H, S = saved_width<Cell>(H), E = (Cell::kStates - 1) * H;
  const int64_t shared = Cell::kSharedGrad * H, tail = G - shared;
  const auto options = out.options();
  Tensor dgx_all = at::empty({steps, batch, G}, options);
  // Only the gate blocks where dgh differs from dgx need a history of their own (GRU: the n block).
  Tensor dgh_step = tail > 0 ? at::empty({batch, G}, options) : Tensor();
  Tensor dgh_tail = tail > 0 ? at::empty({steps, batch, tail}, options) : Tensor();
  Tensor dh = d_h_n.clone();                       // dL/d(h after step t), carried backwards
  Tensor dc = E > 0 ? d_c_n.clone() : Tensor();    // dL/d(c after step t), updated in place
  Tensor g = at::empty({batch, R}, options);
  // What the cell's parameter gradients need beyond dgx (the LN-LSTM's dL/dy), for every step.
  constexpr int kRows = RowGrads<Cell>::value;
  const int64_t RG = kRows * H;
  Tensor rows_all = kRows > 0 ? at::empty({steps, batch, RG}, options) : Tensor();
  const RecurrentGemm<T> gemm(w_hh, /*transpose=*/false, batch, Tensor());
  // Zoneout: the share of dL/dh' (and dL/dc') that goes straight to the old state; recurrent dropout:
  // dgh W_hh before the mask multiplies it. Projection: dL/d(o ⊙ tanh c) = g W_hr per step, and g's
  // history for dW_hr = Σ_t g_tᵀ (o ⊙ tanh c)_t.
  Tensor carry = masks.zone ? at::empty({batch, R + E}, options) : Tensor();
  Tensor through = masks.rmask ? at::empty({batch, R}, options) : Tensor();
  Tensor d_pre = proj ? at::empty({batch, H}, options) : Tensor();
  Tensor direct = proj ? at::empty({batch, H}, options) : Tensor();
  Tensor g_history = proj ? at::empty({steps, batch, R}, options) : Tensor();
  const std::unique_ptr<RecurrentGemm<T>> projection =
      proj ? std::make_unique<RecurrentGemm<T>>(w_hr, /*transpose=*/false, batch, Tensor()) : nullptr;
  T* carry_all = carry.defined() ? carry.data_ptr<T>() : nullptr;
  T* through_ptr = through.defined() ? through.data_ptr<T>() : nullptr;
  T* d_pre_all = proj ? d_pre.data_ptr<T>() : nullptr;
  T* direct_all = proj ? direct.data_ptr<T>() : nullptr;
  const T* d_out_all = d_out.data_ptr<T>();
  const T* out_all = out.data_ptr<T>();
  const T* saved_all = S > 0 ? saved.data_ptr<T>() : nullptr;
  const T* cells_all = E > 0 ? cells.data_ptr<T>() : nullptr;
  const T* c0_ptr = E > 0 ? c0.data_ptr<T>() : nullptr;
  T* dh_ptr = dh.data_ptr<T>();
  T* dc_ptr = E > 0 ? dc.data_ptr<T>() : nullptr;
  T* g_ptr = g.data_ptr<T>();
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* h_prev = t == 0 ? h0.data_ptr<T>() : out_all + (t - 1) * batch * R;
    const T* c_prev = E == 0 ? nullptr : t == 0 ? c0_ptr : cells_all + (t - 1) * batch * E;
    const T* c_new = E == 0 ? nullptr : cells_all + t * batch * E;
    const T* h_new = out_all + t * batch * R;
    const T* d_o = d_out_all + t * batch * R;
    T* dgx = dgx_all.data_ptr<T>() + t * batch * G;
    T* dgh = tail > 0 ? dgh_step.data_ptr<T>() : dgx;
    T* history = tail > 0 ? dgh_tail.data_ptr<T>() + t * batch * tail : nullptr;
    T* rows = kRows > 0 ? rows_all.data_ptr<T>() + t * batch * RG : nullptr;
    auto valid = [&](int64_t b) { return !lengths || t < lengths[b]; };
    // g = dL/dh' (then its share through the new state), and zoneout's share of dL/dh', dL/dc'.
    auto split = [&](int64_t b) {
      T* g_row = g_ptr + b * R;
      for (int64_t j = 0; j < R; ++j) g_row[j] = dh_ptr[b * R + j] + d_o[b * R + j];
      T* carry_row = carry_all ? carry_all + b * (R + E) : nullptr;
      if (carry_row) {  // x = lerp(x_new, x_old, w): dL/dx_new = (1 - w) g, dL/dx_old += w g
        const T* w = masks.zone_at(t, batch, b);
        T* dc_row = dc_ptr ? dc_ptr + b * E : nullptr;
#pragma GCC ivdep
        for (int64_t j = 0; j < R; ++j) {
          carry_row[j] = w[j] * g_row[j];
          g_row[j] *= T(1) - w[j];
        }
#pragma GCC ivdep
        for (int64_t j = 0; j < E; ++j) {
          carry_row[R + j] = w[R + j] * dc_row[j];
          dc_row[j] *= T(1) - w[R + j];
        }
      }
    };
    // After the cell's backward: dh gets its direct part plus zoneout's carry, dc zoneout's carry.
    auto join = [&](int64_t b) {
      const T* carry_row = carry_all ? carry_all + b * (R + E) : nullptr;
      if (!carry_row) return;
      T* dh_row = dh_ptr + b * R;
      T* dc_row = dc_ptr ? dc_ptr + b * E : nullptr;
#pragma GCC ivdep
      for (int64_t j = 0; j < R; ++j) dh_row[j] += carry_row[j];
#pragma GCC ivdep
      for (int64_t j = 0; j < E; ++j) dc_row[j] += carry_row[R + j];
    };
    auto skip = [&](int64_t b) {  // the state was held: its gradients pass through unchanged
      std::fill(dgx + b * G, dgx + (b + 1) * G, T(0));
      std::fill(dgh + b * G, dgh + (b + 1) * G, T(0));
      if (history) std::fill(history + b * tail, history + (b + 1) * tail, T(0));
      if (rows) std::fill(rows + b * RG, rows + (b + 1) * RG, T(0));
    };
    if (proj) {
      T* g_hist = g_history.data_ptr<T>() + t * batch * R;
      for (int64_t b = 0; b < batch; ++b) {
        if (valid(b)) {
          split(b);
          std::fill(dh_ptr + b * R, dh_ptr + (b + 1) * R, T(0));  // consumed into g; the LSTM has no direct part
        } else {
          std::fill(g_ptr + b * R, g_ptr + (b + 1) * R, T(0));
        }
      }
      std::copy(g_ptr, g_ptr + batch * R, g_hist);
      projection->run(g_ptr, R, d_pre_all, H, /*accumulate=*/false);  // dL/d(o ⊙ tanh c) = g W_hr
    }
    at::parallel_for(0, batch, grain_rows(G), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        if (!valid(b)) {
          skip(b);
          continue;
        }
        if (!proj) split(b);
        T* dc_row = dc_ptr ? dc_ptr + b * E : nullptr;
        // Without a projection dh's row is consumed into g, so the cell may overwrite it with dh_direct.
        auto cell_backward = [&](auto... row_grads) {
          Cell::backward(H, proj ? d_pre_all + b * H : g_ptr + b * R, dc_row, h_prev + b * R,
                         c_prev ? c_prev + b * E : nullptr, proj ? nullptr : h_new + b * R,
                         c_new ? c_new + b * E : nullptr, saved_all ? saved_all + (t * batch + b) * S : nullptr,
                         dgx + b * G, dgh + b * G, proj ? direct_all + b * H : dh_ptr + b * R, dc_row, cell_p,
                         row_grads...);
        };
        if constexpr (kRows > 0) {
          cell_backward(rows + b * RG);
        } else {
          cell_backward();
        }
        join(b);
        if (history) std::copy(dgh + b * G + shared, dgh + (b + 1) * G, history + b * tail);
      }
    });
    if (through_ptr) {  // dh = dh_direct + (dgh_t W_hh) ⊙ rmask
      gemm.run(dgh, G, through_ptr, R, /*accumulate=*/false);
      const T* rm = masks.rmask;
      // Rows past their length hold their state: their gradient passes through untouched (dgh is 0 there).
#pragma GCC ivdep
      for (int64_t k = 0; k < batch * R; ++k) dh_ptr[k] += through_ptr[k] * rm[k];
    } else {
      gemm.run(dgh, G, dh_ptr, R, /*accumulate=*/true);  // dh = dh_direct + dgh_t W_hh
    }
  }
  // Weight and bias gradients as GEMMs and sums over all steps: dW_hh = Σ_t dgh_tᵀ (h_{t-1} ⊙ rmask).
  Tensor dw_hh = at::zeros_like(w_hh);
  const Tensor read0 = rmask.defined() ? h0 * rmask : h0;
  const Tensor read = rmask.defined() ? out * rmask : out;
  add_weight_grad(dw_hh.slice(0, 0, shared), dgx_all.slice(2, 0, shared), read0, read);
  if (tail > 0) add_weight_grad(dw_hh.slice(0, shared), dgh_tail, read0, read);
  Tensor db_hh;
  if (has_bias) {
    db_hh = at::empty({G}, options);
    db_hh.slice(0, 0, shared).copy_(dgx_all.slice(2, 0, shared).sum({0, 1}));
    if (tail > 0) db_hh.slice(0, shared).copy_(dgh_tail.sum({0, 1}));
  }
  Tensor dw_hr;
  if (proj) {  // the LSTM saves o (block 3) and tanh(c) (block 4): the projection's input is their product
    const Tensor pre_all = saved.slice(2, 3 * H, 4 * H) * saved.slice(2, 4 * H, 5 * H);
    dw_hr = at::mm(g_history.reshape({steps * batch, R}).t(), pre_all.reshape({steps * batch, H}));
  }
  Tensor d_params;
  if constexpr (Cell::kParams > 0) {  // the cell's own per-unit parameters, summed over all steps
    const Tensor c_prev = E > 0 ? at::cat({c0.unsqueeze(0), cells.slice(0, 0, steps - 1)}) : Tensor();
    if constexpr (kRows > 0) {
      d_params = Cell::param_grads(dgx_all, c_prev, saved, H, rows_all);
    } else {
      d_params = Cell::param_grads(dgx_all, c_prev, saved, H);
    }
  }
  return {dgx_all, dh, dc, dw_hh, db_hh, dw_hr, d_params};
}

// The loops index lengths[b] directly: a strided view (table[:, 0], expand()) would be read as the wrong numbers.
const int64_t* lengths_ptr(const c10::optional<Tensor>& lengths) {
  if (!lengths.has_value() || !lengths->defined()) return nullptr;
  TORCH_CHECK(lengths->is_contiguous() && lengths->scalar_type() == at::kLong && lengths->device().is_cpu(),
              "rnnkit engine: lengths must be a contiguous int64 CPU tensor");
  return lengths->data_ptr<int64_t>();
}

#define RNNKIT_DISPATCH_CELL(cell, T, CALL)                      \
  if (cell == "gru") {                                          \
    using CellT = GRU<T>;                                       \
    CALL;                                                       \
  } else if (cell == "elman_tanh") {                            \
    using CellT = Elman<T, false>;                              \
    CALL;                                                       \
  } else if (cell == "elman_relu") {                            \
    using CellT = Elman<T, true>;                               \
    CALL;                                                       \
  } else if (cell == "lstm") {                                  \
    using CellT = LSTM<T>;                                      \
    CALL;                                                       \
  } else if (cell == "peephole_lstm") {                         \
    using CellT = PeepholeLSTM<T>;                              \
    CALL;                                                       \
  } else if (cell == "ln_gru") {                                \
    using CellT = LayerNormGRU<T>;                              \
    CALL;                                                       \
  } else if (cell == "ln_lstm") {                               \
    using CellT = LayerNormLSTM<T>;                             \
    CALL;                                                       \
  } else {                                                      \
    TORCH_CHECK(false, "rnnkit engine: unknown cell '", cell, "'"); \
  }

void check_inputs(const Tensor& x_proj, const Tensor& h0, const Tensor& w_hh) {
  TORCH_CHECK(x_proj.device().is_cpu(), "rnnkit engine runs on CPU tensors");
  TORCH_CHECK(x_proj.dim() == 3 && x_proj.is_contiguous(), "x_proj must be a contiguous (steps, batch, gates) tensor");
  TORCH_CHECK(h0.is_contiguous() && w_hh.is_contiguous(), "h0 and w_hh must be contiguous");
}

// rmask: (batch, R); zone: (steps, batch, width) or a single value; both contiguous, the loops' dtype.
void check_masks(const c10::optional<Tensor>& rmask, const c10::optional<Tensor>& zone, int64_t steps, int64_t batch,
                 int64_t R, int64_t width) {
  if (rmask.has_value() && rmask->defined()) {
    TORCH_CHECK(rmask->is_contiguous() && rmask->numel() == batch * R, "rnnkit engine: rmask must be a contiguous (",
                batch, ", ", R, ") tensor");
  }
  if (zone.has_value() && zone->defined()) {
    TORCH_CHECK(zone->is_contiguous() && (zone->numel() == 1 || zone->numel() == steps * batch * width),
                "rnnkit engine: zone must be one value or a contiguous (", steps, ", ", batch, ", ", width, ") tensor");
  }
}

Tensor optional_or_empty(const c10::optional<Tensor>& value, const Tensor& like) {
  return value.has_value() && value->defined() ? value->contiguous() : at::empty({0}, like.options());
}

Tensor optional_or_undefined(const c10::optional<Tensor>& value) {
  return value.has_value() && value->defined() ? value->contiguous() : Tensor();
}

// w_hr: the LSTM's projection (R, H) (torch.nn's weight_hr), or none.
int64_t cell_width(const std::string& cell, const Tensor& w_hh, const Tensor& w_hr) {
  TORCH_CHECK(!w_hr.defined() || cell == "lstm", "rnnkit engine: only the LSTM has a projection (w_hr)");
  TORCH_CHECK(!w_hr.defined() || (w_hr.dim() == 2 && w_hr.size(0) == w_hh.size(1)),
              "rnnkit engine: w_hr must be (proj_size, hidden_size) with proj_size = w_hh.size(1)");
  return w_hr.defined() ? w_hr.size(1) : w_hh.size(1);
}

// params: the cell's own per-unit parameters: the peephole LSTM's [w_ci | w_cf | w_co] (3H), the
// layer-normalised GRU's [γ_hh | β_hh | b_hh] (9H), the layer-normalised LSTM's [γ_hh | β_hh | γ_c | β_c]
// (10H), none for the others.
void check_cell_params(const std::string& cell, const Tensor& params, int64_t H) {
  const int64_t expected = cell == "peephole_lstm" ? 3 * H : cell == "ln_gru" ? 9 * H : cell == "ln_lstm" ? 10 * H : 0;
  TORCH_CHECK(expected == 0 ? !params.defined() : params.defined() && params.numel() == expected,
              "rnnkit engine: cell '", cell, "' takes ", expected, " cell parameters");
}

// Returns (out, h_n, c_n, saved, cells): c_n and cells (the extra state after every step) are empty
// for single-state cells; saved and cells are empty when training is false.
std::vector<Tensor> forward(const std::string& cell, const Tensor& x_proj, const Tensor& h0,
                            const c10::optional<Tensor>& c0_opt, const Tensor& w_hh, const c10::optional<Tensor>& b_hh,
                            const c10::optional<Tensor>& lengths, bool training,
                            const c10::optional<Tensor>& rmask, const c10::optional<Tensor>& zone,
                            const c10::optional<Tensor>& w_hr_opt, const c10::optional<Tensor>& params_opt) {
  check_inputs(x_proj, h0, w_hh);
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor w_hr = optional_or_undefined(w_hr_opt), cell_params = optional_or_undefined(params_opt);
  const int64_t steps = x_proj.size(0), batch = x_proj.size(1), R = w_hh.size(1), H = cell_width(cell, w_hh, w_hr);
  int64_t saved_per_row = 0, extra_blocks = 0;
  RNNKIT_DISPATCH_CELL(cell, float, (saved_per_row = saved_width<CellT>(H), extra_blocks = CellT::kStates - 1))
  const Tensor c0 = optional_or_empty(c0_opt, x_proj);
  TORCH_CHECK(extra_blocks == 0 || c0.numel() == batch * extra_blocks * H, "rnnkit engine: cell '", cell,
              "' needs an initial extra state of shape (batch, ", extra_blocks * H, ")");
  const auto options = x_proj.options();
  Tensor out = at::empty({steps, batch, R}, options);
  Tensor h_n = at::empty_like(h0);
  Tensor c_n = extra_blocks > 0 ? at::empty({batch, extra_blocks * H}, options) : at::empty({0}, options);
  Tensor saved = training && saved_per_row > 0 ? at::empty({steps, batch, saved_per_row}, options)
                                              : at::empty({0}, options);
  Tensor cells = training && extra_blocks > 0 ? at::empty({steps, batch, extra_blocks * H}, options)
                                              : at::empty({0}, options);
  const Tensor bias = b_hh.has_value() ? *b_hh : Tensor();
  const int64_t* len = lengths_ptr(lengths);
  check_masks(rmask, zone, steps, batch, R, R + extra_blocks * H);
  check_cell_params(cell, cell_params, H);
  AT_DISPATCH_FLOATING_TYPES(x_proj.scalar_type(), "rnnkit_engine_forward", [&] {
    const Masks<scalar_t> masks(rmask, zone, R + extra_blocks * H);
    if (training) {
      RNNKIT_DISPATCH_CELL(cell, scalar_t,
                           (forward_loop<scalar_t, CellT, true>(x_proj, h0, c0, w_hh, bias, w_hr, cell_params, len, masks, out, h_n,
                                                                c_n, saved, cells)))
    } else {
      RNNKIT_DISPATCH_CELL(cell, scalar_t,
                           (forward_loop<scalar_t, CellT, false>(x_proj, h0, c0, w_hh, bias, w_hr, cell_params, len, masks, out, h_n,
                                                                 c_n, saved, cells)))
    }
  });
  return {out, h_n, c_n, saved, cells};
}

// Returns (d_x_proj, d_h0, d_c0, d_w_hh, d_b_hh, d_w_hr, d_params); d_c0 is undefined for single-state
// cells, d_b_hh without a recurrent bias, d_w_hr without a projection and d_params without cell parameters.
std::vector<Tensor> backward(const std::string& cell, const Tensor& d_out, const Tensor& d_h_n,
                             const c10::optional<Tensor>& d_c_n, const Tensor& h0, const c10::optional<Tensor>& c0,
                             const Tensor& w_hh, bool has_bias, const Tensor& out, const Tensor& cells,
                             const Tensor& saved, const c10::optional<Tensor>& lengths,
                             const c10::optional<Tensor>& rmask, const c10::optional<Tensor>& zone,
                             const c10::optional<Tensor>& w_hr_opt, const c10::optional<Tensor>& params_opt) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor w_hr = optional_or_undefined(w_hr_opt), cell_params = optional_or_undefined(params_opt);
  const bool two_states = c0.has_value() && c0->defined() && c0->numel() > 0;
  const int64_t R = w_hh.size(1), H = cell_width(cell, w_hh, w_hr);
  const int64_t width = two_states ? R + H : R;  // zoneout's row: h, then c
  check_masks(rmask, zone, out.size(0), out.size(1), R, width);
  check_cell_params(cell, cell_params, H);
  const Tensor rmask_t = rmask.has_value() && rmask->defined() ? *rmask : Tensor();
  const Tensor d_out_c = d_out.contiguous(), d_h_c = d_h_n.contiguous();
  const Tensor d_c_c = optional_or_empty(d_c_n, out), c0_c = optional_or_empty(c0, out);
  const int64_t* len = lengths_ptr(lengths);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnkit_engine_backward", [&] {
    const Masks<scalar_t> masks(rmask, zone, width);
    RNNKIT_DISPATCH_CELL(cell, scalar_t,
                         (grads = backward_loop<scalar_t, CellT>(d_out_c, d_h_c, d_c_c, h0, c0_c, w_hh, has_bias, w_hr,
                                                                 cell_params, out, cells, saved, len, masks, rmask_t)))
  });
  return grads;
}

// minGRU / minLSTM (rnnkit.variants.minimal): h_t = lerp(h_{t-1}, g(v_t), σ(k_t)) over pre = [k | v]
// (steps, batch, 2H), g(v) = max(v + 0.5, σ(v)). The recurrence is elementwise, so each batch row runs
// its whole time loop on one thread (rows in parallel), vectorised over the hidden units; nothing but
// the outputs is kept: backward recomputes σ(k) and g(v) from pre.
template <typename T>
inline T lerp_like_torch(T start, T end, T weight) {  // torch.lerp's formula
  const T diff = end - start;
  return weight < T(0.5) ? start + weight * diff : end - diff * (T(1) - weight);
}

template <typename T>
void gated_scan_forward_loop(const T* pre, const T* h0, T* out, int64_t steps, int64_t batch, int64_t H) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t t = 0; t < steps; ++t) {
        const T* k = pre + (t * batch + b) * 2 * H;
        const T* v = k + H;
        const T* h = t == 0 ? h0 + b * H : out + ((t - 1) * batch + b) * H;
        T* o = out + (t * batch + b) * H;
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) {
          const T w = Math<T>::sigmoid(k[j]);
          const T s = Math<T>::sigmoid(v[j]);
          const T c = v[j] + T(0.5) > s ? v[j] + T(0.5) : s;
          o[j] = lerp_like_torch(h[j], c, w);
        }
      }
    }
  });
}

// ḡ_t = dL/dh_t + (1 - w_{t+1}) ḡ_{t+1}; dL/dk_t = ḡ_t w_t (1 - w_t) (c_t - h_{t-1});
// dL/dv_t = ḡ_t w_t g'(v_t) (1 for v >= 0, c (1 - c) below); dL/dh_0 = (1 - w_1) ḡ_1.
template <typename T>
void gated_scan_backward_loop(const T* grad_out, const T* pre, const T* h0, const T* out, T* grad_pre, T* grad_h0,
                              int64_t steps, int64_t batch, int64_t H) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> carry(H);
    for (int64_t b = begin; b < end; ++b) {
      T* cr = carry.data();
      std::fill(cr, cr + H, T(0));
      for (int64_t t = steps - 1; t >= 0; --t) {
        const T* k = pre + (t * batch + b) * 2 * H;
        const T* v = k + H;
        const T* h = t == 0 ? h0 + b * H : out + ((t - 1) * batch + b) * H;
        const T* go = grad_out + (t * batch + b) * H;
        T* gk = grad_pre + (t * batch + b) * 2 * H;
        T* gv = gk + H;
#pragma GCC ivdep
        for (int64_t j = 0; j < H; ++j) {
          const T w = Math<T>::sigmoid(k[j]);
          const T s = Math<T>::sigmoid(v[j]);
          const T c = v[j] + T(0.5) > s ? v[j] + T(0.5) : s;
          const T total = go[j] + cr[j];
          const T weighted = total * w;
          gk[j] = weighted * (T(1) - w) * (c - h[j]);
          gv[j] = weighted * (v[j] >= T(0) ? T(1) : c * (T(1) - c));
          cr[j] = (T(1) - w) * total;
        }
      }
      std::copy(cr, cr + H, grad_h0 + b * H);
    }
  });
}

Tensor gated_scan_forward(const Tensor& pre, const Tensor& h0) {
  TORCH_CHECK(pre.device().is_cpu() && pre.dim() == 3 && pre.is_contiguous() && pre.size(2) % 2 == 0,
              "rnnkit gated scan: pre must be a contiguous CPU (steps, batch, 2 * hidden) tensor");
  TORCH_CHECK(h0.is_contiguous() && h0.numel() == pre.size(1) * pre.size(2) / 2, "rnnkit gated scan: h0 (batch, hidden)");
  at::AutoDispatchBelowADInplaceOrView guard;
  const int64_t steps = pre.size(0), batch = pre.size(1), H = pre.size(2) / 2;
  Tensor out = at::empty({steps, batch, H}, pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "rnnkit_gated_scan_forward", [&] {
    gated_scan_forward_loop<scalar_t>(pre.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                      steps, batch, H);
  });
  return out;
}

// One step of the same recurrence from a state (generation): h' = lerp(h, g(v), σ(k)) for pre = [k | v]
// (batch, 2H), h (batch, H). The scan's own row loop with one step, so a sequence stepped here equals
// the scan's outputs bit for bit.
Tensor gated_step(const Tensor& pre, const Tensor& h) {
  TORCH_CHECK(pre.device().is_cpu() && pre.dim() == 2 && pre.is_contiguous() && pre.size(1) % 2 == 0,
              "rnnkit gated step: pre must be a contiguous CPU (batch, 2 * hidden) tensor");
  TORCH_CHECK(h.is_contiguous() && h.dim() == 2 && h.size(0) == pre.size(0) && h.size(1) == pre.size(1) / 2 &&
                  h.scalar_type() == pre.scalar_type(),
              "rnnkit gated step: h must be a contiguous (batch, hidden) tensor of pre's dtype");
  at::AutoDispatchBelowADInplaceOrView guard;
  Tensor out = at::empty_like(h);
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "rnnkit_gated_step", [&] {
    gated_scan_forward_loop<scalar_t>(pre.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), 1,
                                      pre.size(0), h.size(1));
  });
  return out;
}

std::vector<Tensor> gated_scan_backward(const Tensor& grad_out, const Tensor& pre, const Tensor& h0, const Tensor& out) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor grad = grad_out.contiguous();
  const int64_t steps = pre.size(0), batch = pre.size(1), H = pre.size(2) / 2;
  Tensor grad_pre = at::empty_like(pre), grad_h0 = at::empty({batch, H}, pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "rnnkit_gated_scan_backward", [&] {
    gated_scan_backward_loop<scalar_t>(grad.data_ptr<scalar_t>(), pre.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(),
                                       out.data_ptr<scalar_t>(), grad_pre.data_ptr<scalar_t>(),
                                       grad_h0.data_ptr<scalar_t>(), steps, batch, H);
  });
  return {grad_pre, grad_h0};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("uses_mkl_packed_gemm", &mkl_packed_available, "Whether float32 recurrent GEMMs use MKL's packed API");
  m.def("gated_scan_forward", &gated_scan_forward, "minGRU/minLSTM scan: outputs of h_t = lerp(h_{t-1}, g(v_t), σ(k_t))");
  m.def("gated_step", &gated_step, "minGRU/minLSTM: one step h' = lerp(h, g(v), σ(k)) from a state (generation)");
  m.def("gated_scan_backward", &gated_scan_backward, "minGRU/minLSTM scan backward (grad_pre, grad_h0)");
  m.def("forward", &forward, "Recurrence over all steps (out, h_n, c_n, saved, cells)",
        py::arg("cell"), py::arg("x_proj"), py::arg("h0"), py::arg("c0"), py::arg("w_hh"), py::arg("b_hh"),
        py::arg("lengths"), py::arg("training"), py::arg("rmask") = py::none(), py::arg("zone") = py::none(),
        py::arg("w_hr") = py::none(), py::arg("params") = py::none());
  m.def("backward", &backward, "Backpropagation through time (d_x_proj, d_h0, d_c0, d_w_hh, d_b_hh, d_w_hr, d_params)",
        py::arg("cell"), py::arg("d_out"), py::arg("d_h_n"), py::arg("d_c_n"), py::arg("h0"), py::arg("c0"),
        py::arg("w_hh"), py::arg("has_bias"), py::arg("out"), py::arg("cells"), py::arg("saved"), py::arg("lengths"),
        py::arg("rmask") = py::none(), py::arg("zone") = py::none(), py::arg("w_hr") = py::none(),
        py::arg("params") = py::none());
}
