// The pieces of a transformer layer's backward pass that the LoRA trainer
// needs: gradients with respect to activations through frozen weights, and
// the gradients of the LoRA matrices. All activations are row-major
// [tokens x width] F32.
#pragma once

#include <cstddef>
#include <map>
#include <vector>

#include "tensor/matmul.h"
#include "train/lora_parameters.h"

namespace frugal {

class ThreadPool;

// An F32 row-major matrix [rows x cols] as a weight for matmul().
WeightMatrix f32_matrix(const float* values, size_t rows, size_t cols);
// out [cols x rows] = in [rows x cols] transposed.
void transpose(const float* in, size_t rows, size_t cols, std::vector<float>& out);

// dx[t] += dy[t] W for W [rows x cols] in any stored format (dy [n x rows],
// dx [n x cols]): W's rows are read a block at a time as F32, transposed and
// multiplied by the F32 kernels, so no F32 copy of the model is kept.
void add_transposed_product(const WeightMatrix& w, const float* dy, size_t n, float* dx, ThreadPool& pool);

// F32 copies of frozen weights, transposed, made once and reused by every
// backward pass while they fit in a memory limit; weights beyond it are read
// a block at a time as add_transposed_product does.
class TransposedWeights {
 public:
  explicit TransposedWeights(size_t limit_bytes) : limit_(limit_bytes) {}
  // dx[t] += dy[t] W, from the cached copy when there is one.
  void add_product(const WeightMatrix& w, const float* dy, size_t n, float* dx, ThreadPool& pool);

 private:
  size_t limit_, used_ = 0;
  std::map<const void*, std::vector<float>> copies_;  // by the weight's data
  std::vector<float> part_;  // one product, before it is added
};

// y = w * x / rms(x) backward: dx += d(x) given dy, per row of `width`.
void rms_norm_backward(const float* x, const float* weight, const float* dy, size_t n, size_t width, float eps,
                       float* dx);

// rms_norm_backward with its rows spread over the pool.
void norm_backward_rows(const float* x, const std::vector<float>& weight, const float* dy, size_t n, size_t width,
                        float eps, float* dx, ThreadPool& pool);

// gate' = silu(gate) * up backward: d_gate and d_up (overwritten) from dh.
void swiglu_backward(const float* gate, const float* up, const float* dh, size_t count, float* d_gate, float* d_up);

// c [outputs x cols] += a [outputs x count] b [count x cols], row-major, by
// the register-blocked weighted_sums kernel (outer products: b's rows are
// read as they are, so a gradient summed over tokens needs no transpose of
// the tokens x width matrices).
void add_outer_products(const float* a, size_t outputs, size_t count, const float* b, size_t cols, float* c,
                        ThreadPool& pool);

// out += factor * B (A x): `low` receives A x [n x rank] (kept for the
// backward pass).
void lora_forward(const TrainableMatrix& m, float factor, const float* x, size_t n, float* low, float* out,
                  ThreadPool& pool);
// Backward of lora_forward: adds to m's gradients and dx += factor * (dy B) A.
void lora_backward(TrainableMatrix& m, float factor, const float* x, const float* low, const float* dy, size_t n,
                   float* dx, ThreadPool& pool);

}  // namespace frugal
