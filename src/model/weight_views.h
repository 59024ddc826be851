// Views of a GGUF file's tensors as weights, checked against the shapes a
// model expects (shared by the decoder and the BERT encoder).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "tensor/matmul.h"

namespace frugal {

// A 2-D weight of `rows` rows of `cols` values, read in place; throws
// FormatError naming the tensor for another shape, UnsupportedError for a
// type frugal cannot multiply with.
WeightMatrix matrix_view(const GgufFile& file, const std::string& name, int64_t cols, int64_t rows);

// Small vectors (norms, biases) are converted to F32 once at load; empty
// when the tensor is absent and not `required`.
std::vector<float> vector_copy(const GgufFile& file, const std::string& name, int64_t size, bool required = true);

// rows[t] += bias for each of `count` rows of bias.size() values (nothing
// for an empty bias: a model without that bias).
void add_bias(float* rows, size_t count, const std::vector<float>& bias);

}  // namespace frugal
