#include "tensor/packed_weights.h"

#include <cstring>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/k_scales.h"
#include "tensor/matmul.h"

namespace frugal {

namespace {

constexpr size_t kBlock = detail::kLegacyBlockElements;
constexpr size_t kRows = kPackedGroupRows;

// One stored block's parts, whatever the format.
struct BlockParts {
  uint16_t d = 0, m = 0;
  uint32_t qh = 0;
  uint8_t qs[32] = {};  // Q8_0: the 32 quants; nibble formats: the 16 qs bytes
};

struct Traits {
  TensorType type;
  size_t stored_bytes;  // per block
  size_t vectors;       // quant vectors per group and block
  bool high_bits;       // Q5: one more vector of fifth bits
  bool min;             // _1 formats: 16 fp16 m after the d
};

bool is_k(PackedLayout layout) { return layout == PackedLayout::Q4_Kx16 || layout == PackedLayout::Q6_Kx16; }

Traits traits_of(PackedLayout layout) {
  switch (layout) {
    case PackedLayout::Q8_0x16: return {TensorType::Q8_0, 34, 8, false, false};
    case PackedLayout::Q4_0x16: return {TensorType::Q4_0, 18, 4, false, false};
    case PackedLayout::Q4_1x16: return {TensorType::Q4_1, 20, 4, false, true};
    case PackedLayout::Q5_0x16: return {TensorType::Q5_0, 22, 4, true, false};
    case PackedLayout::Q5_1x16: return {TensorType::Q5_1, 24, 4, true, true};
    case PackedLayout::Q4_Kx16: return {TensorType::Q4_K, 144, 32, false, false};
    case PackedLayout::Q6_Kx16: return {TensorType::Q6_K, 210, 48, false, false};
    case PackedLayout::None: break;
  }
  throw Error("no repacked layout");
}

// Fifth-bit order (see the header): element e's bit moves to bit
// 8 * (e % 4) + 4 + (e % 16) / 4 for e < 16, 8 * (e % 4) + (e - 16) / 4 after.
unsigned fifth_bit_position(unsigned e) { return e < 16 ? 8 * (e % 4) + 4 + e / 4 : 8 * (e % 4) + (e - 16) / 4; }

BlockParts read_block(const Traits& t, const uint8_t* p) {
  BlockParts b;
  std::memcpy(&b.d, p, 2);
  size_t at = 2;
  if (t.min) {
    std::memcpy(&b.m, p + at, 2);
    at += 2;
  }
  if (t.high_bits) {
    std::memcpy(&b.qh, p + at, 4);
    at += 4;
  }
  std::memcpy(b.qs, p + at, t.vectors * 4);
  return b;
}

void write_block(const Traits& t, const BlockParts& b, uint8_t* p) {
  std::memcpy(p, &b.d, 2);
  size_t at = 2;
  if (t.min) {
    std::memcpy(p + at, &b.m, 2);
    at += 2;
  }
  if (t.high_bits) {
    std::memcpy(p + at, &b.qh, 4);
    at += 4;
  }
  std::memcpy(p + at, b.qs, t.vectors * 4);
}

void check_packable(PackedLayout layout, size_t cols) {
  if (layout == PackedLayout::None || cols % packed_block_elements(layout) != 0) {
    throw Error(fmt::format("cannot repack a matrix of {} columns as {}", cols, packed_layout_name(layout)));
  }
}

// Q6_Kx16: the three vectors a step of the kernel reads (ql bytes
// 64h + 4i.., 64h + 32 + 4i.., qh bytes 32h + 4i..), side by side in the
// order it reads them, so that decode streams forward through memory.
size_t q6_k_slot(size_t h, size_t i) { return 192 * (8 * h + i); }

// One group and super-block of a K format from the 16 rows' stored blocks.
void pack_k_block(PackedLayout layout, const uint8_t* const* stored, uint8_t* dst) {
  for (size_t r = 0; r < kRows; ++r) {
    if (layout == PackedLayout::Q4_Kx16) {
      detail::BlockQ4_K b;
      std::memcpy(&b, stored[r], sizeof b);
      for (size_t v = 0; v < 32; ++v) std::memcpy(dst + 64 * v + 4 * r, b.qs + 4 * v, 4);
      for (int s = 0; s < 8; ++s) {
        uint8_t scale, min;
        detail::unpack_scale_min_k4(s, b.scales, &scale, &min);
        dst[2048 + 16 * s + r] = scale;
        dst[2176 + 16 * s + r] = min;
      }
      std::memcpy(dst + 2304 + 2 * r, &b.d, 2);
      std::memcpy(dst + 2336 + 2 * r, &b.dmin, 2);
    } else {
      detail::BlockQ6_K b;
      std::memcpy(&b, stored[r], sizeof b);
      for (size_t h = 0; h < 2; ++h) {
        for (size_t i = 0; i < 8; ++i) {
          uint8_t* slot = dst + q6_k_slot(h, i);
          std::memcpy(slot + 4 * r, b.ql + 64 * h + 4 * i, 4);
          std::memcpy(slot + 64 + 4 * r, b.ql + 64 * h + 32 + 4 * i, 4);
          std::memcpy(slot + 128 + 4 * r, b.qh + 32 * h + 4 * i, 4);
        }
      }
      for (size_t s = 0; s < 16; ++s) dst[3072 + 16 * s + r] = static_cast<uint8_t>(b.scales[s]);
      std::memcpy(dst + 3328 + 2 * r, &b.d, 2);
    }
  }
}

// Row r's stored block back from a group and super-block.
void unpack_k_block(PackedLayout layout, const uint8_t* src, size_t r, uint8_t* stored) {
  if (layout == PackedLayout::Q4_Kx16) {
    detail::BlockQ4_K b{};
    for (size_t v = 0; v < 32; ++v) std::memcpy(b.qs + 4 * v, src + 64 * v + 4 * r, 4);
    for (int s = 0; s < 8; ++s) detail::pack_scale_min_k4(s, src[2048 + 16 * s + r], src[2176 + 16 * s + r], b.scales);
    std::memcpy(&b.d, src + 2304 + 2 * r, 2);
    std::memcpy(&b.dmin, src + 2336 + 2 * r, 2);
    std::memcpy(stored, &b, sizeof b);
  } else {
    detail::BlockQ6_K b{};
    for (size_t h = 0; h < 2; ++h) {
      for (size_t i = 0; i < 8; ++i) {
        const uint8_t* slot = src + q6_k_slot(h, i);
        std::memcpy(b.ql + 64 * h + 4 * i, slot + 4 * r, 4);
        std::memcpy(b.ql + 64 * h + 32 + 4 * i, slot + 64 + 4 * r, 4);
        std::memcpy(b.qh + 32 * h + 4 * i, slot + 128 + 4 * r, 4);
      }
    }
    for (size_t s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(src[3072 + 16 * s + r]);
    std::memcpy(&b.d, src + 3328 + 2 * r, 2);
    std::memcpy(stored, &b, sizeof b);
  }
}

}  // namespace

size_t packed_block_elements(PackedLayout layout) { return is_k(layout) ? 256 : kBlock; }

PackedLayout packed_layout_for(TensorType type) {
  switch (type) {
    case TensorType::Q8_0: return PackedLayout::Q8_0x16;
    case TensorType::Q4_0: return PackedLayout::Q4_0x16;
    case TensorType::Q4_1: return PackedLayout::Q4_1x16;
    case TensorType::Q5_0: return PackedLayout::Q5_0x16;
    case TensorType::Q5_1: return PackedLayout::Q5_1x16;
    case TensorType::Q4_K: return PackedLayout::Q4_Kx16;
    case TensorType::Q6_K: return PackedLayout::Q6_Kx16;
    default: return PackedLayout::None;
  }
}

const char* packed_layout_name(PackedLayout layout) {
  switch (layout) {
    case PackedLayout::Q8_0x16: return "Q8_0x16";
    case PackedLayout::Q4_0x16: return "Q4_0x16";
    case PackedLayout::Q4_1x16: return "Q4_1x16";
    case PackedLayout::Q5_0x16: return "Q5_0x16";
    case PackedLayout::Q5_1x16: return "Q5_1x16";
    case PackedLayout::Q4_Kx16: return "Q4_Kx16";
    case PackedLayout::Q6_Kx16: return "Q6_Kx16";
    case PackedLayout::None: break;
  }
  return "stored";
}

size_t packed_group_block_bytes(PackedLayout layout) {
  if (layout == PackedLayout::None) return 0;
  if (layout == PackedLayout::Q4_Kx16) return 2368;
  return kRows * traits_of(layout).stored_bytes;
}

size_t packed_matrix_bytes(PackedLayout layout, size_t rows, size_t cols) {
  const size_t groups = (rows + kRows - 1) / kRows;
  return groups * (cols / packed_block_elements(layout)) * packed_group_block_bytes(layout);
}

void pack_matrix_groups(PackedLayout layout, const WeightMatrix& weight, size_t group_begin, size_t group_end,
                        uint8_t* out) {
  const size_t cols = static_cast<size_t>(weight.cols), rows = static_cast<size_t>(weight.rows);
  check_packable(layout, cols);
  const Traits t = traits_of(layout);
  const size_t blocks = cols / packed_block_elements(layout), block_bytes = packed_group_block_bytes(layout);
  const size_t scales_at = 64 * t.vectors + (t.high_bits ? 64 : 0);
  if (is_k(layout)) {
    for (size_t g = group_begin; g < group_end; ++g) {
      const uint8_t* stored[kRows];
      for (size_t k = 0; k < blocks; ++k) {
        for (size_t r = 0; r < kRows; ++r) {
          const size_t source = kRows * g + r < rows ? kRows * g + r : rows - 1;
          stored[r] = weight.data + source * weight.row_bytes + k * t.stored_bytes;
        }
        pack_k_block(layout, stored, out + (g * blocks + k) * block_bytes);
      }
    }
    return;
  }
  for (size_t g = group_begin; g < group_end; ++g) {
    const uint8_t* row[kRows];
    for (size_t r = 0; r < kRows; ++r) {
      const size_t source = kRows * g + r < rows ? kRows * g + r : rows - 1;
      row[r] = weight.data + source * weight.row_bytes;
    }
    uint8_t* dst = out + g * blocks * block_bytes;
    for (size_t k = 0; k < blocks; ++k, dst += block_bytes) {
      for (size_t r = 0; r < kRows; ++r) {
        BlockParts b = read_block(t, row[r] + k * t.stored_bytes);
        if (t.type == TensorType::Q8_0) {
          for (size_t i = 0; i < 32; ++i) b.qs[i] ^= 0x80;  // unsigned for dpbusd
        }
        for (size_t j = 0; j < t.vectors; ++j) std::memcpy(dst + 64 * j + 4 * r, b.qs + 4 * j, 4);
        if (t.high_bits) {
          uint32_t moved = 0;
          for (unsigned e = 0; e < 32; ++e) moved |= ((b.qh >> e) & 1u) << fifth_bit_position(e);
          std::memcpy(dst + 64 * t.vectors + 4 * r, &moved, 4);
        }
        std::memcpy(dst + scales_at + 2 * r, &b.d, 2);
        if (t.min) std::memcpy(dst + scales_at + 32 + 2 * r, &b.m, 2);
      }
    }
  }
}

void dequantize_packed_row(PackedLayout layout, const uint8_t* packed, size_t cols, size_t row, float* out) {
  check_packable(layout, cols);
  const Traits t = traits_of(layout);
  const size_t blocks = cols / packed_block_elements(layout), block_bytes = packed_group_block_bytes(layout);
  const size_t scales_at = 64 * t.vectors + (t.high_bits ? 64 : 0), r = row % kRows;
  const uint8_t* src = packed + (row / kRows) * blocks * block_bytes;
  if (is_k(layout)) {
    uint8_t stored[210];
    for (size_t k = 0; k < blocks; ++k, src += block_bytes) {
      unpack_k_block(layout, src, r, stored);
      dequantize_row(t.type, stored, out + k * 256, 256);
    }
    return;
  }
  // Each block rebuilt as stored, then dequantized as stored: the same
  // values bit for bit.
  uint8_t stored[34];
  for (size_t k = 0; k < blocks; ++k, src += block_bytes) {
    BlockParts b;
    for (size_t j = 0; j < t.vectors; ++j) std::memcpy(b.qs + 4 * j, src + 64 * j + 4 * r, 4);
    if (t.type == TensorType::Q8_0) {
      for (size_t i = 0; i < 32; ++i) b.qs[i] ^= 0x80;
    }
    if (t.high_bits) {
      uint32_t moved;
      std::memcpy(&moved, src + 64 * t.vectors + 4 * r, 4);
      for (unsigned e = 0; e < 32; ++e) b.qh |= ((moved >> fifth_bit_position(e)) & 1u) << e;
    }
    std::memcpy(&b.d, src + scales_at + 2 * r, 2);
    if (t.min) std::memcpy(&b.m, src + scales_at + 32 + 2 * r, 2);
    write_block(t, b, stored);
    dequantize_row(t.type, stored, out + k * kBlock, kBlock);
  }
}

}  // namespace frugal
