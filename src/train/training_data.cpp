// Training records (JSONL) as token sequences with the positions the loss
// is taken on (include/frugal/finetune.h).
#include <algorithm>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/finetune.h"

namespace frugal {

namespace {

using Json = nlohmann::json;

// Throws for keys a record of this kind does not have: a misspelt key
// would otherwise be ignored silently.
void check_keys(const Json& record, std::initializer_list<std::string_view> allowed, std::string_view kind) {
  for (const auto& [key, value] : record.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (const std::string_view a : allowed) list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", a);
      throw Error(fmt::format("unknown key \"{}\" in a {} record (it has {})", key, kind, list));
    }
  }
}

const std::string& string_field(const Json& record, const char* key) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_string()) throw Error(fmt::format("\"{}\" must be a string", key));
  return it->get_ref<const std::string&>();
}

bool starts_with(const std::vector<TokenId>& whole, const std::vector<TokenId>& part) {
  return part.size() <= whole.size() && std::equal(part.begin(), part.end(), whole.begin());
}

void add_targets(TrainingExample& example, size_t first, size_t last) {
  for (size_t t = std::max<size_t>(first, 1); t < last; ++t) example.targets.push_back(static_cast<int32_t>(t));
}

TrainingExample prompt_completion(const Json& record, const Tokenizer& tokenizer) {
  check_keys(record, {"prompt", "completion"}, "prompt/completion");
  const std::string& prompt = string_field(record, "prompt");
  const std::string& completion = string_field(record, "completion");
  TrainingExample example;
  // BOS as the vocabulary asks, but never an EOS after the prompt (some
  // vocabularies add one): the completion follows it.
  std::vector<TokenId> asked;
  if (tokenizer.add_bos() && tokenizer.bos() >= 0) asked.push_back(tokenizer.bos());
  const auto prompt_tokens = tokenizer.encode(prompt, false, false);
  asked.insert(asked.end(), prompt_tokens.begin(), prompt_tokens.end());
  // The completion tokenized as it continues the prompt when the prompt's
  // tokens stay the same; on its own otherwise.
  example.tokens.assign(asked.begin(), asked.end() - static_cast<std::ptrdiff_t>(prompt_tokens.size()));
  const auto whole = tokenizer.encode(prompt + completion, false, false);
  example.tokens.insert(example.tokens.end(), whole.begin(), whole.end());
  if (!starts_with(example.tokens, asked)) {
    example.tokens = asked;
    const auto rest = tokenizer.encode(completion, false, false);
    example.tokens.insert(example.tokens.end(), rest.begin(), rest.end());
  }
  if (tokenizer.eos() < 0) throw Error("the vocabulary has no end-of-sequence token to end a completion with");
  if (example.tokens.empty() || example.tokens.back() != tokenizer.eos()) example.tokens.push_back(tokenizer.eos());
  add_targets(example, asked.size(), example.tokens.size());
  return example;
}

TrainingExample knowledge_question(const Json& record, const Tokenizer& tokenizer, const TrainingLayout& layout) {
  check_keys(record, {"documents", "question", "answer", "system"}, "knowledge QA");
  const PromptTemplate& prompt = layout.knowledge_prompt;
  std::string system = layout.system.empty() ? prompt.default_system : layout.system;
  if (record.contains("system")) system = string_field(record, "system");
  TrainingExample example;
  example.tokens = encode_header(tokenizer, prompt, system);
  if (record.contains("documents")) {
    const Json& documents = record["documents"];
    if (!documents.is_array()) throw Error("\"documents\" must be an array of texts or {\"id\", \"title\", \"text\"}");
    for (size_t i = 0; i < documents.size(); ++i) {
      const Json& item = documents[i];
      Document document;
      document.id = std::to_string(i + 1);
      if (item.is_string()) {
        document.text = item.get<std::string>();
      } else if (item.is_object()) {
        check_keys(item, {"id", "title", "text"}, "document");
        document.text = string_field(item, "text");
        if (item.contains("id")) document.id = string_field(item, "id");
        document.title = item.contains("title") ? string_field(item, "title") : document.id;
      } else {
        throw Error(fmt::format("document {} must be a text or an object with \"text\"", i + 1));
      }
      if (document.title.empty()) document.title = document.id;
      const auto tokens = encode_document(tokenizer, prompt, document);
      example.tokens.insert(example.tokens.end(), tokens.begin(), tokens.end());
    }
  }
  const std::string& question = string_field(record, "question");
  const std::string& answer = string_field(record, "answer");
  const auto asked = encode_question(tokenizer, prompt, question);
  example.tokens.insert(example.tokens.end(), asked.begin(), asked.end());
  const size_t first = example.tokens.size();
  const auto answered = encode_answer(tokenizer, prompt, question, answer);
  example.tokens.insert(example.tokens.end(), answered.begin(), answered.end());
  add_targets(example, first, example.tokens.size());
  return example;
}

TrainingExample chat(const Json& record, const Tokenizer& tokenizer, const TrainingLayout& layout) {
  check_keys(record, {"messages"}, "chat");
  if (!layout.chat_format) {
    throw Error("a chat record, but the model has no chat template; give one with --chat-template or use "
                "prompt/completion or knowledge QA records");
  }
  const Json& list = record["messages"];
  if (!list.is_array() || list.empty()) throw Error("\"messages\" must be a non-empty array");
  std::vector<ChatMessage> messages;
  for (const Json& item : list) {
    if (!item.is_object()) throw Error("each message must be an object with \"role\" and \"content\"");
    check_keys(item, {"role", "content"}, "message");
    const std::string& role = string_field(item, "role");
    if (role != "system" && role != "user" && role != "assistant") {
      throw Error(fmt::format("role \"{}\": training chats have system, user and assistant messages", role));
    }
    messages.push_back({role, string_field(item, "content")});
  }
  const ChatFormat format = *layout.chat_format;
  const auto encode = [&](std::span<const ChatMessage> part, bool open_turn) {
    return encode_chat_prompt(tokenizer, apply_chat_template(format, part, open_turn, tokenizer), part);
  };
  TrainingExample example;
  example.tokens = encode(messages, false);
  const std::span<const ChatMessage> all(messages);
  for (size_t k = 0; k < messages.size(); ++k) {
    if (messages[k].role != "assistant") continue;
    const auto before = encode(all.first(k), true), through = encode(all.first(k + 1), false);
    if (!starts_with(example.tokens, before) || !starts_with(example.tokens, through) ||
        through.size() < before.size()) {
      throw Error(fmt::format("the {} format renders the chat up to message {} differently from the whole chat, "
                              "so its answer cannot be found; use prompt/completion records",
                              chat_format_name(format), k + 1));
    }
    // The answer and its turn's end; what the template adds after that
    // (a newline) is not the model's to say.
    size_t last = through.size();
    for (size_t t = before.size(); t < through.size(); ++t) {
      if (tokenizer.is_end_of_generation(through[t])) {
        last = t + 1;
        break;
      }
    }
    add_targets(example, before.size(), last);
  }
  if (example.targets.empty()) throw Error("a chat record needs at least one assistant message");
  return example;
}

}  // namespace

std::vector<TrainingExample> read_training_examples(const std::filesystem::path& path, const Tokenizer& tokenizer,
                                                    const TrainingLayout& layout) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read the training data", path.string()));
  std::vector<TrainingExample> examples;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Json record;
      try {
        record = Json::parse(line);
      } catch (const Json::exception& e) {
        throw Error(fmt::format("not valid JSON ({})", e.what()));
      }
      if (!record.is_object()) throw Error("a record must be a JSON object");
      TrainingExample example = record.contains("messages")   ? chat(record, tokenizer, layout)
                                : record.contains("question") ? knowledge_question(record, tokenizer, layout)
                                : record.contains("prompt")   ? prompt_completion(record, tokenizer)
                                                              : throw Error(
                                                                  "a record has \"messages\", "
                                                                  "\"prompt\" and \"completion\", or "
                                                                  "\"question\" and \"answer\"");
      example.line = number;
      if (example.targets.empty()) throw Error("the record has nothing to learn (an empty completion)");
      examples.push_back(std::move(example));
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: {}", path.string(), number, e.what()));
    }
  }
  if (examples.empty()) throw Error(fmt::format("{}: no records (JSONL, one object per line)", path.string()));
  return examples;
}

}  // namespace frugal
