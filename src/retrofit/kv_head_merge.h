// Internals of retrofit_kv_heads, open to tests.
#pragma once

#include "frugal/retrofit.h"

namespace frugal::retrofit {

// As retrofit_kv_heads; with `average` false the heads are grouped and
// turned as the merge would, but every old KV head is kept (the file has
// the old count): the model then computes what the input did, which tests
// that the turns are folded in exactly.
RetrofitReport merge_kv_heads(const std::filesystem::path& input, const std::filesystem::path& output,
                              const RetrofitOptions& options, bool average);

}  // namespace frugal::retrofit
