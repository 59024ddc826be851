// Number formatting and the findings shared by the Markdown and HTML reports.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "frugal/oae.h"

namespace frugal::oae {

std::string human_bytes(uint64_t bytes);
std::string milliseconds(double seconds);
std::string joules(double j);    // "12.3 J", "4.56 kJ"
std::string grams(double g);     // "0.12 g", "3.4 mg"
std::string break_even_text(const std::optional<uint64_t>& n);

// Plain-language statements a deployer can act on ("CAG answers with less
// energy per query than RAG-BM25 from N = 42 queries on").
std::vector<std::string> findings(const OaeReport& report);

}  // namespace frugal::oae
