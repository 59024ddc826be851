// Building, loading, asking and saving a knowledge cache. Edits are in
// knowledge_edit.cpp.
#include "cag/knowledge_state.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "cag/cache_file.h"
#include "cag/model_identity.h"
#include "frugal/error.h"

namespace frugal {

using cag::CacheFile;
using cag::CacheFileHeader;

namespace {

int64_t context_for(const Model& model, int64_t requested) {
  return requested > 0 ? requested : model.config().training_context;
}

nlohmann::json prompt_to_json(const PromptTemplate& prompt) {
  return {{"name", prompt.name},
          {"header", prompt.header},
          {"document", prompt.document},
          {"question", prompt.question},
          {"default_system", prompt.default_system}};
}

PromptTemplate prompt_from_json(const nlohmann::json& json) {
  PromptTemplate prompt;
  prompt.name = json.at("name").get<std::string>();
  prompt.header = json.at("header").get<std::string>();
  prompt.document = json.at("document").get<std::string>();
  prompt.question = json.at("question").get<std::string>();
  prompt.default_system = json.at("default_system").get<std::string>();
  return prompt;
}


struct Manifest {
  PromptTemplate prompt;
  std::string system;
  int64_t header_tokens = 0;
  int64_t reserve = 256;
  std::vector<KnowledgeDocument> documents;
};

// The manifest's fields, checked against the token count.
Manifest read_manifest(const CacheFile& file, const std::string& name) {
  Manifest out;
  try {
    const auto& m = file.manifest;
    out.prompt = prompt_from_json(m.at("prompt"));
    out.system = m.at("system").get<std::string>();
    out.header_tokens = m.at("header_tokens").get<int64_t>();
    out.reserve = m.value("reserve", int64_t{256});
    int64_t next = out.header_tokens;
    for (const auto& doc : m.at("documents")) {
      KnowledgeDocument entry;
      entry.document = {doc.at("id").get<std::string>(), doc.at("title").get<std::string>(),
                        doc.at("text").get<std::string>()};
      entry.first_token = doc.at("first_token").get<int64_t>();
      entry.token_count = doc.at("token_count").get<int64_t>();
      entry.hash = std::stoull(doc.at("hash").get<std::string>(), nullptr, 16);
      if (entry.first_token != next) {
        throw FormatError(fmt::format("document '{}' starts at token {}, expected {}", entry.document.id,
                                      entry.first_token, next));
      }
      if (entry.token_count < 0 || entry.token_count > static_cast<int64_t>(file.header.token_count) - next) {
        throw FormatError(fmt::format("document '{}' has {} tokens, more than the file holds", entry.document.id,
                                      entry.token_count));
      }
      next += entry.token_count;
      out.documents.push_back(std::move(entry));
    }
    if (next != static_cast<int64_t>(file.header.token_count) || out.header_tokens < 0) {
      throw FormatError(fmt::format("the documents end at token {}, the file holds {}", next,
                                    file.header.token_count));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: the file is corrupt: its manifest is incomplete ({})", name, e.what()));
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: the file is corrupt: {}", name, e.what()));
  } catch (const std::logic_error&) {  // std::stoull
    throw FormatError(fmt::format("{}: the file is corrupt: a document hash is not hexadecimal", name));
  }
  return out;
}

}  // namespace

KnowledgeCacheSummary inspect_knowledge_cache(const std::filesystem::path& path, bool verify_checksum) {
  const CacheFile file = cag::open_cache_file(path, verify_checksum);
  const Manifest manifest = read_manifest(file, path.string());
  KnowledgeCacheSummary summary;
  const CacheFileHeader& h = file.header;
  summary.version = h.version;
  summary.precision = h.precision;
  summary.layer_count = h.layer_count;
  summary.kv_head_count = h.kv_head_count;
  summary.head_size = h.head_size;
  summary.token_count = h.token_count;
  summary.file_bytes = h.checksum_offset + sizeof(uint64_t);
  summary.model = file.manifest.contains("model") ? file.manifest["model"].dump() : "";
  summary.prompt_name = manifest.prompt.name;
  summary.system = manifest.system;
  summary.header_tokens = manifest.header_tokens;
  summary.documents = manifest.documents;
  return summary;
}

PromptTemplate default_prompt_template(const Model& model, const Tokenizer& tokenizer) {
  const std::string jinja = model.file().get_string_or("tokenizer.chat_template", "");
  return jinja.empty() ? plain_prompt_template() : chat_prompt_template(detect_chat_format(jinja), tokenizer);
}

KnowledgeCache::KnowledgeCache(std::unique_ptr<State> state) : state_(std::move(state)) {}
KnowledgeCache::KnowledgeCache(KnowledgeCache&&) noexcept = default;
KnowledgeCache& KnowledgeCache::operator=(KnowledgeCache&&) noexcept = default;
KnowledgeCache::~KnowledgeCache() = default;

void KnowledgeCache::State::check_fits(size_t total_tokens, std::span<const KnowledgeDocument> docs) const {
  const int64_t room = cache.capacity() - reserve;
  if (static_cast<int64_t>(total_tokens) <= room) return;
  // Name the largest documents: those are what to split or drop.
  std::vector<const KnowledgeDocument*> largest;
  for (const auto& doc : docs) largest.push_back(&doc);
  std::sort(largest.begin(), largest.end(),
            [](const auto* a, const auto* b) { return a->token_count > b->token_count; });
  std::string list;
  const size_t shown = std::min<size_t>(largest.size(), 10);
  for (size_t i = 0; i < shown; ++i) {
    list += fmt::format("\n  {} ({} tokens)", largest[i]->document.id, largest[i]->token_count);
  }
  if (largest.size() > shown) list += fmt::format("\n  ... and {} smaller documents", largest.size() - shown);
  throw Error(fmt::format(
      "the knowledge does not fit: {} tokens ({} of prompt header and {} documents) but the context of {} tokens "
      "keeps {} free for the question and answer, so at most {} fit: {} tokens too many. Remove or split "
      "documents, lower --reserve, or use a larger -c if the model allows. Documents by size:{}",
      total_tokens, header_tokens, docs.size(), cache.capacity(), reserve, room,
      static_cast<int64_t>(total_tokens) - room, list));
}

void KnowledgeCache::State::prefill_from(size_t position, const PrefillProgress& progress) {
  const size_t total = tokens.size() - position;
  size_t done = 0;
  if (progress) progress(0, total);
  while (position + done < tokens.size()) {
    const size_t count = std::min(batch, total - done);
    const auto pass = [&] { model->forward(std::span(tokens).subspan(position + done, count), cache, false); };
    if (run_pass) {
      run_pass(pass);
    } else {
      pass();
    }
    done += count;
    if (progress) progress(done, total);
  }
}

std::vector<KnowledgeDocument> KnowledgeCache::State::lay_out(std::vector<Document> docs, size_t first,
                                                             std::vector<TokenId>& out) const {
  std::vector<KnowledgeDocument> laid_out;
  for (size_t i = first; i < docs.size(); ++i) {
    KnowledgeDocument entry;
    const auto doc_tokens = encode_document(*tokenizer, prompt, docs[i]);
    entry.first_token = static_cast<int64_t>(out.size());
    entry.token_count = static_cast<int64_t>(doc_tokens.size());
    entry.hash = document_hash(docs[i]);
    entry.document = std::move(docs[i]);
    out.insert(out.end(), doc_tokens.begin(), doc_tokens.end());
    laid_out.push_back(std::move(entry));
  }
  return laid_out;
}

KnowledgeCache KnowledgeCache::build(Model& model, const Tokenizer& tokenizer, std::vector<Document> documents,
                                     const KnowledgeBuildOptions& options) {
  check_tokenizer_matches(model, tokenizer);
  const int64_t context = context_for(model, options.context);
  auto state = std::make_unique<State>(State{&model, &tokenizer, options.prompt,
                                             options.system.empty() ? options.prompt.default_system : options.system,
                                             {}, {}, 0, KvCache(model.config(), context, options.precision), false,
                                             options.reserve, std::max<size_t>(options.batch, 1), options.run_pass});
  state->tokens = encode_header(tokenizer, state->prompt, state->system);
  state->header_tokens = static_cast<int64_t>(state->tokens.size());
  state->documents = state->lay_out(std::move(documents), 0, state->tokens);
  state->check_fits(state->tokens.size(), state->documents);
  if (state->tokens.empty()) throw Error("the knowledge prompt is empty: give documents or a system text");
  state->prefill_from(0, options.progress);
  return KnowledgeCache(std::move(state));
}

nlohmann::json KnowledgeCache::State::manifest(const cag::ModelIdentity& identity) const {
  nlohmann::json docs = nlohmann::json::array();
  for (const auto& entry : documents) {
    docs.push_back({{"id", entry.document.id},
                    {"title", entry.document.title},
                    {"first_token", entry.first_token},
                    {"token_count", entry.token_count},
                    {"hash", fmt::format("{:016x}", entry.hash)},
                    {"text", entry.document.text}});
  }
  return {{"format", "frugal knowledge cache"},
          {"created_by", "frugal 0.1.0"},
          {"model", identity.model},
          {"tokenizer", identity.tokenizer},
          {"prompt", prompt_to_json(prompt)},
          {"system", system},
          {"header_tokens", header_tokens},
          {"reserve", reserve},
          {"documents", docs}};
}

void KnowledgeCache::save(const std::filesystem::path& path) const {
  const State& s = *state_;
  const auto identity = cag::identify_model(s.model->file(), s.model->loras());
  const ModelConfig& config = s.model->config();
  CacheFileHeader header;
  header.model_fingerprint = identity.model_fingerprint;
  header.tokenizer_fingerprint = identity.tokenizer_fingerprint;
  header.precision = s.cache.types();
  header.layer_count = static_cast<uint32_t>(config.layer_count);
  header.kv_head_count = static_cast<uint32_t>(config.kv_head_count);
  header.head_size = static_cast<uint32_t>(config.head_size);
  cag::write_cache_file(path, header, s.manifest(identity), s.tokens, s.cache);
}

KnowledgeCache KnowledgeCache::load(const std::filesystem::path& path, Model& model, const Tokenizer& tokenizer,
                                    const KnowledgeLoadOptions& options) {
  check_tokenizer_matches(model, tokenizer);
  const std::string name = path.string();
  CacheFile file = cag::open_cache_file(path, options.verify_checksum);
  const CacheFileHeader& h = file.header;
  const ModelConfig& config = model.config();
  if (h.layer_count != config.layer_count || h.kv_head_count != config.kv_head_count ||
      h.head_size != config.head_size) {
    throw FormatError(fmt::format("{}: built for a model with {} layers and {} KV heads of size {}, but {} has {} "
                                  "layers and {} KV heads of size {}; rebuild the cache with this model",
                                  name, h.layer_count, h.kv_head_count, h.head_size, model.file().source_name(),
                                  config.layer_count, config.kv_head_count, config.head_size));
  }
  const auto identity = cag::identify_model(model.file(), model.loras());
  auto mismatch = [&](const char* what, const char* key, const nlohmann::json& current) {
    std::string details;
    if (file.manifest.is_object() && file.manifest.contains(key)) {
      for (const auto& line : cag::describe_differences(file.manifest[key], current)) details += "\n  " + line;
    }
    if (details.empty()) details = "\n  same shapes and types: the weights or settings differ";
    return FormatError(fmt::format("{}: built with a different {} than {}; rebuild it with `frugal kb build -m {}`. "
                                   "What differs:{}", name, what, model.file().source_name(),
                                   model.file().source_name(), details));
  };
  if (h.model_fingerprint != identity.model_fingerprint) throw mismatch("model", "model", identity.model);
  if (h.tokenizer_fingerprint != identity.tokenizer_fingerprint) throw mismatch("tokenizer", "tokenizer", identity.tokenizer);

  if (h.token_count == 0) {
    throw FormatError(fmt::format("{}: the knowledge cache is empty (0 tokens); rebuild it with documents", name));
  }
  const int64_t context = context_for(model, options.context);
  if (static_cast<int64_t>(h.token_count) >= context) {
    throw Error(fmt::format("{}: the knowledge holds {} tokens, the context is {}; use a larger -c", name,
                            h.token_count, context));
  }
  auto state = std::make_unique<State>(State{&model, &tokenizer, {}, {}, {}, std::move(file.tokens), 0,
                                             KvCache(config, context, h.precision), false, 256, 512, {}});
  const Manifest manifest = read_manifest(file, name);
  state->prompt = manifest.prompt;
  state->system = manifest.system;
  state->header_tokens = manifest.header_tokens;
  state->reserve = manifest.reserve;
  state->documents = manifest.documents;
  std::vector<uint64_t> keys, values;
  for (uint32_t layer = 0; layer < h.layer_count; ++layer) {
    keys.push_back(h.key_offset(layer));
    values.push_back(h.value_offset(layer));
  }
  state->mapped = state->cache.map_prefix(file.fd, static_cast<int64_t>(h.token_count), keys, values);
  return KnowledgeCache(std::move(state));
}

std::vector<TokenId> KnowledgeCache::prompt_tokens(std::string_view question) const {
  std::vector<TokenId> tokens = state_->tokens;
  const auto q = encode_question(*state_->tokenizer, state_->prompt, question);
  tokens.insert(tokens.end(), q.begin(), q.end());
  return tokens;
}

GenerationResult KnowledgeCache::ask(std::string_view question, const GenerationOptions& options,
                                     const TextCallback& on_text) {
  State& s = *state_;
  const int64_t prefix = static_cast<int64_t>(s.tokens.size());
  s.cache.truncate(prefix);
  const auto start = std::chrono::steady_clock::now();
  const auto q = encode_question(*s.tokenizer, s.prompt, question);
  const double encode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  GenerationOptions with_prefix = options;
  with_prefix.preceding_tokens = s.tokens;  // the penalty window may reach into the knowledge
  GenerationResult result;
  try {
    result = generate(*s.model, *s.tokenizer, s.cache, q, with_prefix, on_text);
  } catch (...) {
    s.cache.truncate(prefix);
    throw;
  }
  s.cache.truncate(prefix);  // the next question starts from the knowledge alone
  result.first_token_seconds += encode_seconds;  // from the question, not from its tokens
  return result;
}

const std::vector<KnowledgeDocument>& KnowledgeCache::documents() const { return state_->documents; }
std::span<const TokenId> KnowledgeCache::tokens() const { return state_->tokens; }
const PromptTemplate& KnowledgeCache::prompt() const { return state_->prompt; }
const std::string& KnowledgeCache::system() const { return state_->system; }
KvTypes KnowledgeCache::types() const { return state_->cache.types(); }

void KnowledgeCache::convert(KvTypes types) {
  state_->cache = state_->cache.converted(types);
  state_->mapped = false;  // the rows are this process's own now
}
size_t KnowledgeCache::kv_bytes() const {
  const KvCache& cache = state_->cache;
  return static_cast<size_t>(cache.layer_count()) * state_->tokens.size() *
         (cache.key_row_bytes() + cache.value_row_bytes());
}
bool KnowledgeCache::mapped() const { return state_->mapped; }
KvCache& KnowledgeCache::cache() { return state_->cache; }

void KnowledgeCache::set_prefill_passes(PrefillPassRunner run_pass, size_t batch) {
  state_->run_pass = std::move(run_pass);
  state_->batch = std::max<size_t>(batch, 1);
}

}  // namespace frugal
