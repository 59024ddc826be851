// Fewer KV heads: per layer, the plan's turns are folded into the
// projections (keys and queries per rotary pair, values and the output
// projection's columns by the value turn), the query heads are reordered so
// that each new KV head's queries sit together, and each group's key and
// value rows are averaged. Everything else in the file is copied.
#include "retrofit/kv_head_merge.h"

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "retrofit/merge_plan.h"

namespace frugal {

namespace retrofit {

namespace {

// A tensor as F32 rows: rows x cols (cols = shape[0]; a vector is 1 row).
struct Rows {
  size_t rows = 0, cols = 0;
  std::vector<float> data;
  float* row(size_t r) { return data.data() + r * cols; }
};

Rows read_rows(const GgufTensor& t) {
  Rows m;
  m.cols = static_cast<size_t>(t.shape[0]);
  m.rows = t.n_dims > 1 ? static_cast<size_t>(t.shape[1]) : 1;
  m.data.resize(m.rows * m.cols);
  const size_t row_bytes = tensor_row_bytes(t.type, m.cols);
  for (size_t r = 0; r < m.rows; ++r) dequantize_row(t.type, t.data + r * row_bytes, m.row(r), m.cols);
  return m;
}

std::vector<uint8_t> encode_rows(Rows& m, TensorType type) {
  const size_t row_bytes = tensor_row_bytes(type, m.cols);
  std::vector<uint8_t> bytes(m.rows * row_bytes);
  for (size_t r = 0; r < m.rows; ++r) quantize_row(type, m.row(r), bytes.data() + r * row_bytes, m.cols);
  return bytes;
}

// Rows (d0, d1) of a head turned by a pair turn with scale^power.
void turn_pair_rows(float* r0, float* r1, size_t cols, const PairTurn& turn, int power) {
  const double scale = power > 0 ? turn.scale : 1.0 / turn.scale;
  for (size_t i = 0; i < cols; ++i) {
    const double x = r0[i], y = r1[i];
    r0[i] = static_cast<float>(scale * (x * turn.cos - y * turn.sin));
    r1[i] = static_cast<float>(scale * (x * turn.sin + y * turn.cos));
  }
}

// The head's hs rows (first_row on) replaced by value^T rows: row i becomes
// sum_j value[j][i] row j.
void turn_value_rows(Rows& m, size_t first_row, size_t hs, const std::vector<double>& value) {
  std::vector<double> out(hs * m.cols, 0.0);
  for (size_t i = 0; i < hs; ++i) {
    for (size_t j = 0; j < hs; ++j) {
      const double w = value[j * hs + i];
      const float* src = m.row(first_row + j);
      for (size_t c = 0; c < m.cols; ++c) out[i * m.cols + c] += w * src[c];
    }
  }
  for (size_t i = 0; i < hs; ++i) {
    for (size_t c = 0; c < m.cols; ++c) m.row(first_row + i)[c] = static_cast<float>(out[i * m.cols + c]);
  }
}

// Columns [first, first + hs) of every row replaced by (row block) value.
void turn_output_columns(Rows& m, size_t first, size_t hs, const std::vector<double>& value) {
  std::vector<double> block(hs);
  for (size_t r = 0; r < m.rows; ++r) {
    float* row = m.row(r) + first;
    for (size_t i = 0; i < hs; ++i) {
      double sum = 0;
      for (size_t j = 0; j < hs; ++j) sum += row[j] * value[j * hs + i];
      block[i] = sum;
    }
    for (size_t i = 0; i < hs; ++i) row[i] = static_cast<float>(block[i]);
  }
}

// The new tensors of one layer, by name.
using LayerTensors = std::map<std::string, std::pair<Rows, const GgufTensor*>>;

void apply_plan(const ModelConfig& c, const LayerPlan& plan, LayerTensors& t, bool average) {
  const auto hs = static_cast<size_t>(c.head_size), heads = static_cast<size_t>(c.kv_head_count);
  const size_t per_kv = static_cast<size_t>(c.head_count) / heads;
  const auto pairs = rotary_pairs(c);
  const auto get = [&](const std::string& name) -> Rows* {
    const auto it = t.find(name);
    return it == t.end() ? nullptr : &it->second.first;
  };
  Rows *q = get("attn_q.weight"), *k = get("attn_k.weight"), *v = get("attn_v.weight"), *o = get("attn_output.weight");
  Rows *qb = get("attn_q.bias"), *kb = get("attn_k.bias"), *vb = get("attn_v.bias");
  // Biases are one row: seen as hs x 1 per head, turned the same way.
  const auto as_column = [](Rows* bias) {
    Rows column;
    column.rows = bias->cols;
    column.cols = 1;
    column.data = bias->data;
    return column;
  };
  Rows qc = qb ? as_column(qb) : Rows{}, kc = kb ? as_column(kb) : Rows{}, vc = vb ? as_column(vb) : Rows{};
  // 1. Turns, folded in: the model still computes what it did.
  for (size_t h = 0; h < heads; ++h) {
    const HeadTurn& turn = plan.turns[h];
    for (size_t p = 0; p < turn.key.size(); ++p) {
      const auto [d0, d1] = pairs[p];
      for (Rows* m : {k, kb ? &kc : nullptr}) {
        if (m) turn_pair_rows(m->row(h * hs + d0), m->row(h * hs + d1), m->cols, turn.key[p], 1);
      }
      for (size_t qh = h * per_kv; qh < (h + 1) * per_kv; ++qh) {
        for (Rows* m : {q, qb ? &qc : nullptr}) {
          if (m) turn_pair_rows(m->row(qh * hs + d0), m->row(qh * hs + d1), m->cols, turn.key[p], -1);
        }
      }
    }
    if (!turn.value.empty()) {
      turn_value_rows(*v, h * hs, hs, turn.value);
      if (vb) turn_value_rows(vc, h * hs, hs, turn.value);
      for (size_t qh = h * per_kv; qh < (h + 1) * per_kv; ++qh) turn_output_columns(*o, qh * hs, hs, turn.value);
    }
  }
  // 2. Query heads reordered group by group (rows of Q, columns of O), and
  // the groups' key and value rows averaged (or all kept, in group order).
  std::vector<size_t> query_order, kv_order;
  for (const auto& group : plan.groups) {
    for (const int64_t h : group) {
      kv_order.push_back(static_cast<size_t>(h));
      for (size_t qh = static_cast<size_t>(h) * per_kv; qh < (static_cast<size_t>(h) + 1) * per_kv; ++qh) {
        query_order.push_back(qh);
      }
    }
  }
  const auto reorder_rows = [hs](Rows& m, const std::vector<size_t>& order) {
    Rows out = m;
    for (size_t n = 0; n < order.size(); ++n) {
      std::copy(m.row(order[n] * hs), m.row(order[n] * hs) + hs * m.cols, out.row(n * hs));
    }
    m = std::move(out);
  };
  reorder_rows(*q, query_order);
  if (qb) reorder_rows(qc, query_order);
  {
    Rows out = *o;
    for (size_t r = 0; r < o->rows; ++r) {
      for (size_t n = 0; n < query_order.size(); ++n) {
        std::copy(o->row(r) + query_order[n] * hs, o->row(r) + (query_order[n] + 1) * hs, out.row(r) + n * hs);
      }
    }
    *o = std::move(out);
  }
  const auto merge_rows = [&](Rows& m) {
    if (!average) {
      reorder_rows(m, kv_order);
      return;
    }
    Rows out;
    out.cols = m.cols;
    out.rows = plan.groups.size() * hs;
    out.data.assign(out.rows * out.cols, 0.0f);
    for (size_t j = 0; j < plan.groups.size(); ++j) {
      const float share = 1.0f / static_cast<float>(plan.groups[j].size());
      for (const int64_t h : plan.groups[j]) {
        for (size_t i = 0; i < hs * m.cols; ++i) out.row(j * hs)[i] += share * m.row(static_cast<size_t>(h) * hs)[i];
      }
    }
    m = std::move(out);
  };
  merge_rows(*k);
  merge_rows(*v);
  for (auto [column, bias] : {std::pair{&qc, qb}, std::pair{&kc, kb}, std::pair{&vc, vb}}) {
    if (!bias) continue;
    if (column != &qc) merge_rows(*column);
    bias->cols = column->rows;
    bias->data = column->data;
  }
}

}  // namespace

RetrofitReport merge_kv_heads(const std::filesystem::path& input, const std::filesystem::path& output,
                              const RetrofitOptions& options, bool average) {
  const auto start = std::chrono::steady_clock::now();
  if (std::filesystem::exists(output) && std::filesystem::equivalent(input, output)) {
    throw Error(fmt::format("{}: the output would overwrite the input; write to another file", output.string()));
  }
  ModelOptions load;
  load.threads = options.threads;
  load.repacking = WeightRepacking::Off;
  std::unique_ptr<Model> model = Model::load(input, load);
  const ModelConfig& c = model->config();
  if (options.kv_heads <= 0 || c.kv_head_count % options.kv_heads != 0) {
    throw Error(fmt::format("--kv-heads {}: the model has {} KV heads; give a count that divides it ({})",
                            options.kv_heads, c.kv_head_count,
                            c.kv_head_count == 1 ? "1" : fmt::format("1 ... {}", c.kv_head_count)));
  }
  if (options.merge == HeadMerge::Aligned && options.calibration.empty()) {
    throw Error("the aligned merge measures the heads on a calibration text: give one (--calibration FILE), or "
                "use --merge mean");
  }
  Activations activations;
  if (options.merge == HeadMerge::Aligned) activations = measure_activations(*model, options.calibration);

  RetrofitReport report;
  report.kv_heads_before = c.kv_head_count;
  report.kv_heads_after = average ? options.kv_heads : c.kv_head_count;
  const auto per_token = [&](int64_t heads) {
    return static_cast<size_t>(2 * c.layer_count * heads * c.head_size) * sizeof(float);
  };
  report.kv_bytes_per_token_before = per_token(c.kv_head_count);
  report.kv_bytes_per_token_after = per_token(report.kv_heads_after);

  const GgufFile& file = model->file();
  static const char* const kAttention[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                           "attn_q.bias",   "attn_k.bias",   "attn_v.bias"};
  std::map<std::string, std::pair<std::vector<uint8_t>, std::vector<int64_t>>> replaced;
  for (int64_t layer = 0; layer < c.layer_count; ++layer) {
    const LayerPlan plan = options.merge == HeadMerge::Aligned
                               ? aligned_plan(c, options.kv_heads, activations, layer, !c.qk_norm)
                               : mean_plan(c, options.kv_heads);
    report.groups.push_back(plan.groups);
    LayerTensors tensors;
    for (const char* name : kAttention) {
      const GgufTensor* t = file.find_tensor(fmt::format("blk.{}.{}", layer, name));
      if (t) tensors.emplace(name, std::pair{read_rows(*t), t});
    }
    for (const char* name : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"}) {
      if (!tensors.count(name)) throw FormatError(fmt::format("layer {} has no {}", layer, name));
    }
    apply_plan(c, plan, tensors, average);
    for (auto& [name, entry] : tensors) {
      auto& [rows, source] = entry;
      std::vector<int64_t> shape{static_cast<int64_t>(rows.cols)};
      if (source->n_dims > 1) shape.push_back(static_cast<int64_t>(rows.rows));
      replaced[fmt::format("blk.{}.{}", layer, name)] = {encode_rows(rows, source->type), shape};
    }
  }

  GgufWriter writer;
  for (const auto& [key, value] : file.metadata()) {
    if (key != "general.alignment") writer.set(key, value);
  }
  writer.set(c.architecture + ".attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(report.kv_heads_after)));
  for (const GgufTensor& t : file.tensors()) {
    if (const auto it = replaced.find(t.name); it != replaced.end()) {
      writer.add_tensor(t.name, t.type, it->second.second, it->second.first);
    } else {
      std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + std::max<uint32_t>(t.n_dims, 1));
      writer.add_tensor(t.name, t.type, shape, std::span<const uint8_t>(t.data, t.size_bytes));
    }
  }
  writer.write(output);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace retrofit

RetrofitReport retrofit_kv_heads(const std::filesystem::path& input, const std::filesystem::path& output,
                                 const RetrofitOptions& options) {
  return retrofit::merge_kv_heads(input, output, options, true);
}

}  // namespace frugal
