// Chat formats rendered by hand, matching the models' official Jinja
// templates (facts checked against llama.cpp's llm_chat_apply_template and
// its template tests). Comments name the Jinja construct each rule mirrors.
#include <array>
#include <ctime>
#include <string>

#include "decode/chat_template_parts.h"
#include "frugal/chat.h"
#include "frugal/error.h"

namespace frugal {

namespace chat_parts {

std::string_view trim(std::string_view text) {
  constexpr std::string_view kWhitespace = " \t\n\r\f\v";
  size_t begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(kWhitespace);
  return text.substr(begin, end - begin + 1);
}

std::string today_for_llama32() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  size_t length = std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  return std::string(buffer, length);
}

}  // namespace chat_parts

namespace {

using chat_parts::kQwen25DefaultSystem;
using chat_parts::today_for_llama32;
using chat_parts::trim;

struct NamedFormat {
  std::string_view name;
  ChatFormat format;
};

constexpr std::array kFormatNames{
    NamedFormat{"chatml", ChatFormat::ChatML},
    NamedFormat{"qwen2.5", ChatFormat::Qwen25},
    NamedFormat{"smollm2", ChatFormat::SmolLM2},
    NamedFormat{"phi4", ChatFormat::Phi4},
    NamedFormat{"llama3", ChatFormat::Llama3},
    NamedFormat{"llama3.1", ChatFormat::Llama31},
    NamedFormat{"llama3.2", ChatFormat::Llama32},
    NamedFormat{"llama2", ChatFormat::Llama2},
    NamedFormat{"mistral", ChatFormat::Mistral},
    NamedFormat{"mistral-v1", ChatFormat::MistralV1},
    NamedFormat{"mistral-v3", ChatFormat::MistralV3},
    NamedFormat{"mistral-v3-tekken", ChatFormat::MistralV3Tekken},
    NamedFormat{"mistral-v7", ChatFormat::MistralV7},
    NamedFormat{"zephyr", ChatFormat::Zephyr},
    NamedFormat{"gemma", ChatFormat::Gemma},
    NamedFormat{"phi3", ChatFormat::Phi3},
    NamedFormat{"deepseek3", ChatFormat::DeepSeek3},
    NamedFormat{"deepseek-r1", ChatFormat::DeepSeekR1},
};

constexpr std::string_view kSmolLM2DefaultSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

std::string concat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

[[noreturn]] void unsupported_role(ChatFormat format, const ChatMessage& message, size_t index) {
  throw Error("chat format " + std::string(chat_format_name(format)) + " cannot express a '" +
              message.role + "' message at position " + std::to_string(index) +
              " (supported: an optional first system message, then user and assistant turns)");
}

// Splits off a leading system message, as the templates' `messages[0]['role']
// == 'system'` branch does. Later system messages are rejected.
struct SplitConversation {
  std::optional<std::string_view> system;
  std::span<const ChatMessage> turns;
};

SplitConversation split_system(ChatFormat format, std::span<const ChatMessage> messages) {
  SplitConversation split{std::nullopt, messages};
  if (!messages.empty() && messages.front().role == "system") {
    split.system = messages.front().content;
    split.turns = messages.subspan(1);
  }
  for (size_t i = 0; i < split.turns.size(); ++i) {
    const std::string& role = split.turns[i].role;
    if (role != "user" && role != "assistant") {
      unsupported_role(format, split.turns[i], i + (split.system ? 1 : 0));
    }
  }
  return split;
}

// ChatML and its variants with a default system message
// (`{% if messages[0]['role'] != 'system' %}` branch of Qwen2.5 / SmolLM2).
std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt,
                          std::string_view default_system) {
  std::string out;
  if (!default_system.empty() && (messages.empty() || messages.front().role != "system")) {
    out += concat({"<|im_start|>system\n", default_system, "<|im_end|>\n"});
  }
  for (const ChatMessage& m : messages) {
    out += concat({"<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n"});
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_phi4(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    out += concat({"<|im_start|>", m.role, "<|im_sep|>", m.content, "<|im_end|>"});
  }
  if (add_generation_prompt) out += "<|im_start|>assistant<|im_sep|>";
  return out;
}

std::string llama3_turn(std::string_view role, std::string_view content) {
  // '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>'
  return concat({"<|start_header_id|>", role, "<|end_header_id|>\n\n", trim(content), "<|eot_id|>"});
}

std::string render_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) out += llama3_turn(m.role, m.content);
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Llama 3.1+: a system header always comes first, carrying the knowledge
// cutoff and date ahead of the (trimmed) system message; tools are not
// supported here.
std::string render_llama31(std::span<const ChatMessage> messages, bool add_generation_prompt,
                           std::string_view date) {
  std::string_view system_message;
  if (!messages.empty() && messages.front().role == "system") {
    system_message = trim(messages.front().content);
    messages = messages.subspan(1);
  }
  std::string out = concat({"<|start_header_id|>system<|end_header_id|>\n\n",
                            "Cutting Knowledge Date: December 2023\n", "Today Date: ", date,
                            "\n\n", system_message, "<|eot_id|>"});
  for (const ChatMessage& m : messages) out += llama3_turn(m.role, m.content);
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Meta's Llama-2-chat template: the system message goes inside the first
// [INST] block; each user turn is `bos_token + '[INST] ' + content.strip() +
// ' [/INST]'` and each answer `' ' + content.strip() + ' ' + eos_token`. The
// first BOS is the tokenizer's. The [/INST] opens the answer, so there is no
// separate generation prompt.
std::string render_llama2(std::span<const ChatMessage> messages, std::string_view bos,
                          std::string_view eos) {
  SplitConversation split = split_system(ChatFormat::Llama2, messages);
  std::string out;
  for (size_t i = 0; i < split.turns.size(); ++i) {
    const ChatMessage& m = split.turns[i];
    if (m.role == "user") {
      std::string content = m.content;
      if (i == 0 && split.system) {
        content = concat({"<<SYS>>\n", *split.system, "\n<</SYS>>\n\n", m.content});
      }
      out += concat({i == 0 ? "" : bos, "[INST] ", trim(content), " [/INST]"});
    } else {
      out += concat({" ", trim(m.content), " ", eos});
    }
  }
  return out;
}

// Mistral's family of [INST] templates. None has a generation prompt: the
// closing [/INST] opens the answer.
std::string render_mistral(ChatFormat format, std::span<const ChatMessage> messages,
                           std::string_view eos) {
  if (format == ChatFormat::MistralV7) {
    // Every role may appear anywhere: [SYSTEM_PROMPT] / [INST] / ' ' + answer + eos.
    std::string out;
    for (size_t i = 0; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      if (m.role == "system") {
        out += concat({"[SYSTEM_PROMPT] ", m.content, "[/SYSTEM_PROMPT]"});
      } else if (m.role == "user") {
        out += concat({"[INST] ", m.content, "[/INST]"});
      } else if (m.role == "assistant") {
        out += concat({" ", m.content, eos});
      } else {
        unsupported_role(format, m, i);
      }
    }
    return out;
  }

  SplitConversation split = split_system(format, messages);
  std::string out;
  for (size_t i = 0; i < split.turns.size(); ++i) {
    const ChatMessage& m = split.turns[i];
    bool first = i == 0;
    bool last = i + 1 == split.turns.size();
    if (m.role == "assistant") {
      switch (format) {
        case ChatFormat::MistralV3: out += concat({" ", trim(m.content), eos}); break;
        case ChatFormat::MistralV1: out += concat({" ", m.content, eos}); break;
        default: out += concat({m.content, eos}); break;  // Mistral, MistralV3Tekken
      }
      continue;
    }
    switch (format) {
      case ChatFormat::Mistral:
        // The original template has no system role (it raises); like
        // llama.cpp, fold the system message into the first user turn.
        if (first && split.system) {
          out += concat({"[INST] ", *split.system, "\n", m.content, " [/INST]"});
        } else {
          out += concat({"[INST] ", m.content, " [/INST]"});
        }
        break;
      case ChatFormat::MistralV1:
        // `loop.first and system_message is defined`
        if (first && split.system) {
          out += concat({" [INST] ", *split.system, "\n\n", m.content, " [/INST]"});
        } else {
          out += concat({" [INST] ", m.content, " [/INST]"});
        }
        break;
      default: {
        // v3: `loop.last and system_message is defined` -- the system message
        // rides on the final user turn (and is dropped when the conversation
        // ends with an answer, as the template does).
        std::string_view open = format == ChatFormat::MistralV3 ? "[INST] " : "[INST]";
        if (last && split.system) {
          out += concat({open, *split.system, "\n\n", m.content, "[/INST]"});
        } else {
          out += concat({open, m.content, "[/INST]"});
        }
        break;
      }
    }
  }
  return out;
}

std::string render_zephyr(std::span<const ChatMessage> messages, bool add_generation_prompt,
                          std::string_view eos) {
  std::string out;
  for (const ChatMessage& m : messages) out += concat({"<|", m.role, "|>\n", m.content, eos, "\n"});
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

// DeepSeek V3 and the R1 distills: the (last) system message's text first
// (`{{bos_token}}{{ns.system_prompt}}`, no separator), then the turns; an
// earlier answer keeps only what follows its thinking
// (`content.split('</think>')[-1]`). The R1 distills' January 2025
// template opens the thinking in the generation prompt.
std::string render_deepseek(std::span<const ChatMessage> messages, bool add_generation_prompt, bool opens_thinking,
                            std::string_view eos) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") out = m.content;  // the last one, placed first
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      out += concat({"<｜User｜>", m.content});
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      if (const size_t close = content.rfind("</think>"); close != std::string_view::npos) {
        content = content.substr(close + 8);
      }
      out += concat({"<｜Assistant｜>", content, eos});
    } else if (m.role != "system") {
      unsupported_role(opens_thinking ? ChatFormat::DeepSeekR1 : ChatFormat::DeepSeek3, m, i);
    }
  }
  if (add_generation_prompt) out += opens_thinking ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>";
  return out;
}

// Gemma 3's template: a leading system message becomes a prefix of the
// first turn (`first_user_prefix = messages[0]['content'] + '\n\n'`);
// contents are trimmed; the assistant role is called "model".
std::string render_gemma(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string first_prefix;
  if (!messages.empty() && messages.front().role == "system") {
    first_prefix = messages.front().content + "\n\n";
    messages = messages.subspan(1);
  }
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    std::string_view role = m.role == "assistant" ? std::string_view("model") : m.role;
    out += concat({"<start_of_turn>", role, "\n", i == 0 ? first_prefix : "", trim(m.content),
                   "<end_of_turn>\n"});
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

// Phi-3 / 3.5: `{% else %}{{ eos_token }}` ends a prompt that opens no turn.
std::string render_phi3(std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view eos) {
  std::string out;
  for (const ChatMessage& m : messages) out += concat({"<|", m.role, "|>\n", m.content, "<|end|>\n"});
  out += add_generation_prompt ? std::string_view("<|assistant|>\n") : eos;
  return out;
}

}  // namespace

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (const NamedFormat& entry : kFormatNames) {
    if (entry.name == name) return entry.format;
  }
  return std::nullopt;
}

std::string_view chat_format_name(ChatFormat format) {
  for (const NamedFormat& entry : kFormatNames) {
    if (entry.format == format) return entry.name;
  }
  return "unknown";
}

std::vector<std::string_view> chat_format_names() {
  std::vector<std::string_view> names;
  for (const NamedFormat& entry : kFormatNames) names.push_back(entry.name);
  return names;
}

ChatFormat detect_chat_format(std::string_view jinja_template) {
  if (auto named = chat_format_from_name(jinja_template)) return *named;
  auto contains = [jinja_template](std::string_view marker) {
    return jinja_template.find(marker) != std::string_view::npos;
  };

  // Marker order follows llama.cpp's llm_chat_detect_template where the two
  // overlap: more specific markers are tested before the generic ones.
  if (contains("<|im_start|>") && !contains("<end_of_utterance>")) {  // SmolVLM is not ChatML
    if (contains("<|im_sep|>")) return ChatFormat::Phi4;
    if (contains(kQwen25DefaultSystem)) return ChatFormat::Qwen25;
    if (contains(kSmolLM2DefaultSystem)) return ChatFormat::SmolLM2;
    return ChatFormat::ChatML;
  }
  if (contains("[INST]")) {
    if (contains("[SYSTEM_PROMPT]")) return ChatFormat::MistralV7;
    if (contains("' [INST] ' + system_message") || contains("[AVAILABLE_TOOLS]")) {
      if (contains(" [INST]")) return ChatFormat::MistralV1;
      if (contains("\"[INST]\"")) return ChatFormat::MistralV3Tekken;
      return ChatFormat::MistralV3;
    }
    if (contains("<<SYS>>")) return ChatFormat::Llama2;
    return ChatFormat::Mistral;
  }
  if (contains("<|assistant|>") && contains("<|end|>")) return ChatFormat::Phi3;
  if (contains("<|user|>") && contains("<|assistant|>") &&
      (contains("<|endoftext|>") || contains("eos_token"))) {
    return ChatFormat::Zephyr;
  }
  if (contains("<start_of_turn>")) return ChatFormat::Gemma;
  if (contains("<｜Assistant｜>") && contains("<｜User｜>")) {
    return contains("<｜Assistant｜><think>") ? ChatFormat::DeepSeekR1 : ChatFormat::DeepSeek3;
  }
  if (contains("<|start_header_id|>") && contains("<|end_header_id|>")) {
    if (contains("Cutting Knowledge Date")) {
      return contains("strftime_now") ? ChatFormat::Llama32 : ChatFormat::Llama31;
    }
    return ChatFormat::Llama3;
  }

  std::string names;
  for (std::string_view name : chat_format_names()) {
    names += names.empty() ? "" : ", ";
    names += name;
  }
  throw UnsupportedError(
      std::string(jinja_template.empty() ? "the model has no chat template"
                                         : "the model's chat template is not one frugal knows") +
      "; supported formats: " + names +
      ". Choose one with --chat-template NAME, or prompt without chat formatting.");
}

std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, std::string_view bos_text,
                                std::string_view eos_text) {
  std::string_view bos = bos_text.empty() ? std::string_view("<s>") : bos_text;
  std::string_view eos = eos_text.empty() ? std::string_view("</s>") : eos_text;
  switch (format) {
    case ChatFormat::ChatML: return render_chatml(messages, add_generation_prompt, "");
    case ChatFormat::Qwen25: return render_chatml(messages, add_generation_prompt, kQwen25DefaultSystem);
    case ChatFormat::SmolLM2: return render_chatml(messages, add_generation_prompt, kSmolLM2DefaultSystem);
    case ChatFormat::Phi4: return render_phi4(messages, add_generation_prompt);
    case ChatFormat::Llama3: return render_llama3(messages, add_generation_prompt);
    // The 3.1 template's fallback date (`set date_string = "26 Jul 2024"`).
    case ChatFormat::Llama31: return render_llama31(messages, add_generation_prompt, chat_parts::kLlama31Date);
    case ChatFormat::Llama32: return render_llama31(messages, add_generation_prompt, today_for_llama32());
    case ChatFormat::Llama2: return render_llama2(messages, bos, eos);
    case ChatFormat::Mistral:
    case ChatFormat::MistralV1:
    case ChatFormat::MistralV3:
    case ChatFormat::MistralV3Tekken:
    case ChatFormat::MistralV7: return render_mistral(format, messages, eos);
    case ChatFormat::Zephyr: return render_zephyr(messages, add_generation_prompt, eos);
    case ChatFormat::Gemma: return render_gemma(messages, add_generation_prompt);
    case ChatFormat::Phi3: return render_phi3(messages, add_generation_prompt, eos);
    case ChatFormat::DeepSeek3:
    case ChatFormat::DeepSeekR1:
      return render_deepseek(messages, add_generation_prompt, format == ChatFormat::DeepSeekR1,
                             eos_text.empty() ? std::string_view("<｜end▁of▁sentence｜>") : eos_text);
  }
  throw Error("unknown chat format");
}

std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, const Tokenizer& tokenizer) {
  const TokenId bos = tokenizer.bos(), eos = tokenizer.eos();
  return apply_chat_template(format, messages, add_generation_prompt, bos >= 0 ? tokenizer.token_text(bos) : "",
                             eos >= 0 ? tokenizer.token_text(eos) : "");
}

std::vector<TokenId> encode_chat_prompt(const Tokenizer& tokenizer, std::string_view rendered,
                                        std::span<const ChatMessage> messages) {
  std::vector<Tokenizer::TextPart> parts;
  size_t position = 0;
  for (const ChatMessage& message : messages) {
    std::string_view content = message.content;
    const size_t first = content.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) continue;
    content = content.substr(first, content.find_last_not_of(" \t\r\n") - first + 1);
    const size_t at = rendered.find(content, position);
    if (at == std::string_view::npos) continue;  // not kept verbatim by this format: stays template text
    parts.push_back({rendered.substr(position, at - position), true});
    parts.push_back({content, false});
    position = at + content.size();
  }
  parts.push_back({rendered.substr(position), true});
  return tokenizer.encode_parts(parts, true);
}

}  // namespace frugal
