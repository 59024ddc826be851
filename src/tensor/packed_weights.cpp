#include "tensor/packed_weights.h"

#include <cstring>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/matmul.h"

namespace frugal {

namespace {

using detail::BlockQ4_0;
using detail::BlockQ8_0;
constexpr size_t kBlock = detail::kLegacyBlockElements;
constexpr size_t kRows = kPackedGroupRows;

// Quant vectors per group and block (64 bytes each), before the scales.
size_t quant_vectors(PackedLayout layout) { return layout == PackedLayout::Q8_0x16 ? 8 : 4; }

void check_packable(PackedLayout layout, size_t cols) {
  if (layout == PackedLayout::None || cols % kBlock != 0) {
    throw Error(fmt::format("cannot repack a matrix of {} columns as {}", cols, packed_layout_name(layout)));
  }
}

}  // namespace

PackedLayout packed_layout_for(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return PackedLayout::Q8_0x16;
    case TensorType::Q4_0: return PackedLayout::Q4_0x16;
    default: return PackedLayout::None;
  }
}

const char* packed_layout_name(PackedLayout layout) {
  switch (layout) {
    case PackedLayout::Q8_0x16: return "Q8_0x16";
    case PackedLayout::Q4_0x16: return "Q4_0x16";
    case PackedLayout::None: break;
  }
  return "stored";
}

size_t packed_group_block_bytes(PackedLayout layout) {
  if (layout == PackedLayout::None) return 0;
  return 64 * quant_vectors(layout) + 2 * kRows;
}

size_t packed_matrix_bytes(PackedLayout layout, size_t rows, size_t cols) {
  const size_t groups = (rows + kRows - 1) / kRows;
  return groups * (cols / kBlock) * packed_group_block_bytes(layout);
}

void pack_matrix_groups(PackedLayout layout, const WeightMatrix& weight, size_t group_begin, size_t group_end,
                        uint8_t* out) {
  const size_t cols = static_cast<size_t>(weight.cols), rows = static_cast<size_t>(weight.rows);
  check_packable(layout, cols);
  const size_t blocks = cols / kBlock, block_bytes = packed_group_block_bytes(layout);
  const size_t vectors = quant_vectors(layout);
  for (size_t g = group_begin; g < group_end; ++g) {
    const uint8_t* row[kRows];
    for (size_t r = 0; r < kRows; ++r) {
      const size_t source = kRows * g + r < rows ? kRows * g + r : rows - 1;
      row[r] = weight.data + source * weight.row_bytes;
    }
    uint8_t* dst = out + g * blocks * block_bytes;
    for (size_t k = 0; k < blocks; ++k, dst += block_bytes) {
      uint16_t* scales = reinterpret_cast<uint16_t*>(dst + 64 * vectors);
      for (size_t r = 0; r < kRows; ++r) {
        if (layout == PackedLayout::Q8_0x16) {
          BlockQ8_0 b;
          std::memcpy(&b, row[r] + k * sizeof b, sizeof b);
          for (size_t j = 0; j < vectors; ++j) {
            for (size_t i = 0; i < 4; ++i) dst[64 * j + 4 * r + i] = static_cast<uint8_t>(b.qs[4 * j + i] ^ 0x80);
          }
          std::memcpy(scales + r, &b.d, 2);
        } else {
          BlockQ4_0 b;
          std::memcpy(&b, row[r] + k * sizeof b, sizeof b);
          for (size_t j = 0; j < vectors; ++j) std::memcpy(dst + 64 * j + 4 * r, b.qs + 4 * j, 4);
          std::memcpy(scales + r, &b.d, 2);
        }
      }
    }
  }
}

void dequantize_packed_row(PackedLayout layout, const uint8_t* packed, size_t cols, size_t row, float* out) {
  check_packable(layout, cols);
  const size_t blocks = cols / kBlock, block_bytes = packed_group_block_bytes(layout);
  const size_t vectors = quant_vectors(layout), r = row % kRows;
  const uint8_t* src = packed + (row / kRows) * blocks * block_bytes;
  for (size_t k = 0; k < blocks; ++k, src += block_bytes, out += kBlock) {
    uint16_t d_bits;
    std::memcpy(&d_bits, src + 64 * vectors + 2 * r, 2);
    const float d = f16_to_f32(d_bits);
    for (size_t j = 0; j < vectors; ++j) {
      for (size_t i = 0; i < 4; ++i) {
        const uint8_t byte = src[64 * j + 4 * r + i];
        if (layout == PackedLayout::Q8_0x16) {
          out[4 * j + i] = d * static_cast<float>(static_cast<int8_t>(byte ^ 0x80));
        } else {
          out[4 * j + i] = d * static_cast<float>((byte & 0x0F) - 8);
          out[16 + 4 * j + i] = d * static_cast<float>((byte >> 4) - 8);
        }
      }
    }
  }
}

}  // namespace frugal
