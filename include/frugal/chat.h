// Chat prompts: recognizing a model's chat template (the Jinja text in
// `tokenizer.chat_template`) by marker substrings, and rendering messages in
// that format without a Jinja engine.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/tokenizer.h"

namespace frugal {

// A function call an assistant turn made (tools): the function's name and
// its arguments as JSON text, with the id a tool result refers back to.
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object's text
};

struct ChatMessage {
  std::string role;  // system, user, assistant, tool (a function's result)
  std::string content;
  std::vector<ToolCall> tool_calls{};  // assistant turns that called functions
  std::string tool_call_id{};          // role tool: the call this result answers
};

enum class ChatFormat {
  ChatML,           // <|im_start|>role\n...<|im_end|>\n (Qwen2/3, OpenHermes...)
  Qwen25,           // ChatML + Qwen2.5's default system message
  SmolLM2,          // ChatML + SmolLM2's default system message
  Phi4,             // <|im_start|>role<|im_sep|>...<|im_end|>
  Llama3,           // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  Llama31,          // Llama 3 + the 3.1 system header ("Cutting Knowledge Date", fixed date)
  Llama32,          // Llama 3.1 layout with today's date (3.2/3.3 templates use strftime_now)
  Llama2,           // [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]
  Mistral,          // Mistral 7B v0.1 original: [INST] ... [/INST], no system role
  MistralV1,        // Mistral "v1":  " [INST] ... [/INST]" with system message
  MistralV3,        // Mistral "v3":  "[INST] ...[/INST]", system before the last user turn
  MistralV3Tekken,  // Mistral "v3-tekken": no spaces around [INST] (Nemo)
  MistralV7,        // Mistral "v7": [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT]
  Zephyr,           // <|role|>\n...</s>\n
  Gemma,            // <start_of_turn>role\n...<end_of_turn>\n (assistant = "model")
  Phi3,             // <|role|>\n...<|end|>\n
  DeepSeek3,        // system text, <｜User｜>..., <｜Assistant｜>...<｜end▁of▁sentence｜> (DeepSeek-V3, first R1 distills)
  DeepSeekR1,       // DeepSeek 3 whose generation prompt opens the thinking: <｜Assistant｜><think>\n
};

// Detects the format from the Jinja source in `tokenizer.chat_template`; a
// format name ("chatml", ...) is accepted too. Throws UnsupportedError,
// naming the supported formats and the --chat-template override, when no
// known format matches (or the template is empty).
ChatFormat detect_chat_format(std::string_view jinja_template);

// "chatml", "qwen2.5", "smollm2", "phi4", "llama3", "llama3.1", "llama3.2",
// "llama2", "mistral", "mistral-v1", "mistral-v3", "mistral-v3-tekken",
// "mistral-v7", "zephyr", "gemma", "phi3", "deepseek3", "deepseek-r1". nullopt
// for any other name.
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
std::string_view chat_format_name(ChatFormat format);
// All names chat_format_from_name accepts, for help and error messages.
std::vector<std::string_view> chat_format_names();

// Renders `messages` as the model's own Jinja template would, with the
// assistant turn opened when `add_generation_prompt`.
// - The leading BOS that templates emit is left out: the tokenizer adds it
//   (tokenizer.ggml.add_bos_token), as in llama.cpp.
// - `bos_text` / `eos_text` are the vocabulary's BOS / EOS texts, used where a
//   template puts them inside the conversation (Llama 2: BOS before each
//   later [INST], EOS after each answer; Mistral, Zephyr: EOS after answers;
//   Phi 3: EOS at the end without a generation prompt). Empty means "<s>" /
//   "</s>". Tokenize the result with special tokens parsed.
// Throws Error for a role the format cannot express (e.g. a system message
// after the first message in Llama 2 / Mistral, or an unknown role there).
std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, std::string_view bos_text = "",
                                std::string_view eos_text = "");

// The same with the BOS / EOS texts of `tokenizer`'s vocabulary.
std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, const Tokenizer& tokenizer);

// Tokens of `rendered` (apply_chat_template's output for `messages`): the
// template's own text has its special tokens parsed, each message's content
// is literal text (found in order; templates at most trim it), so a user who
// writes "<|im_end|>" cannot close the turn. BOS/EOS as the vocabulary asks.
std::vector<TokenId> encode_chat_prompt(const Tokenizer& tokenizer, std::string_view rendered,
                                        std::span<const ChatMessage> messages);

}  // namespace frugal
