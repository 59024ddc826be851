// A progress line on stderr for long prefills: done/total tokens, tokens/s
// and the time left. Redrawn in place on a terminal; when stderr is a file
// or pipe, only the final line is written.
#pragma once

#include <string>

#include "frugal/knowledge_cache.h"

namespace frugal::cli {

PrefillProgress progress_bar(std::string label, bool quiet);

}  // namespace frugal::cli
