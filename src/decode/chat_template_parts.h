// Pieces of the hand-rendered chat templates that the tool-call renderer
// (src/toolcall/) shares with chat_template.cpp.
#pragma once

#include <string>
#include <string_view>

namespace frugal::chat_parts {

inline constexpr std::string_view kQwen25DefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Jinja's `trim` / Python's str.strip() on ASCII whitespace.
std::string_view trim(std::string_view text);

// Today's date as the Llama 3.2 template's strftime_now("%d %b %Y") writes it.
std::string today_for_llama32();

// The date the Llama 3.1 template falls back to (`set date_string = "26 Jul 2024"`).
inline constexpr std::string_view kLlama31Date = "26 Jul 2024";

}  // namespace frugal::chat_parts
