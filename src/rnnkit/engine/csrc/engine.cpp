// rnnkit's fused recurrent engine for CPU: the recurrence of a single-state gated cell over a whole
// sequence, forward and hand-derived backpropagation through time, in one C++ call each.
//
// Per time step the engine does one GEMM (W_hh h) and one fused pointwise pass over the gates;
// everything that does not depend on the previous step (the input projection, the weight and input
// gradients) is left to single GEMMs over all steps. A cell is a struct with two row functions:
//
//   forward<kTrain>(H, gx, gh, h, h_new, saved)   gates from gx = W_ih x + b and gh = W_hh h (+ b_hh)
//   backward(H, g, h, h_new, saved, dgx, dgh, dh_direct)
//
// where g is dL/dh_new, dgx and dgh are dL/dgx and dL/dgh, and dh_direct is the part of dL/dh that
// does not flow through W_hh (the engine adds dgh W_hh). See docs/engine.md for adding a cell.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>

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

// Elman: h' = act(gx + gh), with both biases folded into gx by the caller.
template <typename T, bool kRelu>
struct Elman {
  static constexpr int kGates = 1;
  static constexpr int kSaved = 0;

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, T* h_new, T* saved) {
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const T pre = gx[j] + gh[j];
      h_new[j] = kRelu ? (pre > T(0) ? pre : T(0)) : Math<T>::tanh(pre);
    }
  }

  static inline void backward(int64_t H, const T* g, const T* h, const T* h_new, const T* saved, T* dgx, T* dgh,
                              T* dh_direct) {
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

  template <bool kTrain>
  static inline void forward(int64_t H, const T* gx, const T* gh, const T* h, T* h_new, T* saved) {
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

  static inline void backward(int64_t H, const T* g, const T* h, const T* h_new, const T* saved, T* dgx, T* dgh,
                              T* dh_direct) {
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

// Rows per parallel chunk: enough work per thread to pay for waking it.
inline int64_t grain_rows(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

template <typename T, typename Cell, bool kTrain>
void forward_loop(const Tensor& x_proj, const Tensor& w_hh, const Tensor& b_hh, const int64_t* lengths, Tensor& out,
                  Tensor& state, Tensor& saved) {
  const int64_t steps = x_proj.size(0), batch = x_proj.size(1), H = w_hh.size(1);
  const int64_t G = Cell::kGates * H, S = Cell::kSaved * H;
  Tensor gh = at::empty({batch, G}, x_proj.options());
  const Tensor w_t = w_hh.t();
  const T* gx_all = x_proj.data_ptr<T>();
  T* out_all = out.data_ptr<T>();
  T* saved_all = kTrain && S > 0 ? saved.data_ptr<T>() : nullptr;
  T* h = state.data_ptr<T>();
  const T* gh_ptr = gh.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    if (b_hh.defined()) {
      at::addmm_out(gh, b_hh, state, w_t);
    } else {
      at::mm_out(gh, state, w_t);
    }
    const T* gx = gx_all + t * batch * G;
    T* o = out_all + t * batch * H;
    T* s = saved_all ? saved_all + t * batch * S : nullptr;
    at::parallel_for(0, batch, grain_rows(G), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        T* o_row = o + b * H;
        T* h_row = h + b * H;
        if (lengths && t >= lengths[b]) {  // past this sequence's end: hold the state, output zero
          std::fill(o_row, o_row + H, T(0));
          continue;
        }
        Cell::template forward<kTrain>(H, gx + b * G, gh_ptr + b * G, h_row, o_row, s ? s + b * S : nullptr);
        std::copy(o_row, o_row + H, h_row);
      }
    });
  }
}

template <typename T, typename Cell>
std::vector<Tensor> backward_loop(const Tensor& d_out, const Tensor& d_state, const Tensor& h0, const Tensor& w_hh,
                                  bool has_bias, const Tensor& out, const Tensor& saved, const int64_t* lengths) {
  const int64_t steps = out.size(0), batch = out.size(1), H = w_hh.size(1);
  const int64_t G = Cell::kGates * H, S = Cell::kSaved * H;
  const auto options = out.options();
  Tensor dgx_all = at::empty({steps, batch, G}, options);
  // Elman's gate gradients are the same for the input and the recurrent projection: share the buffer.
  Tensor dgh_all = Cell::kGates == 1 && Cell::kSaved == 0 ? dgx_all : at::empty({steps, batch, G}, options);
  Tensor dh = d_state.clone();  // dL/d(state after step t), carried backwards
  Tensor g = at::empty({batch, H}, options);
  Tensor dh_direct = at::empty({batch, H}, options);
  const T* d_out_all = d_out.data_ptr<T>();
  const T* out_all = out.data_ptr<T>();
  const T* saved_all = S > 0 ? saved.data_ptr<T>() : nullptr;
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* h_prev = t == 0 ? h0.data_ptr<T>() : out_all + (t - 1) * batch * H;
    const T* h_new = out_all + t * batch * H;
    const T* d_o = d_out_all + t * batch * H;
    T* dgx = dgx_all.data_ptr<T>() + t * batch * G;
    T* dgh = dgh_all.data_ptr<T>() + t * batch * G;
    T* dh_ptr = dh.data_ptr<T>();
    T* g_ptr = g.data_ptr<T>();
    T* direct = dh_direct.data_ptr<T>();
    at::parallel_for(0, batch, grain_rows(G), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        if (lengths && t >= lengths[b]) {  // the state was held: its gradient passes through unchanged
          std::fill(dgx + b * G, dgx + (b + 1) * G, T(0));
          std::fill(dgh + b * G, dgh + (b + 1) * G, T(0));
          std::copy(dh_ptr + b * H, dh_ptr + (b + 1) * H, direct + b * H);
          continue;
        }
        T* g_row = g_ptr + b * H;
        for (int64_t j = 0; j < H; ++j) g_row[j] = dh_ptr[b * H + j] + d_o[b * H + j];
        Cell::backward(H, g_row, h_prev + b * H, h_new + b * H, saved_all ? saved_all + (t * batch + b) * S : nullptr,
                       dgx + b * G, dgh + b * G, direct + b * H);
      }
    });
    at::addmm_out(dh, dh_direct, dgh_all[t], w_hh);
  }
  // Weight gradient as GEMMs over all steps: dW_hh = Σ_t dgh_tᵀ h_{t-1}.
  Tensor dw_hh = at::mm(dgh_all[0].t(), h0);
  if (steps > 1) {
    dw_hh.addmm_(dgh_all.slice(0, 1).reshape({(steps - 1) * batch, G}).t(),
                 out.slice(0, 0, steps - 1).reshape({(steps - 1) * batch, H}));
  }
  Tensor db_hh = has_bias ? dgh_all.sum({0, 1}) : Tensor();
  return {dgx_all, dh, dw_hh, db_hh};
}

const int64_t* lengths_ptr(const c10::optional<Tensor>& lengths) {
  return lengths.has_value() && lengths->defined() ? lengths->data_ptr<int64_t>() : nullptr;
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
  } else {                                                      \
    TORCH_CHECK(false, "rnnkit engine: unknown cell '", cell, "'"); \
  }

int64_t saved_blocks(const std::string& cell) { return cell == "gru" ? GRU<float>::kSaved : 0; }

void check_inputs(const Tensor& x_proj, const Tensor& h0, const Tensor& w_hh) {
  TORCH_CHECK(x_proj.device().is_cpu(), "rnnkit engine runs on CPU tensors");
  TORCH_CHECK(x_proj.dim() == 3 && x_proj.is_contiguous(), "x_proj must be a contiguous (steps, batch, gates) tensor");
  TORCH_CHECK(h0.is_contiguous() && w_hh.is_contiguous(), "h0 and w_hh must be contiguous");
}

// Returns (out, h_n, saved); saved is empty when training is false.
std::vector<Tensor> forward(const std::string& cell, const Tensor& x_proj, const Tensor& h0, const Tensor& w_hh,
                            const c10::optional<Tensor>& b_hh, const c10::optional<Tensor>& lengths, bool training) {
  check_inputs(x_proj, h0, w_hh);
  at::AutoDispatchBelowADInplaceOrView guard;
  const int64_t steps = x_proj.size(0), batch = x_proj.size(1), H = w_hh.size(1);
  Tensor out = at::empty({steps, batch, H}, x_proj.options());
  Tensor state = h0.clone();
  const int64_t s = saved_blocks(cell);
  Tensor saved = training && s > 0 ? at::empty({steps, batch, s * H}, x_proj.options()) : at::empty({0}, x_proj.options());
  const Tensor bias = b_hh.has_value() ? *b_hh : Tensor();
  const int64_t* len = lengths_ptr(lengths);
  AT_DISPATCH_FLOATING_TYPES(x_proj.scalar_type(), "rnnkit_engine_forward", [&] {
    if (training) {
      RNNKIT_DISPATCH_CELL(cell, scalar_t, (forward_loop<scalar_t, CellT, true>(x_proj, w_hh, bias, len, out, state, saved)))
    } else {
      RNNKIT_DISPATCH_CELL(cell, scalar_t, (forward_loop<scalar_t, CellT, false>(x_proj, w_hh, bias, len, out, state, saved)))
    }
  });
  return {out, state, saved};
}

// Returns (d_x_proj, d_h0, d_w_hh, d_b_hh); d_b_hh is undefined without a recurrent bias.
std::vector<Tensor> backward(const std::string& cell, const Tensor& d_out, const Tensor& d_state, const Tensor& h0,
                             const Tensor& w_hh, bool has_bias, const Tensor& out, const Tensor& saved,
                             const c10::optional<Tensor>& lengths) {
  at::AutoDispatchBelowADInplaceOrView guard;
  const Tensor d_out_c = d_out.contiguous(), d_state_c = d_state.contiguous();
  const int64_t* len = lengths_ptr(lengths);
  std::vector<Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnkit_engine_backward", [&] {
    RNNKIT_DISPATCH_CELL(cell, scalar_t,
                         (grads = backward_loop<scalar_t, CellT>(d_out_c, d_state_c, h0, w_hh, has_bias, out, saved, len)))
  });
  return grads;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "Recurrence over all steps (out, h_n, saved)");
  m.def("backward", &backward, "Backpropagation through time (d_x_proj, d_h0, d_w_hh, d_b_hh)");
}
