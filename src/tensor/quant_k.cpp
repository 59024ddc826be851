// K formats (256-element super-blocks): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the
// Q8_K activation format. Dequantizers walk elements in exactly the order of
// ggml's `dequantize_row_*`; quantizers port ggml's `quantize_row_*_ref`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/k_scales.h"
#include "tensor/kernels.h"
#include "tensor/kquant_search.h"

namespace frugal::detail {
namespace {

constexpr int kSuper = static_cast<int>(kSuperBlockElements);

}  // namespace

// ---------------------------------------------------------------- dequantize

void dequantize_q2_k(const void* src, float* dst, size_t blocks) {
  float* y = dst;
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ2_K>(src, i);
    const float d = f16_to_f32(block.d);
    const float dmin = f16_to_f32(block.dmin);
    const uint8_t* q = block.qs;
    int is = 0;
    for (int half = 0; half < 2; ++half) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 per 32 bytes
          const uint8_t sc = block.scales[is++];
          const float dl = d * (sc & 0x0F);
          const float ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
      q += 32;
    }
  }
}

void dequantize_q3_k(const void* src, float* dst, size_t blocks) {
  float* y = dst;
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ3_K>(src, i);
    const float d_all = f16_to_f32(block.d);
    const uint8_t* q = block.qs;
    uint8_t mask = 1;
    int is = 0;
    for (int half = 0; half < 2; ++half) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d_all * q3_k_scale(block.scales, is++);
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int value = ((q[l] >> shift) & 3) - ((block.hmask[l] & mask) ? 0 : 4);
            *y++ = dl * value;
          }
        }
        mask = static_cast<uint8_t>(mask << 1);
      }
      q += 32;
    }
  }
}

void dequantize_q4_k(const void* src, float* dst, size_t blocks) {
  float* y = dst;
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ4_K>(src, i);
    const float d = f16_to_f32(block.d);
    const float dmin = f16_to_f32(block.dmin);
    const uint8_t* q = block.qs;
    for (int is = 0; is < 8; is += 2) {
      uint8_t sc;
      uint8_t m;
      unpack_scale_min_k4(is, block.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = dmin * m;
      unpack_scale_min_k4(is + 1, block.scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, size_t blocks) {
  float* y = dst;
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ5_K>(src, i);
    const float d = f16_to_f32(block.d);
    const float dmin = f16_to_f32(block.dmin);
    const uint8_t* ql = block.qs;
    const uint8_t* qh = block.qh;
    uint8_t u1 = 1;
    uint8_t u2 = 2;
    for (int is = 0; is < 8; is += 2) {
      uint8_t sc;
      uint8_t m;
      unpack_scale_min_k4(is, block.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = dmin * m;
      unpack_scale_min_k4(is + 1, block.scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      ql += 32;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, size_t blocks) {
  float* y = dst;
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ6_K>(src, i);
    const float d = f16_to_f32(block.d);
    const uint8_t* ql = block.ql;
    const uint8_t* qh = block.qh;
    const int8_t* sc = block.scales;
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void dequantize_q8_k(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ8_K>(src, i);
    for (int j = 0; j < kSuper; ++j) dst[i * kSuper + j] = block.d * block.qs[j];
  }
}

// ------------------------------------------------------------------ quantize

namespace {

// Q2_K/Q3_K: element e of the 256 levels goes to bits 2*((e%128)/32) of
// qs[32*(e/128) + e%32].
void pack_2bit_levels(const uint8_t* levels, uint8_t* qs) {
  for (int j = 0; j < kSuper; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(levels[j + l] | (levels[j + l + 32] << 2) |
                                           (levels[j + l + 64] << 4) | (levels[j + l + 96] << 6));
    }
  }
}

}  // namespace

void quantize_q2_k(const float* src, void* dst, size_t blocks) {
  constexpr float kScaleLevels = 15.f;  // 4-bit sub-block scales and mins
  for (size_t i = 0; i < blocks; ++i) {
    const float* x = src + i * kSuper;
    BlockQ2_K block{};
    uint8_t levels[kSuper];
    uint8_t scratch[16];
    float weights[16];
    float mins[16];
    float scales[16];
    float max_scale = 0.0f;  // scales and mins are both >= 0 here
    float max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_levels_with_min(16, 3, x + 16 * j, weights, levels + 16 * j, &mins[j], scratch, -0.5f,
                                      0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = kScaleLevels / max_scale;
      for (int j = 0; j < 16; ++j) block.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      block.d = f32_to_f16(max_scale / kScaleLevels);
    }
    if (max_min > 0) {
      const float iscale = kScaleLevels / max_min;
      for (int j = 0; j < 16; ++j) block.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
      block.dmin = f32_to_f16(max_min / kScaleLevels);
    }
    // Re-pick levels against the scales as stored (rounded to 4 bits, fp16).
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(block.d) * (block.scales[j] & 0x0F);
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(block.dmin) * (block.scales[j] >> 4);
      for (int l = 0; l < 16; ++l) {
        levels[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + l] + dm) / d), 0, 3));
      }
    }
    pack_2bit_levels(levels, block.qs);
    store_block(dst, i, block);
  }
}

void quantize_q3_k(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const float* x = src + i * kSuper;
    BlockQ3_K block{};
    int8_t levels[kSuper];
    float scales[16];
    float max_scale = 0.0f;  // signed: the scale of largest magnitude
    float amax = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric_levels_q3(16, 4, x + 16 * j, levels + 16 * j, true);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        const int l = std::clamp(static_cast<int>(static_cast<int8_t>(nearest_int(iscale * scales[j]))), -32, 31) + 32;
        if (j < 8) {
          block.scales[j] = static_cast<uint8_t>(l & 0x0F);
        } else {
          block.scales[j - 8] |= static_cast<uint8_t>((l & 0x0F) << 4);
        }
        block.scales[j % 4 + 8] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      block.d = f32_to_f16(1 / iscale);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(block.d) * q3_k_scale(block.scales, j);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        levels[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
      }
    }
    // Levels are 0..7 now: bit 2 goes to hmask, bits 0-1 to qs.
    uint8_t low_bits[kSuper];
    for (int e = 0; e < kSuper; ++e) {
      if (levels[e] > 3) block.hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
      low_bits[e] = static_cast<uint8_t>(levels[e] & 3);
    }
    pack_2bit_levels(low_bits, block.qs);
    store_block(dst, i, block);
  }
}

namespace {

// Q4_K and Q5_K share everything but the level count and the packing.
void quantize_q4_q5_k_levels(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out,
                             uint16_t* dmin_out, uint8_t* packed_scales, uint8_t* levels) {
  uint8_t scratch[32];
  float weights[32];
  float mins[8];
  float scales[8];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_levels_with_min(32, nmax, x + 32 * j, weights, levels + 32 * j, &mins[j], scratch, rmin, 0.1f,
                                    nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.0f;
  std::memset(packed_scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int into a uint8_t before clamping; keep that.
    const auto ls = static_cast<uint8_t>(std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j]))));
    const auto lm = static_cast<uint8_t>(std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j]))));
    pack_scale_min_k4(j, ls, lm, packed_scales);
  }
  *d_out = f32_to_f16(max_scale / 63.f);
  *dmin_out = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc;
    uint8_t m;
    unpack_scale_min_k4(j, packed_scales, &sc, &m);
    const float d = f16_to_f32(*d_out) * sc;
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(*dmin_out) * m;
    for (int l = 0; l < 32; ++l) {
      levels[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

void quantize_q4_k(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    BlockQ4_K block{};
    uint8_t levels[kSuper];
    quantize_q4_q5_k_levels(src + i * kSuper, 15, -1.0f, 20, &block.d, &block.dmin, block.scales, levels);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        block.qs[32 * c + l] = static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + l + 32] << 4));
      }
    }
    store_block(dst, i, block);
  }
}

void quantize_q5_k(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    BlockQ5_K block{};
    uint8_t levels[kSuper];
    quantize_q4_q5_k_levels(src + i * kSuper, 31, -0.5f, 15, &block.d, &block.dmin, block.scales, levels);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int low = levels[64 * c + l];
        const int high = levels[64 * c + l + 32];
        block.qs[32 * c + l] = static_cast<uint8_t>((low & 0x0F) | ((high & 0x0F) << 4));
        block.qh[l] |= static_cast<uint8_t>(((low >> 4) << (2 * c)) | ((high >> 4) << (2 * c + 1)));
      }
    }
    store_block(dst, i, block);
  }
}

void quantize_q6_k(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const float* x = src + i * kSuper;
    BlockQ6_K block{};
    int8_t levels[kSuper];
    float scales[16];
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric_levels(16, 32, x + 16 * j, levels + 16 * j, 1, nullptr);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < 1e-15f) {  // all (near) zero: an all-zero block
      store_block(dst, i, block);
      continue;
    }
    const float iscale = -128.f / max_scale;
    block.d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; ++j) block.scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(block.d) * block.scales[j];
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        levels[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* lv = levels + 128 * h;
      uint8_t* ql = block.ql + 64 * h;
      uint8_t* qh = block.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((lv[l] & 0x0F) | ((lv[l + 64] & 0x0F) << 4));
        ql[l + 32] = static_cast<uint8_t>((lv[l + 32] & 0x0F) | ((lv[l + 96] & 0x0F) << 4));
        qh[l] = static_cast<uint8_t>((lv[l] >> 4) | ((lv[l + 32] >> 4) << 2) | ((lv[l + 64] >> 4) << 4) |
                                     ((lv[l + 96] >> 4) << 6));
      }
    }
    store_block(dst, i, block);
  }
}

void quantize_q8_k(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const float* x = src + i * kSuper;
    BlockQ8_K block{};
    const float max = signed_absmax(x, kSuper);
    if (max != 0.0f) {
      // -127 (not -128) keeps every level in [-127, 127], as ggml does.
      const float iscale = -127.f / max;
      for (int j = 0; j < kSuper; ++j) block.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
      for (int j = 0; j < 16; ++j) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += block.qs[16 * j + l];
        block.bsums[j] = static_cast<int16_t>(sum);
      }
      block.d = 1 / iscale;
    }
    store_block(dst, i, block);
  }
}

}  // namespace frugal::detail
