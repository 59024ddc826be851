// The server's knowledge caches: MODEL@NAME models from --kb files (loaded at
// start) and from the knowledge folder (loaded by the first request that
// asks for one, so instances sharing a folder each hold only the caches
// routed to them), and their listing in GET /v1/models.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "server/server_impl.h"

namespace frugal {

namespace fs = std::filesystem;
using nlohmann::json;

using server::valid_knowledge_name;

bool server::valid_knowledge_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

namespace {

constexpr const char* kCacheExtension = ".fkv";

// NAME -> file of every cache in the folder (none when there is no folder).
std::map<std::string, fs::path> folder_caches(const fs::path& dir) {
  std::map<std::string, fs::path> found;
  if (dir.empty()) return found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const fs::path& path = entry.path();
    if (path.extension() != kCacheExtension || !entry.is_regular_file(error)) continue;
    const std::string name = path.stem().string();
    if (valid_knowledge_name(name)) found.emplace(name, path);
  }
  return found;
}

}  // namespace

void Server::Impl::load_startup_knowledge() {
  if (!options.knowledge_dir.empty()) {
    std::error_code error;
    fs::create_directories(options.knowledge_dir, error);
    if (!fs::is_directory(options.knowledge_dir)) {
      throw Error(fmt::format("--kb-dir {}: not a folder and cannot be created{}{}", options.knowledge_dir.string(),
                              error ? ": " : "", error ? error.message() : ""));
    }
  }
  for (const auto& [name, path] : options.knowledge) {
    if (!valid_knowledge_name(name) || knowledge->contains(name)) {
      throw Error(fmt::format("knowledge cache name '{}' is empty, repeated or has characters other than letters, "
                              "digits, '-', '_' and '.'",
                              name));
    }
    load_into_store(name, path);
  }
}

void Server::Impl::load_into_store(const std::string& name, const fs::path& path) {
  KnowledgeLoadOptions load;
  load.context = std::max<int64_t>(options.context, 0);
  const auto start = std::chrono::steady_clock::now();
  knowledge->add(name, path, load);  // its keys and values go into the store; the file is closed again
  metrics.knowledge_loaded(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

std::optional<Server::Impl::FileStamp> Server::Impl::stamp_of(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  return FileStamp{static_cast<uint64_t>(info.st_ino),
                   static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec};
}

std::optional<std::vector<TokenId>> Server::Impl::knowledge_prompt(const std::string& name,
                                                                   const std::string& question) {
  auto prompt = [&]() -> std::optional<std::vector<TokenId>> {
    if (!knowledge->contains(name)) return std::nullopt;
    return knowledge->prompt_tokens(name, question);
  };
  const bool given_at_start = std::any_of(options.knowledge.begin(), options.knowledge.end(),
                                          [&](const auto& entry) { return entry.first == name; });
  fs::path path;
  if (!given_at_start && !options.knowledge_dir.empty() && valid_knowledge_name(name)) {
    path = options.knowledge_dir / (name + kCacheExtension);
  }
  // The usual case: loaded, and (for the folder's) its file unchanged.
  {
    std::shared_lock lock(knowledge_mutex);
    if (knowledge->contains(name)) {
      const auto stamp = knowledge_stamps.find(name);
      if (given_at_start || (stamp != knowledge_stamps.end() && stamp_of(path) == stamp->second)) return prompt();
    }
  }
  if (path.empty()) return std::nullopt;
  // First use, or the file was replaced or deleted (by an edit here, or by
  // another server sharing the folder): load again, or let go.
  std::unique_lock lock(knowledge_mutex);
  const auto now = stamp_of(path);
  const auto known = knowledge_stamps.find(name);
  if (knowledge->contains(name) && known != knowledge_stamps.end() && now == known->second) return prompt();
  if (knowledge->contains(name)) knowledge->remove(name);
  knowledge_stamps.erase(name);
  if (!now) return std::nullopt;
  try {
    load_into_store(name, path);
  } catch (const Error& e) {
    throw server::ApiError(500, "server_error", fmt::format("the knowledge cache '{}' cannot be loaded: {}", name,
                                                            e.what()));
  }
  knowledge_stamps[name] = *now;
  return prompt();
}

std::vector<std::pair<std::string, size_t>> Server::Impl::knowledge_listing() const {
  std::map<std::string, size_t> listing;
  for (const auto& [name, path] : folder_caches(options.knowledge_dir)) listing[name] = 0;
  std::shared_lock lock(knowledge_mutex);
  for (const auto& name : knowledge->names()) listing[name] = knowledge->get(name).tokens.size();
  return {listing.begin(), listing.end()};
}

json Server::Impl::models() const {
  json data = json::array();
  data.push_back({{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"}});
  for (const std::string& adapter : adapter_names()) {  // the model with one adapter alone
    data.push_back({{"id", options.model_name + "+" + adapter}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"}});
  }
  for (const auto& [name, tokens] : knowledge_listing()) {
    json entry = {{"id", options.model_name + "@" + name}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"}};
    // Tokens are known once the cache is loaded here (a folder's caches load on first use).
    if (tokens > 0) entry["knowledge_tokens"] = tokens;
    data.push_back(entry);
  }
  return {{"object", "list"}, {"data", data}};
}

}  // namespace frugal
