// Knowledge prompt layouts and their segment-by-segment tokenization.
#include <algorithm>
#include <cctype>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/knowledge.h"

namespace frugal {

namespace {

constexpr std::string_view kDefaultSystem =
    "Answer the question using only the documents below. If they do not contain the answer, answer \"unknown\".";
constexpr std::string_view kDocument = "Document [{id}] {title}\n{text}\n\n";

struct Placeholder {
  std::string_view name;
  std::string_view value;
};

// Splits `pattern` at its placeholders: template text may hold control
// tokens, placeholder values are plain text. Braces that name no placeholder
// stay literal.
std::vector<TokenId> render(const Tokenizer& tokenizer, std::string_view pattern,
                            std::initializer_list<Placeholder> values) {
  std::vector<Tokenizer::TextPart> parts;
  size_t literal_start = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '{') continue;
    for (const Placeholder& placeholder : values) {
      const size_t length = placeholder.name.size() + 2;
      if (pattern.compare(i + 1, placeholder.name.size(), placeholder.name) != 0 ||
          i + length > pattern.size() || pattern[i + length - 1] != '}') {
        continue;
      }
      parts.push_back({pattern.substr(literal_start, i - literal_start), true});
      parts.push_back({placeholder.value, false});
      literal_start = i + length;
      i = literal_start - 1;
      break;
    }
  }
  parts.push_back({pattern.substr(literal_start), true});
  return tokenizer.encode_parts(parts, false);
}

// The chat layout: one user turn rendered around two markers and cut there.
// What comes before the first marker opens the knowledge, what follows the
// second closes the question and opens the assistant's answer.
constexpr std::string_view kStart = "\x1e", kEnd = "\x1f";
const ChatMessage kMarkedTurn[] = {{"user", "\x1e\x1f"}};

PromptTemplate cut_chat_turn(ChatFormat format, const std::string& rendered) {
  const size_t start = rendered.find(kStart), end = rendered.find(kEnd);
  if (start == std::string::npos || end == std::string::npos || end < start) {
    throw Error(fmt::format("the {} chat format does not keep the user's text in place", chat_format_name(format)));
  }
  PromptTemplate prompt;
  prompt.name = fmt::format("chat:{}", chat_format_name(format));
  prompt.header = rendered.substr(0, start) + "{system}\n\n";
  prompt.document = std::string(kDocument);
  prompt.question = "Question: {question}" + rendered.substr(end + kEnd.size());
  prompt.default_system = std::string(kDefaultSystem);
  return prompt;
}

}  // namespace

PromptTemplate plain_prompt_template() {
  PromptTemplate prompt;
  prompt.name = "plain";
  prompt.header = "{system}\n\n";
  prompt.document = std::string(kDocument);
  prompt.question = "Question: {question}\nAnswer:";
  prompt.default_system = std::string(kDefaultSystem);
  return prompt;
}

PromptTemplate chat_prompt_template(ChatFormat format, std::string_view bos_text, std::string_view eos_text) {
  return cut_chat_turn(format, apply_chat_template(format, kMarkedTurn, true, bos_text, eos_text));
}

PromptTemplate chat_prompt_template(ChatFormat format, const Tokenizer& tokenizer) {
  return cut_chat_turn(format, apply_chat_template(format, kMarkedTurn, true, tokenizer));
}

PromptTemplate read_prompt_template(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read the prompt template", path.string()));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", path.string(), e.what()));
  }
  PromptTemplate prompt;
  prompt.name = path.filename().string();
  auto take = [&](const char* key, std::string& out, bool required, std::string_view placeholder) {
    if (!json.is_object() || !json.contains(key)) {
      if (required) {
        throw Error(fmt::format("{}: missing \"{}\"; a template has \"header\", \"document\" and \"question\"",
                                path.string(), key));
      }
      return;
    }
    if (!json[key].is_string()) throw Error(fmt::format("{}: \"{}\" must be a string", path.string(), key));
    out = json[key].get<std::string>();
    if (!placeholder.empty() && out.find(placeholder) == std::string::npos) {
      throw Error(fmt::format("{}: \"{}\" must contain {}", path.string(), key, placeholder));
    }
  };
  take("header", prompt.header, true, "");
  take("document", prompt.document, true, "{text}");
  take("question", prompt.question, true, "{question}");
  prompt.default_system = std::string(kDefaultSystem);
  take("system", prompt.default_system, false, "");
  return prompt;
}

std::vector<TokenId> encode_header(const Tokenizer& tokenizer, const PromptTemplate& prompt, std::string_view system) {
  // BOS only: an EOS that some vocabularies append would end the prompt.
  std::vector<TokenId> tokens;
  if (tokenizer.add_bos() && tokenizer.bos() >= 0) tokens.push_back(tokenizer.bos());
  const auto text = render(tokenizer, prompt.header, {{"system", system}});
  tokens.insert(tokens.end(), text.begin(), text.end());
  return tokens;
}

std::vector<TokenId> encode_document(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                     const Document& document) {
  return render(tokenizer, prompt.document,
                {{"id", document.id}, {"title", document.title}, {"text", document.text}});
}

std::vector<TokenId> encode_question(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                     std::string_view question) {
  return render(tokenizer, prompt.question, {{"question", question}});
}

std::vector<TokenId> encode_answer(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                   std::string_view question, std::string_view answer) {
  const std::vector<TokenId> asked = encode_question(tokenizer, prompt, question);
  const bool after_text = !prompt.question.empty() && !std::isspace(static_cast<unsigned char>(prompt.question.back()));
  const std::string spoken = (after_text ? " " : "") + std::string(answer);
  // The answer is tokenized with the question, as a generated answer would
  // continue it, and the question's own tokens cut off.
  const std::string pattern = prompt.question + "{answer}";
  std::vector<TokenId> tokens = render(tokenizer, pattern, {{"question", question}, {"answer", spoken}});
  if (tokens.size() < asked.size() || !std::equal(asked.begin(), asked.end(), tokens.begin())) {
    tokens = render(tokenizer, "{answer}", {{"answer", spoken}});
  } else {
    tokens.erase(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(asked.size()));
  }
  // The end: a chat layout's turn end (what follows the assistant's text
  // when the format renders an answer), else EOS.
  TokenId end = tokenizer.eos();
  if (prompt.name.starts_with("chat:")) {
    if (const auto format = chat_format_from_name(std::string_view(prompt.name).substr(5))) {
      const ChatMessage turns[] = {{"user", "q"}, {"assistant", std::string(kEnd)}};
      const std::string rendered = apply_chat_template(*format, turns, false, tokenizer);
      const size_t marker = rendered.rfind(kEnd);
      if (marker == std::string::npos) {
        throw Error(fmt::format("the {} chat format does not keep the assistant's text in place", prompt.name));
      }
      // The first token closing the turn that ends generation (a template
      // may put other text first).
      const std::vector<TokenId> closing =
          tokenizer.encode(std::string_view(rendered).substr(marker + kEnd.size()), false, true);
      const auto ending = std::find_if(closing.begin(), closing.end(),
                                       [&](TokenId t) { return tokenizer.is_end_of_generation(t); });
      if (ending != closing.end()) end = *ending;
    }
  }
  if (end < 0) throw Error("the vocabulary has no end-of-sequence token to end an answer with");
  tokens.push_back(end);
  return tokens;
}

}  // namespace frugal
