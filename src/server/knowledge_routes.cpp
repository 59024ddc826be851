// Knowledge caches over HTTP (what the web page uses; docs/web.md):
//   GET    /v1/knowledge                          the caches, with their documents
//   POST   /v1/knowledge                          create one from files or pasted text
//   GET    /v1/knowledge/{name}                   one cache
//   DELETE /v1/knowledge/{name}                   delete it
//   GET    /v1/knowledge/{name}/documents/{id}    one document, with its text
//   PUT    /v1/knowledge/{name}/documents/{id}    add or replace a document
//   DELETE /v1/knowledge/{name}/documents/{id}    remove a document
// Caches live in the knowledge folder (--kb-dir). Creating and editing
// prefill on the engine between batch steps, report progress as server-sent
// events when asked (?stream=true or Accept: text/event-stream), write the
// file atomically and then swap the cache in the store: a question already
// running finishes on the old version, the next one reads the new.
#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/knowledge.h"
#include "frugal/knowledge_cache.h"
#include "server/server_impl.h"

namespace frugal {

namespace fs = std::filesystem;
using nlohmann::json;
using server::ApiError;
using server::valid_knowledge_name;

namespace {

constexpr auto kProgressWait = std::chrono::milliseconds(50);
// Tokens per forward pass of a knowledge prefill on a serving engine: each
// pass runs between two batch steps, so running answers pause for one pass
// at a time (tens of milliseconds), not for the whole prefill.
constexpr size_t kEditBatch = 64;

ApiError not_found(const std::string& what) {
  return ApiError(404, "invalid_request_error", what, "", "not_found");
}

// Prefill progress handed from the engine's thread to the connection's.
struct ProgressChannel {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<json> events;
  void push(json event) {
    {
      std::lock_guard lock(mutex);
      events.push_back(std::move(event));
    }
    wake.notify_one();
  }
  std::deque<json> take(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, wait, [&] { return !events.empty(); });
    std::deque<json> out;
    out.swap(events);
    return out;
  }
};

std::string event(const json& body) { return "data: " + body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

// A pasted document's id when none is given: its title in lower case, words
// joined by '-'.
std::string id_from_title(const std::string& title) {
  std::string id;
  for (char c : title) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      id += c;
    } else if (c >= 'A' && c <= 'Z') {
      id += static_cast<char>(c - 'A' + 'a');
    } else if (!id.empty() && id.back() != '-') {
      id += '-';
    }
  }
  while (!id.empty() && id.back() == '-') id.pop_back();
  return id;
}

std::string string_field(const json& object, const char* key, const std::string& where, bool required) {
  if (!object.contains(key) || object[key].is_null()) {
    if (required) throw server::invalid_request(fmt::format("{}.{} is required", where, key), where);
    return "";
  }
  if (!object[key].is_string()) throw server::invalid_request(fmt::format("{}.{} must be a string", where, key), where);
  return object[key].get<std::string>();
}

// The documents of a create request: uploaded files ({"name", "content"},
// read as `frugal kb build` reads files) and pasted ones ({"id"?, "title"?,
// "text"}).
std::vector<Document> request_documents(const json& body) {
  std::vector<Document> documents;
  if (body.contains("files")) {
    if (!body["files"].is_array()) throw server::invalid_request("files must be an array", "files");
    for (size_t i = 0; i < body["files"].size(); ++i) {
      const json& file = body["files"][i];
      const std::string where = fmt::format("files[{}]", i);
      if (!file.is_object()) throw server::invalid_request(where + " must be an object", where);
      try {
        auto more = documents_from_file(string_field(file, "name", where, true), string_field(file, "content", where, true));
        documents.insert(documents.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      } catch (const Error& e) {
        throw server::invalid_request(e.what(), where);
      }
    }
  }
  if (body.contains("documents")) {
    if (!body["documents"].is_array()) throw server::invalid_request("documents must be an array", "documents");
    for (size_t i = 0; i < body["documents"].size(); ++i) {
      const json& item = body["documents"][i];
      const std::string where = fmt::format("documents[{}]", i);
      if (!item.is_object()) throw server::invalid_request(where + " must be an object", where);
      Document document;
      document.text = string_field(item, "text", where, true);
      document.title = string_field(item, "title", where, false);
      document.id = string_field(item, "id", where, false);
      if (document.id.empty()) document.id = id_from_title(document.title);
      if (document.id.empty()) document.id = fmt::format("text-{}", i + 1);
      if (document.title.empty()) document.title = document.id;
      if (document.text.empty()) throw server::invalid_request(where + ".text is empty", where);
      documents.push_back(std::move(document));
    }
  }
  if (documents.empty()) throw server::invalid_request("give at least one document (files or documents)");
  try {
    check_unique_ids(documents);
  } catch (const Error& e) {
    throw server::invalid_request(e.what(), "documents");
  }
  return documents;
}

json parse_body(const httplib::Request& request) {
  try {
    json body = json::parse(request.body);
    if (!body.is_object()) throw server::invalid_request("the body must be a JSON object");
    return body;
  } catch (const json::exception& e) {
    throw server::invalid_request(fmt::format("the body is not valid JSON: {}", e.what()));
  }
}

}  // namespace

// ---- The work behind the routes.

fs::path Server::Impl::knowledge_file(const std::string& name) const {
  for (const auto& [flag_name, path] : options.knowledge) {
    if (flag_name == name) return path;
  }
  if (!options.knowledge_dir.empty() && valid_knowledge_name(name)) {
    const fs::path path = options.knowledge_dir / (name + ".fkv");
    std::error_code error;
    if (fs::is_regular_file(path, error)) return path;
  }
  return {};
}

json Server::Impl::describe_knowledge(const std::string& name) const {
  const fs::path path = knowledge_file(name);
  if (path.empty()) throw not_found(fmt::format("there is no knowledge cache '{}'", name));
  const KnowledgeCacheSummary summary = inspect_knowledge_cache(path, false);
  json documents = json::array();
  for (const auto& d : summary.documents) {
    documents.push_back({{"id", d.document.id}, {"title", d.document.title}, {"tokens", d.token_count}});
  }
  bool loaded = false;
  {
    std::shared_lock lock(knowledge_mutex);
    loaded = knowledge->contains(name);
  }
  const bool in_folder = !options.knowledge_dir.empty() && path.parent_path() == options.knowledge_dir;
  // The building model's summary is JSON text; its name is what a person needs.
  std::string built_with = summary.model;
  if (const json model_summary = json::parse(summary.model, nullptr, false); model_summary.is_object()) {
    built_with = model_summary.value("name", summary.model);
  }
  return {{"object", "knowledge"},
          {"name", name},
          {"model", options.model_name + "@" + name},
          {"editable", in_folder && !options.read_only_knowledge},
          {"loaded", loaded},
          {"tokens", summary.token_count},
          {"file_bytes", summary.file_bytes},
          {"built_with", built_with},
          {"prompt", summary.prompt_name},
          {"documents", documents}};
}

void Server::Impl::run_on_engine(const std::function<void()>& work) {
  std::future<void> done;
  try {
    done = scheduler->run_exclusive(work);
  } catch (const Error&) {
    throw ApiError(503, "server_error", "the server is shutting down; retry later");
  }
  done.get();
}

// Puts the new file's version in the store (if the old one was there):
// requests already running keep the old keys and values they hold.
void Server::Impl::swap_in_knowledge(const std::string& name, const fs::path& path) {
  std::unique_lock lock(knowledge_mutex);
  if (!knowledge->contains(name)) return;  // loaded when first asked for
  knowledge->remove(name);
  knowledge_stamps.erase(name);
  const auto stamp = stamp_of(path);
  load_into_store(name, path);
  if (stamp) knowledge_stamps[name] = *stamp;
}

fs::path Server::Impl::editable_knowledge_file(const std::string& name) const {
  if (options.read_only_knowledge) {
    throw ApiError(403, "permission_error", "knowledge caches cannot be changed on this server (--read-only-knowledge)",
                   "", "read_only");
  }
  if (options.knowledge_dir.empty()) {
    throw ApiError(403, "permission_error",
                   "this server has no knowledge folder; start it with --kb-dir DIR to create and edit caches", "",
                   "no_knowledge_folder");
  }
  if (!valid_knowledge_name(name)) {
    throw server::invalid_request(
        fmt::format("'{}' is not a knowledge cache name: use letters, digits, '-', '_' and '.' (128 at most)", name),
        "name");
  }
  return options.knowledge_dir / (name + ".fkv");
}

json Server::Impl::create_knowledge(const std::string& name, std::vector<Document> documents,
                                    const PrefillProgress& progress) {
  const fs::path path = editable_knowledge_file(name);
  std::lock_guard edit(knowledge_edit_mutex);
  if (!knowledge_file(name).empty()) {
    throw ApiError(409, "invalid_request_error", fmt::format("a knowledge cache '{}' exists already", name), "name",
                   "exists");
  }
  KnowledgeBuildOptions build;
  build.prompt = default_prompt_template(model, tokenizer);
  build.context = std::max<int64_t>(options.context, 0);
  build.precision = options.precision;  // as the store's rows, so loading copies them as they are
  build.progress = progress;
  build.run_pass = [this](const std::function<void()>& pass) { run_on_engine(pass); };
  build.batch = kEditBatch;
  std::optional<KnowledgeCache> cache;
  try {
    cache.emplace(KnowledgeCache::build(model, tokenizer, std::move(documents), build));
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw server::invalid_request(e.what(), "documents");
  }
  cache->save(path);
  return describe_knowledge(name);
}

json Server::Impl::edit_knowledge(const std::string& name,
                                  const std::function<void(KnowledgeCache&, const PrefillProgress&)>& change,
                                  const PrefillProgress& progress) {
  const fs::path path = editable_knowledge_file(name);
  std::lock_guard edit(knowledge_edit_mutex);
  if (knowledge_file(name) != path) throw not_found(fmt::format("there is no knowledge cache '{}' to edit", name));
  KnowledgeLoadOptions load;
  load.context = std::max<int64_t>(options.context, 0);
  KnowledgeCache cache = KnowledgeCache::load(path, model, tokenizer, load);
  cache.set_prefill_passes([this](const std::function<void()>& pass) { run_on_engine(pass); }, kEditBatch);
  try {
    change(cache, progress);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw server::invalid_request(e.what(), "documents");
  }
  cache.save(path);  // atomic: the old file stays whole until the new one replaces it
  swap_in_knowledge(name, path);
  return describe_knowledge(name);
}

void Server::Impl::delete_knowledge(const std::string& name) {
  const fs::path path = editable_knowledge_file(name);
  std::lock_guard edit(knowledge_edit_mutex);
  if (knowledge_file(name) != path) throw not_found(fmt::format("there is no knowledge cache '{}'", name));
  // Under the lock, so that no request loads the file again between the two.
  std::unique_lock lock(knowledge_mutex);
  if (knowledge->contains(name)) knowledge->remove(name);
  knowledge_stamps.erase(name);
  fs::remove(path);
}

// Runs `work` and answers with its JSON; with ?stream=true (or an SSE
// Accept header) as server-sent events: progress events while the prefill
// runs, then {"type": "done", "knowledge": ...} or {"type": "error", ...}.
void Server::Impl::respond_with_progress(const httplib::Request& request, httplib::Response& response,
                                         const std::string& endpoint, int status,
                                         std::function<json(const PrefillProgress&)> work) {
  const bool stream = request.get_param_value("stream") == "true" ||
                      request.get_header_value("Accept").find("text/event-stream") != std::string::npos;
  if (!stream) {
    const json body = work({});
    response.status = status;
    response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request(endpoint, status);
    return;
  }
  auto channel = std::make_shared<ProgressChannel>();
  auto result = std::make_shared<std::future<json>>(std::async(std::launch::async, [work, channel] {
    return work([channel](size_t done, size_t total) {
      channel->push({{"type", "progress"}, {"done", done}, {"total", total}});
    });
  }));
  metrics.request(endpoint, 200);
  response.set_header("Cache-Control", "no-cache");
  response.set_chunked_content_provider("text/event-stream", [channel, result](size_t, httplib::DataSink& sink) {
    auto send = [&](const json& body) {
      const std::string text = event(body);
      return sink.is_writable() && sink.write(text.data(), text.size());
    };
    for (;;) {
      const bool finished = result->wait_for(std::chrono::seconds(0)) == std::future_status::ready;
      for (const json& e : channel->take(finished ? std::chrono::milliseconds(0) : kProgressWait)) {
        if (!send(e)) return false;  // the client left; the edit still completes
      }
      if (finished) break;
    }
    try {
      send({{"type", "done"}, {"knowledge", result->get()}});
    } catch (const ApiError& e) {
      send({{"type", "error"}, {"status", e.status}, {"error", json::parse(server::error_body(e))["error"]}});
    } catch (const std::exception& e) {
      send({{"type", "error"}, {"status", 500}, {"error", {{"message", e.what()}, {"type", "server_error"}}}});
    }
    sink.done();
    return true;
  });
}

// ---- The routes.

void Server::Impl::add_knowledge_routes() {
  const std::string collection = "/v1/knowledge";
  http.Get(collection, guarded(collection, [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    json data = json::array();
    for (const auto& [name, tokens] : knowledge_listing()) {
      try {
        data.push_back(describe_knowledge(name));
      } catch (const std::exception&) {
        // Deleted meanwhile, or unreadable: one bad cache does not hide the others.
      }
    }
    response.set_content(json{{"object", "list"}, {"data", data}}.dump(-1, ' ', false, json::error_handler_t::replace),
                         "application/json");
    metrics.request("/v1/knowledge", 200);
  }));
  http.Post(collection, guarded(collection, [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const json body = parse_body(request);
    const std::string name = string_field(body, "name", "body", true);
    editable_knowledge_file(name);  // refuse at once, before any work (and before a stream begins)
    if (!knowledge_file(name).empty()) {
      throw ApiError(409, "invalid_request_error", fmt::format("a knowledge cache '{}' exists already", name), "name",
                     "exists");
    }
    auto documents = std::make_shared<std::vector<Document>>(request_documents(body));
    respond_with_progress(request, response, "/v1/knowledge", 201, [this, name, documents](const PrefillProgress& p) {
      return create_knowledge(name, std::move(*documents), p);
    });
  }));
  const std::string one = R"(/v1/knowledge/([^/]+))";
  http.Get(one, guarded("/v1/knowledge/{name}", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    response.set_content(describe_knowledge(request.matches[1]).dump(-1, ' ', false, json::error_handler_t::replace),
                         "application/json");
    metrics.request("/v1/knowledge/{name}", 200);
  }));
  http.Delete(one, guarded("/v1/knowledge/{name}", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const std::string name = request.matches[1];
    delete_knowledge(name);
    response.set_content(json{{"object", "knowledge.deleted"}, {"name", name}, {"deleted", true}}.dump(),
                         "application/json");
    metrics.request("/v1/knowledge/{name}", 200);
  }));
  const std::string document = R"(/v1/knowledge/([^/]+)/documents/([^/]+))";
  const std::string document_endpoint = "/v1/knowledge/{name}/documents/{id}";
  http.Get(document, guarded(document_endpoint, [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const std::string name = request.matches[1], id = request.matches[2];
    const fs::path path = knowledge_file(name);
    if (path.empty()) throw not_found(fmt::format("there is no knowledge cache '{}'", name));
    for (const auto& d : inspect_knowledge_cache(path, false).documents) {
      if (d.document.id != id) continue;
      response.set_content(json{{"object", "knowledge.document"}, {"id", id}, {"title", d.document.title},
                                {"text", d.document.text}, {"tokens", d.token_count}}
                               .dump(-1, ' ', false, json::error_handler_t::replace),
                           "application/json");
      metrics.request("/v1/knowledge/{name}/documents/{id}", 200);
      return;
    }
    throw not_found(fmt::format("the knowledge cache '{}' has no document '{}'", name, id));
  }));
  http.Put(document, guarded(document_endpoint, [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const std::string name = request.matches[1], id = request.matches[2];
    editable_knowledge_file(name);
    const json body = parse_body(request);
    Document replacement{id, string_field(body, "title", "body", false), string_field(body, "text", "body", true)};
    if (replacement.title.empty()) replacement.title = id;
    if (replacement.text.empty()) throw server::invalid_request("text is empty", "text");
    respond_with_progress(request, response, "/v1/knowledge/{name}/documents/{id}", 200,
                          [this, name, replacement](const PrefillProgress& progress) {
                            return edit_knowledge(name, [&](KnowledgeCache& cache, const PrefillProgress& p) {
                              bool known = false;
                              for (const auto& d : cache.documents()) known = known || d.document.id == replacement.id;
                              if (known) {
                                cache.update({replacement}, p);
                              } else {
                                cache.add({replacement}, false, p);
                              }
                            }, progress);
                          });
  }));
  http.Delete(document, guarded(document_endpoint, [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const std::string name = request.matches[1], id = request.matches[2];
    editable_knowledge_file(name);
    respond_with_progress(request, response, "/v1/knowledge/{name}/documents/{id}", 200,
                          [this, name, id](const PrefillProgress& progress) {
                            return edit_knowledge(name, [&](KnowledgeCache& cache, const PrefillProgress& p) {
                              bool known = false;
                              for (const auto& d : cache.documents()) known = known || d.document.id == id;
                              if (!known) throw not_found(fmt::format("the knowledge cache '{}' has no document '{}'", name, id));
                              if (cache.documents().size() == 1) {
                                throw server::invalid_request(
                                    "this is the cache's only document; delete the cache instead", "id");
                              }
                              const std::string ids[1] = {id};
                              cache.remove(ids, p);
                            }, progress);
                          });
  }));
}

}  // namespace frugal
